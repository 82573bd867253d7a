package embedded

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// inboxPrefix scopes inbox keys to one recipient; the 0x00 keeps "bob" from
// matching "bobby".
func inboxPrefix(recipient string) []byte {
	return append([]byte(strings.ToLower(recipient)), 0)
}

// DeliverToInbox files the message in the recipient's inbox and records the
// recipient's status in the same transaction. A second delivery of the same
// message updates the status and keeps the first entry, with its place in
// the inbox.
func (db *DB) DeliverToInbox(ctx context.Context, recipient, messageID string, status gateway.RecipientStatus) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	}
	defer release()
	prefix := inboxPrefix(recipient)
	id := []byte(messageID)
	refKey := append(bytes.Clone(prefix), id...)
	received := putTime(nil, db.now())
	entryKey := append(append(bytes.Clone(prefix), received...), id...)
	if status.Address == "" {
		status.Address = recipient
	}
	updates := []gateway.RecipientStatus{status}
	var missing bool
	err = db.commit.do(func(tx *wtx) error {
		missing = false
		if tx.Bucket(bucketMessages).Get(id) == nil {
			missing = true
			return nil
		}
		refs := tx.Bucket(bucketInboxRef)
		if refs.Get(refKey) == nil {
			if err := refs.Put(refKey, received); err != nil {
				return err
			}
			if err := tx.Bucket(bucketInbox).Put(entryKey, nil); err != nil {
				return err
			}
		}
		return mergeStatuses(tx, id, updates)
	})
	if err == nil && missing {
		err = gateway.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	}
	return nil
}

// ListInbox pages through one recipient's inbox, oldest first.
func (db *DB) ListInbox(ctx context.Context, recipient string, limit int, cursor string) ([]gateway.InboxEntry, string, error) {
	limit = pageLimit(limit)
	prefix := inboxPrefix(recipient)
	start := prefix
	if cursor != "" {
		pos, err := decodeCursor(cursorInbox, cursor, timeLen)
		if err != nil {
			return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
		}
		start = append(bytes.Clone(prefix), pos...)
	}
	release, err := db.enter(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
	}
	defer release()
	var (
		out  []gateway.InboxEntry
		next string
	)
	err = db.read(func(r reader) error {
		messages := r.bucket(bucketMessages)
		c := r.bucket(bucketInbox).Cursor()
		k, _ := c.Seek(start)
		if cursor != "" && bytes.Equal(k, start) {
			k, _ = c.Next()
		}
		var last []byte
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(out) == limit {
				next = encodeCursor(cursorInbox, last)
				return nil
			}
			pos := k[len(prefix):]
			if len(pos) <= timeLen {
				return fmt.Errorf("corrupt inbox key %q", k)
			}
			last = pos
			v := messages.Get(pos[timeLen:])
			if v == nil {
				// Messages are never deleted, so this is an entry
				// without a body; showing it empty would help nobody.
				continue
			}
			meta, raw, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %s: %w", pos[timeLen:], err)
			}
			out = append(out, gateway.InboxEntry{
				MessageID:  string(pos[timeLen:]),
				Raw:        clone(raw),
				ReceivedAt: getTime(pos[:timeLen]),
				AcceptedAt: meta.AcceptedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
	}
	return out, next, nil
}

// purgeInbox deletes every entry of recipient's inbox in tx. The keys are
// collected first: deleting under a bbolt cursor skips keys.
func purgeInbox(tx *wtx, recipient string) error {
	prefix := inboxPrefix(recipient)
	for _, name := range [][]byte{bucketInbox, bucketInboxRef} {
		b := tx.Bucket(name)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// AckInbox removes a message from an inbox.
func (db *DB) AckInbox(ctx context.Context, recipient, messageID string) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("ack %s in %s: %w", messageID, recipient, err)
	}
	defer release()
	prefix := inboxPrefix(recipient)
	refKey := append(bytes.Clone(prefix), messageID...)
	var missing bool
	err = db.commit.do(func(tx *wtx) error {
		missing = false
		refs := tx.Bucket(bucketInboxRef)
		received := refs.Get(refKey)
		if received == nil {
			missing = true
			return nil
		}
		entryKey := append(append(bytes.Clone(prefix), received...), messageID...)
		if err := tx.Bucket(bucketInbox).Delete(entryKey); err != nil {
			return err
		}
		return refs.Delete(refKey)
	})
	if err == nil && missing {
		err = gateway.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("ack %s in %s: %w", messageID, recipient, err)
	}
	return nil
}
