package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// StatusView is the answer of GET /v1/messages/{id}/status (draft §5.2.2
// with per-recipient detail).
type StatusView struct {
	MessageID   string            `json:"message_id"`
	Status      MessageState      `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	DeliveredAt *time.Time        `json:"delivered_at,omitempty"`
	Attempts    int               `json:"attempts"`
	NextRetry   *time.Time        `json:"next_retry"`
	Recipients  []RecipientStatus `json:"recipients"`
	// SchemaValidation says what became of the payload's schema check when
	// the message names a schema: "passed", "skipped (encrypted)" (an
	// end-to-end encrypted payload cannot be read, draft §9.3.2) or
	// "disabled" (AGENTRY_SCHEMA_VALIDATION=0). Absent without a schema.
	SchemaValidation string `json:"schema_validation,omitempty"`
	// SenderVerification records how the sender was established (draft
	// §5.2.2); absent for messages accepted before it was recorded.
	SenderVerification *SenderVerification `json:"sender_verification,omitempty"`
}

// messageReader is what Reading needs of the MessageStore.
type messageReader interface {
	GetMessage(ctx context.Context, id string) (*StoredMessage, error)
	GetStatuses(ctx context.Context, id string) ([]RecipientStatus, error)
	ListMessages(ctx context.Context, q MessageQuery) ([]MessageSummary, string, error)
}

// Reading owns what a caller may see of accepted messages: one message,
// its delivery status, and listings. The admin sees everything, an agent
// only its own mail since it was registered, anyone else nothing.
type Reading struct {
	messages messageReader
	log      opsLog
	// validating is whether a schema registry checks payloads, for the
	// status's schema_validation.
	validating bool
}

// canRead reports whether p may see the message: the admin, its sender, or
// one of its local recipients. Everyone else gets 404, so that ids cannot
// be probed.
func (s *Reading) canRead(p Principal, sm *StoredMessage) bool {
	switch p.Kind {
	case AdminCaller:
		return true
	case AgentCaller:
		if predates(sm.AcceptedAt, p.Agent) {
			return false
		}
		me := strings.ToLower(p.Agent.Address)
		if strings.ToLower(sm.Sender) == me {
			return true
		}
		for _, r := range sm.Recipients {
			if strings.ToLower(r) == me {
				return true
			}
		}
	}
	return false
}

// readable finds the message id names, if p may read it.
func (s *Reading) readable(ctx context.Context, p Principal, id string) (*StoredMessage, error) {
	if p.Kind == Anonymous {
		return nil, amtp.Errorf(amtp.CodeAuthenticationRequired, "reading messages needs an agent key or the admin key")
	}
	// ids compare case-insensitively. The admin names the copy of a
	// fanned-out message from another gateway as <message_id>/<recipient>
	// (URL-escaped in the path: %2F).
	mid, rcpt, copyOf := strings.Cut(id, "/")
	id = amtp.NormalizeMessageID(mid)
	if copyOf {
		id = StorageID(id, OriginRemote, []string{rcpt})
	}
	if !amtp.ValidMessageID(MessageIDOf(id)) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no message %q", id)
	}
	sm, err := s.messages.GetMessage(ctx, id)
	if errors.Is(err, ErrNotFound) && p.Kind == AgentCaller {
		// Mail from another gateway is stored per recipient: an agent
		// asking by message_id means its own copy.
		sm, err = s.messages.GetMessage(ctx, StorageID(id, OriginRemote, []string{p.Agent.Address}))
	}
	if errors.Is(err, ErrNotFound) || (err == nil && !s.canRead(p, sm)) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no message %s", id)
	}
	if err != nil {
		return nil, s.log.unavailable("read message", err)
	}
	return sm, nil
}

// GetMessage returns the stored JSON of a message.
func (s *Reading) GetMessage(ctx context.Context, p Principal, id string) ([]byte, error) {
	sm, err := s.readable(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return sm.Raw, nil
}

// Status returns the delivery status of a message.
func (s *Reading) Status(ctx context.Context, p Principal, id string) (*StatusView, error) {
	sm, err := s.readable(ctx, p, id)
	if err != nil {
		return nil, err
	}
	st, err := s.messages.GetStatuses(ctx, sm.ID)
	if err != nil {
		return nil, s.log.unavailable("read status", err)
	}
	v := BuildStatusView(sm, st)
	v.SchemaValidation = s.schemaOutcome(sm)
	return v, nil
}

// schemaOutcome reconstructs the accept-time schema decision from the
// stored message; the rules are checkSchema's.
func (s *Reading) schemaOutcome(sm *StoredMessage) string {
	var head struct {
		Schema  string          `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if sm.Origin == OriginSystem || json.Unmarshal(sm.Raw, &head) != nil || head.Schema == "" {
		return ""
	}
	switch {
	case amtp.EncryptedPayload(head.Payload):
		return "skipped (encrypted)"
	case !s.validating:
		return "disabled"
	}
	return "passed"
}

// BuildStatusView summarises recipients into the message-level view.
func BuildStatusView(sm *StoredMessage, st []RecipientStatus) *StatusView {
	v := &StatusView{MessageID: MessageIDOf(sm.ID), Status: DeriveState(st), CreatedAt: sm.AcceptedAt, UpdatedAt: sm.AcceptedAt, Recipients: st,
		SenderVerification: sm.Verification}
	var lastDelivered time.Time
	allDelivered := len(st) > 0
	if len(st) > 0 {
		v.Recipients = make([]RecipientStatus, len(st))
	}
	for i, r := range st {
		v.Recipients[i] = r.WithHistory()
		v.Attempts += r.Attempts
		if r.UpdatedAt.After(v.UpdatedAt) {
			v.UpdatedAt = r.UpdatedAt
		}
		if r.NextRetry != nil && (v.NextRetry == nil || r.NextRetry.Before(*v.NextRetry)) {
			t := *r.NextRetry
			v.NextRetry = &t
		}
		if r.DeliveredAt != nil && r.DeliveredAt.After(lastDelivered) {
			lastDelivered = *r.DeliveredAt
		}
		if r.Status != StateDelivered {
			allDelivered = false
		}
	}
	if allDelivered && !lastDelivered.IsZero() {
		v.DeliveredAt = &lastDelivered
	}
	return v
}

// ListMessages lists what p may see: everything for the admin, an agent's
// own sent and received mail otherwise.
func (s *Reading) ListMessages(ctx context.Context, p Principal, q MessageQuery) ([]MessageSummary, string, error) {
	switch p.Kind {
	case Anonymous:
		return nil, "", amtp.Errorf(amtp.CodeAuthenticationRequired, "listing messages needs an agent key or the admin key")
	case AgentCaller:
		q.Party = strings.ToLower(p.Agent.Address)
		// Only mail since the agent was registered is its own (predates).
		if q.Since.Before(p.Agent.CreatedAt) {
			q.Since = p.Agent.CreatedAt
		}
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	out, next, err := s.messages.ListMessages(ctx, q)
	if err != nil {
		return nil, "", s.log.listError("list messages", err)
	}
	for i := range out {
		out[i].MessageID = MessageIDOf(out[i].MessageID)
	}
	return out, next, nil
}
