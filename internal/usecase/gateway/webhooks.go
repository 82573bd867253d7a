package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// WebhookEvent is a kind of notification a subscription asks for (draft
// §12.1.4).
type WebhookEvent string

// The events a subscription may name.
const (
	EventMessageDelivered  WebhookEvent = "message.delivered"
	EventMessageFailed     WebhookEvent = "message.failed"
	EventMessageRetrying   WebhookEvent = "message.retrying"
	EventWorkflowCompleted WebhookEvent = "workflow.completed"
	EventWorkflowFailed    WebhookEvent = "workflow.failed"
	EventWorkflowTimedOut  WebhookEvent = "workflow.timed_out"
)

var webhookEvents = []WebhookEvent{
	EventMessageDelivered, EventMessageFailed, EventMessageRetrying,
	EventWorkflowCompleted, EventWorkflowFailed, EventWorkflowTimedOut,
}

// Bounds of the subscriptions one owner may keep.
const (
	// MaxWebhooksPerOwner bounds an owner's subscriptions, and with it the
	// notifications one message can cause.
	MaxWebhooksPerOwner = 10
	maxWebhookEvents    = 8
	maxWebhookIDBytes   = 64
)

// WebhookSubscription asks for notifications of events about the owner's
// messages and workflows to be POSTed to URL, signed with Secret per
// Standard Webhooks.
type WebhookSubscription struct {
	ID string `json:"id"`
	// Owner is the subscribing agent's canonical address, or "" for the
	// admin, whose subscriptions hear of every message.
	Owner  string         `json:"owner,omitempty"`
	URL    string         `json:"url"`
	Events []WebhookEvent `json:"events"`
	// Secret (whsec_…) is shown once, at creation; it is stored so that
	// the gateway can sign.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// FailingSince is the first failed notification since the last one
	// that succeeded; nil while notifications succeed.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// Disabled: notifications failed for too long and are no longer sent.
	Disabled bool `json:"disabled,omitempty"`
}

// Wants reports whether s is active and asks for event e.
func (s WebhookSubscription) Wants(e WebhookEvent) bool {
	return !s.Disabled && slices.Contains(s.Events, e)
}

// public is s as it is shown after its creation: without its secret.
func (s WebhookSubscription) public() WebhookSubscription {
	s.Secret = ""
	return s
}

// WebhookStore keeps notification webhook subscriptions.
type WebhookStore interface {
	// PutWebhook creates or replaces the subscription s.ID names. Its
	// owner never changes.
	PutWebhook(ctx context.Context, s WebhookSubscription) error
	// GetWebhook returns ErrNotFound for an unknown id.
	GetWebhook(ctx context.Context, id string) (WebhookSubscription, error)
	// ListWebhooks returns the subscriptions of owner ("" the admin's),
	// ordered by id; the use case keeps at most MaxWebhooksPerOwner.
	ListWebhooks(ctx context.Context, owner string) ([]WebhookSubscription, error)
	// DeleteWebhook returns ErrNotFound for an unknown id.
	DeleteWebhook(ctx context.Context, id string) error
}

// WebhookRequest is what a caller asks to subscribe.
type WebhookRequest struct {
	URL    string         `json:"url"`
	Events []WebhookEvent `json:"events"`
}

// Webhooks lets agents (for their own messages) and the admin (for all)
// subscribe to notifications of delivery and workflow outcomes.
type Webhooks struct {
	store WebhookStore
	// urls checks a subscription's URL by the rules of agent webhooks.
	urls  *Agents
	clock clock
	log   opsLog
}

// ready refuses every call of a composition without a webhook store.
func (s *Webhooks) ready() error {
	if s.store == nil {
		return amtp.Errorf(amtp.CodeNotFound, "this gateway keeps no webhook subscriptions")
	}
	return nil
}

// ownerOf is whose subscriptions p manages: its own address, or "" for
// the admin.
func ownerOf(p Principal) (string, error) {
	switch p.Kind {
	case AdminCaller:
		return "", nil
	case AgentCaller:
		if p.Agent != nil {
			return strings.ToLower(p.Agent.Address), nil
		}
	}
	return "", amtp.Errorf(amtp.CodeAuthenticationRequired, "this call needs an agent key or the admin key as a bearer token")
}

// CreateWebhook subscribes the caller; the answer carries the secret, shown
// this once.
func (s *Webhooks) CreateWebhook(ctx context.Context, p Principal, req WebhookRequest) (*WebhookSubscription, error) {
	owner, err := ownerOf(p)
	if err != nil {
		return nil, err
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	events, err := checkEvents(req.Events)
	if err != nil {
		return nil, err
	}
	if req.URL == "" {
		return nil, amtp.FieldError("url", "a subscription needs a url")
	}
	if err := s.urls.checkWebhookURL("url", req.URL); err != nil {
		return nil, err
	}
	have, err := s.store.ListWebhooks(ctx, owner)
	if err != nil {
		return nil, s.log.unavailable("list webhooks", err)
	}
	if len(have) >= MaxWebhooksPerOwner {
		return nil, amtp.Errorf(amtp.CodeForbidden, "at most %d webhook subscriptions per owner", MaxWebhooksPerOwner)
	}
	sub := WebhookSubscription{ID: "wh_" + randomToken("", 16, base64.RawURLEncoding), Owner: owner, URL: req.URL, Events: events,
		Secret: randomToken("whsec_", 32, base64.StdEncoding), CreatedAt: s.clock.stamp()}
	if err := s.store.PutWebhook(ctx, sub); err != nil {
		return nil, s.log.unavailable("create webhook", err)
	}
	s.log.InfoContext(ctx, "webhook subscription created", "webhook", sub.ID, "owner", owner, "events", events)
	return &sub, nil
}

// checkEvents are the events asked for, each known and named once.
func checkEvents(in []WebhookEvent) ([]WebhookEvent, error) {
	if len(in) == 0 || len(in) > maxWebhookEvents {
		return nil, amtp.FieldError("events", "events must name between 1 and %d events", maxWebhookEvents)
	}
	out := make([]WebhookEvent, 0, len(in))
	for _, e := range in {
		if !slices.Contains(webhookEvents, e) {
			return nil, amtp.FieldError("events", "unknown event %.64q", string(e))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// ListWebhooks lists the caller's subscriptions; the admin may name an
// agent's address as owner to list that agent's.
func (s *Webhooks) ListWebhooks(ctx context.Context, p Principal, owner string) ([]WebhookSubscription, error) {
	own, err := ownerOf(p)
	if err != nil {
		return nil, err
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	if owner != "" && p.Kind != AdminCaller {
		return nil, amtp.Errorf(amtp.CodeForbidden, "an agent lists only its own webhook subscriptions")
	}
	if owner != "" {
		own = strings.ToLower(owner)
	}
	list, err := s.store.ListWebhooks(ctx, own)
	if err != nil {
		return nil, s.log.unavailable("list webhooks", err)
	}
	out := make([]WebhookSubscription, 0, len(list))
	for _, w := range list {
		out = append(out, w.public())
	}
	return out, nil
}

// GetWebhook returns one subscription of the caller (any, for the admin).
func (s *Webhooks) GetWebhook(ctx context.Context, p Principal, id string) (*WebhookSubscription, error) {
	w, err := s.find(ctx, p, id)
	if err != nil {
		return nil, err
	}
	w = w.public()
	return &w, nil
}

// DeleteWebhook ends one subscription of the caller (any, for the admin).
func (s *Webhooks) DeleteWebhook(ctx context.Context, p Principal, id string) error {
	if _, err := s.find(ctx, p, id); err != nil {
		return err
	}
	err := s.store.DeleteWebhook(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return s.log.unavailable("delete webhook", err)
	}
	s.log.InfoContext(ctx, "webhook subscription deleted", "webhook", id)
	return nil
}

// find reads subscription id for p: another owner's is NOT_FOUND to an
// agent, so that ids reveal nothing.
func (s *Webhooks) find(ctx context.Context, p Principal, id string) (WebhookSubscription, error) {
	owner, err := ownerOf(p)
	if err != nil {
		return WebhookSubscription{}, err
	}
	if err := s.ready(); err != nil {
		return WebhookSubscription{}, err
	}
	if id == "" || len(id) > maxWebhookIDBytes {
		return WebhookSubscription{}, amtp.Errorf(amtp.CodeNotFound, "no webhook subscription %.64q", id)
	}
	w, err := s.store.GetWebhook(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && p.Kind != AdminCaller && w.Owner != owner) {
		return WebhookSubscription{}, amtp.Errorf(amtp.CodeNotFound, "no webhook subscription %q", id)
	}
	if err != nil {
		return WebhookSubscription{}, s.log.unavailable("read webhook", err)
	}
	return w, nil
}

// webhookRemover is what deleting an agent needs of the WebhookStore.
type webhookRemover interface {
	ListWebhooks(ctx context.Context, owner string) ([]WebhookSubscription, error)
	DeleteWebhook(ctx context.Context, id string) error
}

// removeWebhooks deletes owner's subscriptions: an agent registered later
// at the address is another agent, which must hear nothing through them.
func removeWebhooks(ctx context.Context, store webhookRemover, owner string) error {
	if store == nil {
		return nil
	}
	subs, err := store.ListWebhooks(ctx, owner)
	if err != nil {
		return fmt.Errorf("webhooks of %s: %w", owner, err)
	}
	for _, w := range subs {
		if err := store.DeleteWebhook(ctx, w.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete webhook %s of %s: %w", w.ID, owner, err)
		}
	}
	return nil
}
