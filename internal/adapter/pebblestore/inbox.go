package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// putInbox files message id in recipient's inbox: the entry in time order
// and the reference that finds it from the id.
func putInbox(b *pebble.Batch, recipient, id string, received []byte) {
	entry := appendID(append(addressPrefix(tInbox, recipient), received...), id)
	_ = b.Set(entry, nil, nil)
	_ = b.Set(appendID(addressPrefix(tInboxRef, recipient), id), received, nil)
}

// DeliverToInbox files the message in the recipient's inbox and records the
// recipient's status in the same batch. A second delivery of the same
// message updates the status and keeps the first entry, with its place in
// the inbox.
func (db *DB) DeliverToInbox(ctx context.Context, recipient, messageID string, status gateway.RecipientStatus) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	}
	defer release()
	if status.Address == "" {
		status.Address = recipient
	}
	unlock := db.lock("m" + messageID)
	defer unlock()
	if ok, err := db.has(messageKey(messageID)); err != nil {
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	} else if !ok {
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, gateway.ErrNotFound)
	}
	b := db.pdb.NewBatch()
	filed, err := db.has(appendID(addressPrefix(tInboxRef, recipient), messageID))
	if err != nil {
		b.Close()
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	}
	if !filed {
		putInbox(b, recipient, messageID, putTime(nil, db.now()))
	}
	if err := db.mergeStatuses(b, messageID, []gateway.RecipientStatus{status}); err != nil {
		b.Close()
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	}
	if err := db.commit(b); err != nil {
		return fmt.Errorf("deliver %s to %s: %w", messageID, recipient, err)
	}
	return nil
}

// ListInbox pages through one recipient's inbox, oldest first. An entry
// whose message cannot be read is left out and logged.
func (db *DB) ListInbox(ctx context.Context, recipient string, limit int, cursor string) (out []gateway.InboxEntry, next string, err error) {
	limit = pageLimit(limit)
	prefix := addressPrefix(tInbox, recipient)
	lower := prefix
	if cursor != "" {
		pos, err := decodeCursor(cursorInbox, cursor, timeLen)
		if err != nil {
			return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
		}
		// Just after the cursor's key.
		lower = append(append(bytes.Clone(prefix), pos...), 0)
	}
	release, err := db.enter(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
	}
	defer release()
	it, err := db.iter(lower, prefixEnd(prefix))
	if err != nil {
		return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
	}
	defer closeIter(it, &err)
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		if len(out) == limit {
			next = encodeCursor(cursorInbox, last)
			break
		}
		pos := it.Key()[len(prefix):]
		last = append(last[:0], pos...)
		if len(pos) <= timeLen {
			db.corrupt("inbox entry", it.Key(), errBadKey)
			continue
		}
		id, rest, kerr := readID(pos[timeLen:])
		if kerr != nil || len(rest) != 0 {
			db.corrupt("inbox entry", it.Key(), errBadKey)
			continue
		}
		v, gerr := db.get(messageKey(id))
		if errors.Is(gerr, gateway.ErrNotFound) {
			// Messages are never deleted, so this is an entry without a
			// body; showing it empty would help nobody.
			continue
		}
		if gerr != nil {
			return nil, "", fmt.Errorf("list inbox %s: message %s: %w", recipient, id, gerr)
		}
		meta, body, derr := decodeMessage(v)
		var raw []byte
		if derr == nil {
			raw, derr = db.readBody(messageKey(id), body)
		}
		if derr != nil {
			db.corrupt("message "+id, nil, derr)
			continue
		}
		out = append(out, gateway.InboxEntry{
			MessageID:  id,
			Raw:        raw,
			ReceivedAt: getTime(pos[:timeLen]),
			AcceptedAt: meta.AcceptedAt,
		})
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("list inbox %s: %w", recipient, err)
	}
	return out, next, nil
}

// purgeInbox deletes every entry of recipient's inbox in b.
func purgeInbox(b *pebble.Batch, recipient string) error {
	for _, t := range []byte{tInbox, tInboxRef} {
		p := addressPrefix(t, recipient)
		if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return err
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
	unlock := db.lock("m" + messageID)
	defer unlock()
	ref := appendID(addressPrefix(tInboxRef, recipient), messageID)
	received, err := db.get(ref)
	if err != nil {
		return fmt.Errorf("ack %s in %s: %w", messageID, recipient, err)
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(appendID(append(addressPrefix(tInbox, recipient), received...), messageID), nil)
	_ = b.Delete(ref, nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("ack %s in %s: %w", messageID, recipient, err)
	}
	return nil
}
