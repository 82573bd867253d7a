package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// messageMeta is the part of a stored message that listings read; the raw
// message follows it in the value so that listings never decode the body.
type messageMeta struct {
	Sender     string         `json:"sender"`
	Recipients []string       `json:"recipients"`
	Subject    string         `json:"subject,omitempty"`
	Origin     gateway.Origin `json:"origin,omitempty"`
	AcceptedAt time.Time      `json:"accepted_at"`
	// Verification is the sender verification (nil in records written
	// before it was kept).
	Verification *gateway.SenderVerification `json:"sender_verification,omitempty"`
}

func encodeMessage(m *gateway.StoredMessage, acceptedAt time.Time) ([]byte, error) {
	meta := encodeMeta(messageMeta{
		Sender:       m.Sender,
		Recipients:   m.Recipients,
		Subject:      m.Subject,
		Origin:       m.Origin,
		AcceptedAt:   acceptedAt,
		Verification: m.Verification,
	})
	v := make([]byte, 0, binary.MaxVarintLen64+len(meta)+len(m.Raw))
	v = binary.AppendUvarint(v, uint64(len(meta)))
	v = append(v, meta...)
	return append(v, m.Raw...), nil
}

// decodeMessage splits a messages value; raw aliases v.
func decodeMessage(v []byte) (meta messageMeta, raw []byte, err error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return meta, nil, errors.New("corrupt message record")
	}
	if meta, err = decodeMeta(v[k : k+int(n)]); err != nil {
		return meta, nil, fmt.Errorf("corrupt message record: %w", err)
	}
	return meta, v[k+int(n):], nil
}

// idemKey is the idempotency scope: the sender case-insensitively, the key
// exactly.
func idemKey(sender, key string) []byte { return join(strings.ToLower(sender), key) }

// preparedAccept is an Acceptance already encoded, so that the batch
// function (which bbolt may run more than once) only does lookups and puts
// and the encoding work stays outside the write lock.
type preparedAccept struct {
	id         []byte
	message    []byte
	statuses   []byte
	timeKey    []byte
	idemKey    []byte // the scope; nil when the acceptance carries no key
	idemLogKey []byte // the record's key in idem_log
	idemRecord []byte
	tasks      []preparedTask
	inbox      []inboxPut
	workflow   []byte // the coordinated message's workflow, nil without one
}

// inboxPut is one inbox entry written by Accept.
type inboxPut struct {
	refKey, entryKey, received []byte
}

type preparedTask struct {
	id     []byte
	value  []byte
	dueKey []byte
	due    time.Time
}

func prepareTask(t gateway.Task, due time.Time) (preparedTask, error) {
	body := encodeTask(t)
	dueKey := putTime(nil, due)
	return preparedTask{
		id:     []byte(t.ID),
		value:  append(putTime(make([]byte, 0, timeLen+len(body)), due), body...),
		dueKey: append(dueKey, t.ID...),
		due:    due,
	}, nil
}

// put stores the task and its due entry unless a task with its id is
// already there, which keeps re-enqueueing idempotent.
func (p preparedTask) put(tasks, due *wbucket) (bool, error) {
	if tasks.Get(p.id) != nil {
		return false, nil
	}
	if err := tasks.Put(p.id, p.value); err != nil {
		return false, err
	}
	return true, due.Put(p.dueKey, nil)
}

func (db *DB) prepareAccept(a *gateway.Acceptance, now time.Time) (*preparedAccept, error) {
	m := &a.Message
	acceptedAt := m.AcceptedAt
	if acceptedAt.IsZero() {
		acceptedAt = now
	}
	p := &preparedAccept{id: []byte(m.ID)}
	var err error
	if p.message, err = encodeMessage(m, acceptedAt); err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	p.statuses = encodeStatuses(a.Statuses)
	p.timeKey = append(putTime(nil, acceptedAt), m.ID...)
	if a.Idempotency.Key != "" {
		rec := a.Idempotency.Filled(m, now)
		p.idemKey = idemKey(rec.Sender, rec.Key)
		p.idemLogKey = append(putTime(nil, rec.CreatedAt), p.idemKey...)
		p.idemRecord = encodeIdem(rec)
	}
	for _, t := range a.Tasks {
		due := t.NotBefore
		if due.IsZero() {
			due = now
		}
		pt, err := prepareTask(t, due)
		if err != nil {
			return nil, err
		}
		p.tasks = append(p.tasks, pt)
	}
	if a.Workflow != nil {
		if a.Workflow.WorkflowID != m.ID {
			return nil, fmt.Errorf("workflow %s accepted with message %s", a.Workflow.WorkflowID, m.ID)
		}
		if p.workflow, err = json.Marshal(a.Workflow); err != nil {
			return nil, fmt.Errorf("encode workflow: %w", err)
		}
	}
	received := putTime(nil, acceptedAt)
	for _, r := range a.Inbox {
		prefix := inboxPrefix(r)
		p.inbox = append(p.inbox, inboxPut{
			refKey:   append(bytes.Clone(prefix), m.ID...),
			entryKey: append(append(bytes.Clone(prefix), received...), m.ID...),
			received: received,
		})
	}
	return p, nil
}

// Accept stores the message, its statuses, its idempotency record, its
// listing entry and its tasks in one transaction.
func (db *DB) Accept(ctx context.Context, a *gateway.Acceptance) (*gateway.IdempotencyRecord, error) {
	if a == nil || a.Message.ID == "" {
		return nil, errors.New("accept: message without id")
	}
	id := a.Message.ID
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept %s: %w", id, err)
	}
	defer release()
	now := db.now()
	p, err := db.prepareAccept(a, now)
	if err != nil {
		return nil, fmt.Errorf("accept %s: %w", id, err)
	}
	// A duplicate is an answer, not a failure: reporting it through these
	// variables rather than the function's error keeps it from aborting
	// the other writes sharing the batch.
	var (
		earlier   *gateway.IdempotencyRecord
		idExists  bool
		taskAdded bool
	)
	err = db.commit.do(func(tx *wtx) error {
		earlier, idExists, taskAdded = nil, false, false
		// Every check comes before the first write: an answer of
		// "duplicate" must leave the transaction untouched.
		idem, idemLog := tx.Bucket(bucketIdem), tx.Bucket(bucketIdemLog)
		// An expired record of the same scope is deleted below, from
		// idem_log (expiredLogKey) or from idem (expiredInIdem).
		var (
			expiredLogKey []byte
			expiredInIdem bool
		)
		if p.idemKey != nil {
			k, v := db.recent.find(idemLog, p.idemKey)
			if v == nil {
				v = idem.Get(p.idemKey)
			}
			if v != nil {
				rec, err := decodeIdem(p.idemKey, v)
				if err != nil {
					return fmt.Errorf("corrupt idempotency record: %w", err)
				}
				if now.Before(rec.CreatedAt.Add(gateway.IdempotencyWindow)) {
					earlier = &rec
					return nil
				}
				expiredLogKey, expiredInIdem = k, k == nil
			}
		}
		messages := tx.Bucket(bucketMessages)
		statuses, msgTime := tx.Bucket(bucketStatuses), tx.Bucket(bucketMsgTime)
		if messages.Get(p.id) != nil {
			// Nothing of that message is answered: it may be another
			// sender's.
			idExists = true
			return nil
		}
		if expiredLogKey != nil {
			if err := idemLog.Delete(expiredLogKey); err != nil {
				return err
			}
			db.recent.remove(expiredLogKey)
		}
		if expiredInIdem {
			// An entry of earlier versions' time index (idem_time) may
			// still point at it: the sweeper drops that entry when it
			// finds the record gone (dropIdemRecord).
			if err := idem.Delete(p.idemKey); err != nil {
				return err
			}
		}
		if err := messages.Put(p.id, p.message); err != nil {
			return err
		}
		if err := statuses.Put(p.id, p.statuses); err != nil {
			return err
		}
		if err := msgTime.Put(p.timeKey, nil); err != nil {
			return err
		}
		if p.idemKey != nil {
			if err := idemLog.Put(p.idemLogKey, p.idemRecord); err != nil {
				return err
			}
			db.recent.add(p.idemLogKey)
			if db.recent.len() > db.maxRecent {
				select {
				case db.moveRecent <- struct{}{}:
				default:
				}
			}
		}
		if p.workflow != nil {
			// The message id is new (checked above), and the workflow id
			// is the message id, so no workflow can be replaced here.
			if err := tx.Bucket(bucketWorkflows).Put(p.id, p.workflow); err != nil {
				return err
			}
		}
		tasks, due := tx.Bucket(bucketTasks), tx.Bucket(bucketDue)
		for _, t := range p.tasks {
			added, err := t.put(tasks, due)
			if err != nil {
				return err
			}
			taskAdded = taskAdded || added
		}
		refs, inbox := tx.Bucket(bucketInboxRef), tx.Bucket(bucketInbox)
		for _, in := range p.inbox {
			if refs.Get(in.refKey) != nil {
				continue
			}
			if err := refs.Put(in.refKey, in.received); err != nil {
				return err
			}
			if err := inbox.Put(in.entryKey, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accept %s: %w", id, err)
	}
	if idExists {
		return nil, fmt.Errorf("accept %s: %w", id, gateway.ErrMessageIDTaken)
	}
	if earlier != nil {
		return earlier, fmt.Errorf("accept %s: key used by %s: %w", id, earlier.MessageID, gateway.ErrDuplicate)
	}
	if taskAdded {
		db.queue.work.added(firstDue(p.tasks))
	}
	return nil, nil
}

// GetMessage returns gateway.ErrNotFound for an unknown id.
func (db *DB) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	defer release()
	var m *gateway.StoredMessage
	err = db.read(func(r reader) error {
		v := r.bucket(bucketMessages).Get([]byte(id))
		if v == nil {
			return gateway.ErrNotFound
		}
		meta, raw, err := decodeMessage(v)
		if err != nil {
			return err
		}
		m = &gateway.StoredMessage{
			ID:           id,
			Raw:          clone(raw),
			Sender:       meta.Sender,
			Recipients:   meta.Recipients,
			Subject:      meta.Subject,
			Origin:       meta.Origin,
			AcceptedAt:   meta.AcceptedAt,
			Verification: meta.Verification,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	return m, nil
}

// GetStatuses returns the statuses in the order the message was accepted with.
func (db *DB) GetStatuses(ctx context.Context, id string) ([]gateway.RecipientStatus, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("get statuses %s: %w", id, err)
	}
	defer release()
	var rs []gateway.RecipientStatus
	err = db.read(func(r reader) error {
		rs, err = readStatuses(r, []byte(id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get statuses %s: %w", id, err)
	}
	return rs, nil
}

func readStatuses(r reader, id []byte) ([]gateway.RecipientStatus, error) {
	v := r.bucket(bucketStatuses).Get(id)
	if v == nil {
		return nil, gateway.ErrNotFound
	}
	rs, err := decodeStatuses(v)
	if err != nil {
		return nil, fmt.Errorf("corrupt statuses: %w", err)
	}
	return rs, nil
}

// mergeStatuses writes updates over the stored statuses of the same
// addresses. A stored entry keeps its address spelling; an update for an
// address the message does not have is appended, as a per-recipient item
// store would do.
func mergeStatuses(tx *wtx, id []byte, updates []gateway.RecipientStatus) error {
	rs, err := readStatuses(tx, id)
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
	return tx.Bucket(bucketStatuses).Put(id, encodeStatuses(rs))
}

// UpdateStatuses replaces the named recipients' statuses.
func (db *DB) UpdateStatuses(ctx context.Context, id string, updates []gateway.RecipientStatus) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("update statuses %s: %w", id, err)
	}
	defer release()
	key := []byte(id)
	var missing bool
	err = db.commit.do(func(tx *wtx) error {
		missing = false
		err := mergeStatuses(tx, key, updates)
		if errors.Is(err, gateway.ErrNotFound) {
			// Not a failure of the batch: nothing was written.
			missing = true
			return nil
		}
		return err
	})
	if err == nil && missing {
		err = gateway.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update statuses %s: %w", id, err)
	}
	return nil
}

// ListMessages walks the time index newest first, filtering as it goes.
// One call examines at most 10×limit+1000 index entries, so a page can come
// back short (even empty) with a cursor when the filters are selective; the
// cursor is empty only when the listing is complete.
func (db *DB) ListMessages(ctx context.Context, q gateway.MessageQuery) ([]gateway.MessageSummary, string, error) {
	limit := pageLimit(q.Limit)
	var from []byte
	if q.Cursor != "" {
		var err error
		if from, err = decodeCursor(cursorMessages, q.Cursor, timeLen); err != nil {
			return nil, "", fmt.Errorf("list messages: %w", err)
		}
	}
	release, err := db.enter(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	defer release()
	budget := 10*limit + 1000
	var (
		out  []gateway.MessageSummary
		next string
	)
	err = db.readLong(func(r reader) error {
		messages := r.bucket(bucketMessages)
		c := r.bucket(bucketMsgTime).Cursor()
		var k []byte
		if from == nil {
			k, _ = c.Last()
		} else if k, _ = c.Seek(from); k == nil {
			k, _ = c.Last()
		} else {
			// Seek lands on the first key ≥ the cursor; everything from
			// there up was on earlier pages.
			k, _ = c.Prev()
		}
		var last []byte
		for examined := 0; k != nil; k, _ = c.Prev() {
			if !q.Since.IsZero() && getTime(k).Before(q.Since) {
				return nil
			}
			if len(out) == limit || examined == budget {
				next = encodeCursor(cursorMessages, last)
				return nil
			}
			examined++
			last = k
			id := k[timeLen:]
			v := messages.Get(id)
			if v == nil {
				continue
			}
			meta, _, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %s: %w", id, err)
			}
			if !matchParties(q, &meta) {
				continue
			}
			rs, err := readStatuses(r, id)
			if err != nil {
				return fmt.Errorf("message %s: %w", id, err)
			}
			state := gateway.DeriveState(rs)
			if q.Status != "" && state != q.Status {
				continue
			}
			out = append(out, gateway.MessageSummary{
				MessageID:  string(id),
				Sender:     meta.Sender,
				Recipients: meta.Recipients,
				Subject:    meta.Subject,
				Status:     state,
				CreatedAt:  meta.AcceptedAt,
				Statuses:   rs,
			})
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	return out, next, nil
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
