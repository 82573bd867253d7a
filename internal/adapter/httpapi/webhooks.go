package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The notification webhook API (draft §12.1.4): POST and GET /v1/webhooks,
// GET and DELETE /v1/webhooks/{id}, for an agent's own subscriptions (its
// key) and the admin's (the admin key; ?owner= lists an agent's).

// WebhookAdmin manages notification webhook subscriptions.
type WebhookAdmin interface {
	CreateWebhook(ctx context.Context, p gateway.Principal, req gateway.WebhookRequest) (*gateway.WebhookSubscription, error)
	ListWebhooks(ctx context.Context, p gateway.Principal, owner string) ([]gateway.WebhookSubscription, error)
	GetWebhook(ctx context.Context, p gateway.Principal, id string) (*gateway.WebhookSubscription, error)
	DeleteWebhook(ctx context.Context, p gateway.Principal, id string) error
}

// maxWebhookBody bounds a subscription request: a URL of at most 2 KiB and
// a few event names.
const maxWebhookBody = 8 << 10

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, release, err := h.readBody(w, r, p, maxWebhookBody)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer release()
	var req gateway.WebhookRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.writeError(w, r, amtp.Errorf(amtp.CodeInvalidMessageFormat, "a subscription must be a JSON object {url, events}"))
		return
	}
	sub, err := h.hooks.CreateWebhook(r.Context(), p, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusCreated, sub)
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	owner, err := h.addressFilter("owner", r.URL.Query().Get("owner"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.hooks.ListWebhooks(r.Context(), p, owner)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"webhooks": list, "count": len(list)})
}

func (h *Handler) getWebhook(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	sub, err := h.hooks.GetWebhook(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, sub)
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.hooks.DeleteWebhook(r.Context(), p, r.PathValue("id")); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]string{"id": r.PathValue("id"), "status": "deleted"})
}
