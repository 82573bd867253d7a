package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// inboxes is what Mailbox needs of the InboxStore.
type inboxes interface {
	ListInbox(ctx context.Context, recipient string, limit int, cursor string) ([]InboxEntry, string, error)
	AckInbox(ctx context.Context, recipient, messageID string) error
}

// Mailbox owns the inboxes of pull agents as their agents (and the admin)
// read them: listing what waits, and acknowledging what was taken.
type Mailbox struct {
	inbox inboxes
	site  site
	log   opsLog
}

// inboxOwner is the inbox p names with recipient, if p may read it: an
// agent its own, the admin any.
func (s *Mailbox) inboxOwner(p Principal, recipient string) (amtp.Address, error) {
	if p.Kind == Anonymous {
		return amtp.Address{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "reading an inbox needs the agent's key")
	}
	a, err := s.site.localAddress(recipient)
	if err != nil {
		return amtp.Address{}, amtp.Errorf(amtp.CodeNotFound, "no inbox %q at this gateway", recipient)
	}
	if p.Kind == AgentCaller && strings.ToLower(p.Agent.Address) != a.Key() {
		return amtp.Address{}, amtp.Errorf(amtp.CodeForbidden, "agent %s may only read its own inbox", p.Agent.Address)
	}
	return a, nil
}

// Inbox lists a pull agent's waiting messages, oldest first.
func (s *Mailbox) Inbox(ctx context.Context, p Principal, recipient string, limit int, cursor string) ([]json.RawMessage, string, error) {
	a, err := s.inboxOwner(p, recipient)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 50
	}
	if limit > 500 {
		limit = 500
	}
	entries, next, err := s.inbox.ListInbox(ctx, a.Key(), limit, cursor)
	if err != nil {
		return nil, "", s.log.listError("list inbox", err)
	}
	out := make([]json.RawMessage, 0, len(entries))
	for _, e := range entries {
		// Deleting an agent empties its inbox, but on DynamoDB the purge
		// may stop part-way and an entry may be filed after it: such an
		// entry is the old agent's, not the caller's. The page may then
		// come out short, with a cursor to go on.
		if p.Kind == AgentCaller && predates(e.AcceptedAt, p.Agent) {
			continue
		}
		out = append(out, e.Raw)
	}
	return out, next, nil
}

// Ack removes a message from an inbox.
func (s *Mailbox) Ack(ctx context.Context, p Principal, recipient, messageID string) error {
	a, err := s.inboxOwner(p, recipient)
	if err != nil {
		return err
	}
	id := amtp.NormalizeMessageID(messageID)
	err = s.inbox.AckInbox(ctx, a.Key(), id)
	if errors.Is(err, ErrNotFound) {
		// Mail from another gateway is stored per recipient.
		err = s.inbox.AckInbox(ctx, a.Key(), StorageID(id, OriginRemote, []string{a.Key()}))
	}
	if errors.Is(err, ErrNotFound) {
		return amtp.Errorf(amtp.CodeNotFound, "message %s is not in the inbox of %s", messageID, a)
	}
	if err != nil {
		return s.log.unavailable("ack", err)
	}
	return nil
}
