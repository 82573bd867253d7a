package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The dead-letter admin API (draft §8.2.1): GET /v1/admin/dead-letters,
// GET /v1/admin/dead-letters/{id}, POST /v1/admin/dead-letters/{id}/redrive
// and POST /v1/admin/dead-letters/redrive, which takes the listing's
// filters as query parameters.

// DeadLetterAdmin shows and redrives the deliveries given up.
type DeadLetterAdmin interface {
	ListDeadLetters(ctx context.Context, p gateway.Principal, q gateway.DeadLetterQuery) ([]gateway.DeadLetterView, string, error)
	GetDeadLetter(ctx context.Context, p gateway.Principal, id string) (*gateway.DeadLetterView, error)
	RedriveDeadLetter(ctx context.Context, p gateway.Principal, id string) (*gateway.Redriven, error)
	RedriveDeadLetters(ctx context.Context, p gateway.Principal, q gateway.DeadLetterQuery) (*gateway.RedriveBatch, error)
}

// maxCodeLen bounds the code filter: AMTP codes are short upper-case words.
const maxCodeLen = 64

// deadLetterQuery reads the listing's filters.
func (h *Handler) deadLetterQuery(r *http.Request) (gateway.DeadLetterQuery, error) {
	q := r.URL.Query()
	var dq gateway.DeadLetterQuery
	var err error
	if dq.Limit, err = queryLimit(r); err != nil {
		return dq, err
	}
	if dq.Recipient, err = h.addressFilter("recipient", q.Get("recipient")); err != nil {
		return dq, err
	}
	if d := q.Get("domain"); d != "" {
		if dq.Domain, err = amtp.NormalizeDomain(d); err != nil {
			return dq, amtp.FieldError("domain", "domain must be a domain name")
		}
	}
	if dq.Code = q.Get("code"); !validCode(dq.Code) {
		return dq, amtp.FieldError("code", "code must be an AMTP error code such as RECIPIENT_UNAVAILABLE")
	}
	if dq.Since, err = queryTime(q.Get("since"), "since"); err != nil {
		return dq, err
	}
	if dq.Until, err = queryTime(q.Get("until"), "until"); err != nil {
		return dq, err
	}
	dq.Cursor = q.Get("cursor")
	return dq, nil
}

func validCode(c string) bool {
	if len(c) > maxCodeLen {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b == '_') {
			return false
		}
	}
	return true
}

func queryTime(v, field string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, amtp.FieldError(field, "%s must be an RFC 3339 time", field)
	}
	return t.UTC(), nil
}

// adminQuery authenticates the admin and reads the dead-letter filters.
func (h *Handler) adminQuery(w http.ResponseWriter, r *http.Request) (gateway.Principal, gateway.DeadLetterQuery, bool) {
	p, err := h.principal(r)
	if err == nil {
		err = gateway.RequireAdmin(p)
	}
	var q gateway.DeadLetterQuery
	if err == nil {
		q, err = h.deadLetterQuery(r)
	}
	if err != nil {
		h.writeError(w, r, err)
		return p, q, false
	}
	return p, q, true
}

func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	p, q, ok := h.adminQuery(w, r)
	if !ok {
		return
	}
	list, next, err := h.dead.ListDeadLetters(r.Context(), p, q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []gateway.DeadLetterView{}
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"dead_letters": list, "count": len(list), "next_cursor": nullable(next)})
}

func (h *Handler) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v, err := h.dead.GetDeadLetter(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, v)
}

func (h *Handler) redriveDeadLetter(w http.ResponseWriter, r *http.Request) {
	p, err := h.principal(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v, err := h.dead.RedriveDeadLetter(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, v)
}

func (h *Handler) redriveDeadLetters(w http.ResponseWriter, r *http.Request) {
	p, q, ok := h.adminQuery(w, r)
	if !ok {
		return
	}
	b, err := h.dead.RedriveDeadLetters(r.Context(), p, q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]any{"redriven": b.Redriven, "count": b.Count, "next_cursor": nullable(b.NextCursor)})
}
