package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// ErrCorrupt is returned (wrapped) for a record that cannot be decoded:
// for that record alone, never for a listing that passes it.
var ErrCorrupt = errCorrupt

// Accept stores the message, its statuses, its idempotency record, its
// listing entry, its inbox entries and its tasks in one synced batch.
func (db *DB) Accept(ctx context.Context, a *gateway.Acceptance) (*gateway.IdempotencyRecord, error) {
	if a == nil || a.Message.ID == "" {
		return nil, errors.New("accept: message without id")
	}
	m := &a.Message
	id := m.ID
	if a.Workflow != nil && a.Workflow.WorkflowID != id {
		return nil, fmt.Errorf("accept %s: workflow %s accepted with another id", id, a.Workflow.WorkflowID)
	}
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept %s: %w", id, err)
	}
	defer release()
	now := db.now()
	acceptedAt := m.AcceptedAt
	if acceptedAt.IsZero() {
		acceptedAt = now
	}
	var idem []byte
	var rec gateway.IdempotencyRecord
	lockKeys := []string{"m" + id}
	if a.Idempotency.Key != "" {
		rec = a.Idempotency.Filled(m, now)
		idem = idemKey(rec.Sender, rec.Key)
		lockKeys = append(lockKeys, "i"+string(idem))
	}
	for _, t := range a.Tasks {
		lockKeys = append(lockKeys, "t"+t.ID)
	}
	unlock := db.lock(lockKeys...)
	defer unlock()
	if idem != nil {
		v, err := db.get(idem)
		if err != nil && !errors.Is(err, gateway.ErrNotFound) {
			return nil, fmt.Errorf("accept %s: %w", id, err)
		}
		if v != nil {
			earlier, err := decodeIdem(idem, v)
			if err != nil {
				return nil, fmt.Errorf("accept %s: idempotency record: %w", id, err)
			}
			if now.Before(earlier.CreatedAt.Add(gateway.IdempotencyWindow)) {
				return &earlier, fmt.Errorf("accept %s: key used by %s: %w", id, earlier.MessageID, gateway.ErrDuplicate)
			}
			// Expired: the new record below replaces it.
		}
	}
	mk := messageKey(id)
	if ok, err := db.has(mk); err != nil {
		return nil, fmt.Errorf("accept %s: %w", id, err)
	} else if ok {
		// Nothing of that message is answered: it may be another sender's.
		return nil, fmt.Errorf("accept %s: %w", id, gateway.ErrMessageIDTaken)
	}
	var body *bodyRef
	if len(m.Raw) >= largeBody {
		if body, err = db.writeBody(mk, m.Raw); err != nil {
			return nil, fmt.Errorf("accept %s: %w", id, err)
		}
	}
	b := db.pdb.NewBatch(pebble.WithInitialSizeBytes(batchSizeFor(a, body)))
	putMessage(b, mk, m, acceptedAt, body)
	_ = b.Set(statusKey(id), encodeStatuses(a.Statuses), nil)
	_ = b.Set(msgTimeKey(acceptedAt, id), nil, nil)
	if idem != nil {
		_ = b.Set(idem, encodeIdem(rec), nil)
	}
	if a.Workflow != nil {
		v, err := json.Marshal(a.Workflow)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("accept %s: encode workflow: %w", id, err)
		}
		_ = b.Set(workflowKey(id), v, nil)
	}
	var first time.Time
	added := false
	for _, t := range a.Tasks {
		due := t.NotBefore
		if due.IsZero() {
			due = now
		}
		ok, err := db.putAcceptedTask(b, id, t, due)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("accept %s: %w", id, err)
		}
		if ok && (!added || due.Before(first)) {
			first = due
		}
		added = added || ok
	}
	received := putTime(nil, acceptedAt)
	for _, r := range a.Inbox {
		// The message id is new, so no inbox holds it yet.
		putInbox(b, r, id, received)
	}
	if err := db.commit(b); err != nil {
		if body != nil {
			db.removeBody(mk)
		}
		return nil, fmt.Errorf("accept %s: %w", id, err)
	}
	if added {
		db.queue.work.added(first)
	}
	return nil, nil
}

// putMessage writes the message value straight into the batch: a large
// message is copied once, from the request's bytes into the batch, not
// first into a value of its own. A body kept in a file (bodies.go) leaves
// only its reference.
func putMessage(b *pebble.Batch, k []byte, m *gateway.StoredMessage, acceptedAt time.Time, body *bodyRef) {
	if body != nil {
		_ = b.Set(k, appendBodyRef(encodeMeta(m, acceptedAt, 48), body), nil)
		return
	}
	meta := encodeMeta(m, acceptedAt, 0)
	op := b.SetDeferred(len(k), len(meta)+len(m.Raw))
	copy(op.Key, k)
	copy(op.Value, meta)
	copy(op.Value[len(meta):], m.Raw)
	_ = op.Finish()
}

// batchSizeFor is about the size of an Acceptance's batch, so that the
// batch is allocated once, at that size. (NewBatchWithSize would not do:
// the batch's first record sizes it again, to the next power of two, so a
// 10 MiB message took a 10 MiB and then a 16 MiB buffer.)
func batchSizeFor(a *gateway.Acceptance, body *bodyRef) int {
	n := 512 + 256*(len(a.Tasks)+len(a.Inbox)+len(a.Statuses))
	if body == nil {
		n += len(a.Message.Raw)
	}
	return n
}

// GetMessage returns gateway.ErrNotFound for an unknown id.
func (db *DB) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	defer release()
	v, err := db.get(messageKey(id))
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	meta, body, err := decodeMessage(v)
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	raw, err := db.readBody(messageKey(id), body)
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	return &gateway.StoredMessage{
		ID:           id,
		Raw:          raw,
		Sender:       meta.Sender,
		Recipients:   meta.Recipients,
		Subject:      meta.Subject,
		Origin:       meta.Origin,
		AcceptedAt:   meta.AcceptedAt,
		Verification: meta.Verification,
	}, nil
}

// GetStatuses returns the statuses in the order the message was accepted with.
func (db *DB) GetStatuses(ctx context.Context, id string) ([]gateway.RecipientStatus, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("get statuses %s: %w", id, err)
	}
	defer release()
	rs, err := db.readStatuses(id)
	if err != nil {
		return nil, fmt.Errorf("get statuses %s: %w", id, err)
	}
	return rs, nil
}

func (db *DB) readStatuses(id string) ([]gateway.RecipientStatus, error) {
	v, err := db.get(statusKey(id))
	if err != nil {
		return nil, err
	}
	rs, err := decodeStatuses(v)
	if err != nil {
		return nil, fmt.Errorf("statuses: %w", err)
	}
	return rs, nil
}

// mergeStatuses puts into b the stored statuses of message id with
// updates written over those of the same addresses. A stored entry keeps
// its address spelling; an update for an address the message does not
// have is appended. The caller holds the message's lock.
func (db *DB) mergeStatuses(b *pebble.Batch, id string, updates []gateway.RecipientStatus) error {
	rs, err := db.readStatuses(id)
	if err != nil {
		return err
	}
	for _, u := range updates {
		found := false
		for i := range rs {
			if strings.EqualFold(rs[i].Address, u.Address) {
				addr := rs[i].Address
				rs[i] = u
				rs[i].Address = addr
				found = true
				break
			}
		}
		if !found {
			rs = append(rs, u)
		}
	}
	return b.Set(statusKey(id), encodeStatuses(rs), nil)
}

// UpdateStatuses replaces the named recipients' statuses.
func (db *DB) UpdateStatuses(ctx context.Context, id string, updates []gateway.RecipientStatus) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("update statuses %s: %w", id, err)
	}
	defer release()
	unlock := db.lock("m" + id)
	defer unlock()
	b := db.pdb.NewBatch()
	if err := db.mergeStatuses(b, id, updates); err != nil {
		b.Close()
		return fmt.Errorf("update statuses %s: %w", id, err)
	}
	if err := db.commit(b); err != nil {
		return fmt.Errorf("update statuses %s: %w", id, err)
	}
	return nil
}

// ListMessages walks the time index newest first, filtering as it goes.
// One call examines at most 10×limit+1000 index entries, so a page can come
// back short (even empty) with a cursor when the filters are selective; the
// cursor is empty only when the listing is complete. A message whose
// record cannot be read is left out and logged: one damaged record must
// not take every page that holds it down with it.
func (db *DB) ListMessages(ctx context.Context, q gateway.MessageQuery) (out []gateway.MessageSummary, next string, err error) {
	limit := pageLimit(q.Limit)
	upper := []byte{tMsgTime + 1}
	if q.Cursor != "" {
		pos, err := decodeCursor(cursorMessages, q.Cursor, timeLen)
		if err != nil {
			return nil, "", fmt.Errorf("list messages: %w", err)
		}
		upper = append([]byte{tMsgTime}, pos...)
	}
	release, err := db.enter(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tMsgTime}, upper)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	defer closeIter(it, &err)
	budget := 10*limit + 1000
	var last []byte
	for ok, examined := it.Last(), 0; ok; ok = it.Prev() {
		k := it.Key()
		if len(k) <= 1+timeLen {
			db.corrupt("message index entry", k, errBadKey)
			continue
		}
		if !q.Since.IsZero() && getTime(k[1:]).Before(q.Since) {
			break
		}
		if len(out) == limit || examined == budget {
			next = encodeCursor(cursorMessages, last)
			break
		}
		examined++
		last = append(last[:0], k[1:]...)
		id, rest, kerr := readID(k[1+timeLen:])
		if kerr != nil || len(rest) != 0 {
			db.corrupt("message index entry", k, errBadKey)
			continue
		}
		s, ok, rerr := db.summary(id, q)
		if rerr != nil {
			if errors.Is(rerr, errCorrupt) {
				db.corrupt("message "+id, nil, rerr)
				continue
			}
			return nil, "", fmt.Errorf("list messages: %w", rerr)
		}
		if ok {
			out = append(out, s)
		}
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	return out, next, nil
}

// summary reads one message for a listing; ok is false when it does not
// match q (or is gone).
func (db *DB) summary(id string, q gateway.MessageQuery) (gateway.MessageSummary, bool, error) {
	v, err := db.get(messageKey(id))
	if errors.Is(err, gateway.ErrNotFound) {
		return gateway.MessageSummary{}, false, nil
	}
	if err != nil {
		return gateway.MessageSummary{}, false, err
	}
	meta, _, err := decodeMessage(v)
	if err != nil {
		return gateway.MessageSummary{}, false, err
	}
	if !matchParties(q, &meta) {
		return gateway.MessageSummary{}, false, nil
	}
	rs, err := db.readStatuses(id)
	if err != nil {
		return gateway.MessageSummary{}, false, err
	}
	state := gateway.DeriveState(rs)
	if q.Status != "" && state != q.Status {
		return gateway.MessageSummary{}, false, nil
	}
	return gateway.MessageSummary{
		MessageID:  id,
		Sender:     meta.Sender,
		Recipients: meta.Recipients,
		Subject:    meta.Subject,
		Status:     state,
		CreatedAt:  meta.AcceptedAt,
		Statuses:   rs,
	}, true, nil
}

// corrupt logs a record a listing left out.
func (db *DB) corrupt(what string, k []byte, err error) {
	db.log.Error("store: damaged record left out of a listing; run `agentry store check`", "record", what, "key", fmt.Sprintf("%x", k), "err", err)
}

func matchParties(q gateway.MessageQuery, m *messageMeta) bool {
	if q.Sender != "" && !strings.EqualFold(q.Sender, m.Sender) {
		return false
	}
	if q.Recipient != "" && !hasAddress(m.Recipients, q.Recipient) {
		return false
	}
	if q.Party != "" && !strings.EqualFold(q.Party, m.Sender) && !hasAddress(m.Recipients, q.Party) {
		return false
	}
	return true
}

func hasAddress(list []string, addr string) bool {
	for _, a := range list {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}
