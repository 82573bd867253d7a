package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// queueState is all the queue keeps in memory: the leases of tasks that
// callers received and have not settled yet.
type queueState struct {
	// mu covers leased and seq, and is held across Receive's scan (from
	// before its iterator is opened) so that a settle (committed, then
	// drop the lease under mu) can never interleave with a scan that saw
	// the task before the commit but the lease after.
	mu     sync.Mutex
	leased map[string]time.Time // task id → lease expiry
	seq    uint64
	work   signal
}

func newQueueState() queueState {
	return queueState{leased: make(map[string]time.Time)}
}

func (q *queueState) release(id string) {
	q.mu.Lock()
	delete(q.leased, id)
	q.mu.Unlock()
}

// putTaskIfAbsent adds t, due at `due`, to b unless a task with its id is
// stored, which keeps re-enqueueing idempotent. The caller holds the
// task's lock. One key holds the task in due order; a second, its id →
// due time, finds it for Ack and Retry.
func (db *DB) putTaskIfAbsent(b *pebble.Batch, t gateway.Task, due time.Time) (bool, error) {
	dk := taskDueKey(t.ID)
	if ok, err := db.has(dk); err != nil || ok {
		return false, err
	}
	d := putTime(nil, due)
	if err := b.Set(queueKey(d, t.ID), encodeTask(t), nil); err != nil {
		return false, err
	}
	return true, b.Set(dk, d, nil)
}

// putAcceptedTask is putTaskIfAbsent for a task of message id, which
// Accept has just found new: a task whose id is the message id's
// (gateway.TaskID) cannot be stored yet, so only other ids are looked up.
func (db *DB) putAcceptedTask(b *pebble.Batch, id string, t gateway.Task, due time.Time) (bool, error) {
	if msg, _, ok := strings.Cut(t.ID, "|"); !ok || msg != id {
		return db.putTaskIfAbsent(b, t, due)
	}
	d := putTime(nil, due)
	if err := b.Set(queueKey(d, t.ID), encodeTask(t), nil); err != nil {
		return false, err
	}
	return true, b.Set(taskDueKey(t.ID), d, nil)
}

// removeTask deletes the stored task id in b, if there is one. The caller
// holds the task's lock.
func (db *DB) removeTask(b *pebble.Batch, id string) error {
	dk := taskDueKey(id)
	due, err := db.get(dk)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(due) != timeLen {
		return fmt.Errorf("task %s: due entry: %w", id, errCorrupt)
	}
	if err := b.Delete(queueKey(due, id), nil); err != nil {
		return err
	}
	return b.Delete(dk, nil)
}

// Enqueue adds tasks that are not stored yet; a task whose id is present
// (queued, leased or scheduled for retry) is left as it is.
func (db *DB) Enqueue(ctx context.Context, tasks ...gateway.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", tasks[0].ID, err)
	}
	defer release()
	keys := make([]string, 0, len(tasks))
	for _, t := range tasks {
		keys = append(keys, "t"+t.ID)
	}
	unlock := db.lock(keys...)
	defer unlock()
	now := db.now()
	b := db.pdb.NewBatch()
	seen := make(map[string]bool, len(tasks))
	var first time.Time
	added := false
	for _, t := range tasks {
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		due := t.NotBefore
		if due.IsZero() {
			due = now
		}
		ok, err := db.putTaskIfAbsent(b, t, due)
		if err != nil {
			b.Close()
			return fmt.Errorf("enqueue %s: %w", t.ID, err)
		}
		if ok && (!added || due.Before(first)) {
			first = due
		}
		added = added || ok
	}
	if err := db.commit(b); err != nil {
		return fmt.Errorf("enqueue %s: %w", tasks[0].ID, err)
	}
	if added {
		db.queue.work.added(first)
	}
	return nil
}

// Receive leases up to limit due tasks. With nothing due it waits, without
// polling, until a task is added, the next due time or lease expiry comes,
// wait elapses, ctx is done or the store closes.
func (db *DB) Receive(ctx context.Context, limit int, wait time.Duration) ([]gateway.Task, error) {
	limit = max(limit, 1)
	var deadline <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		// Taken before the scan: work added after the scan has already
		// looked must still wake this round.
		woken := db.queue.work.wait()
		tasks, wake, err := db.lease(ctx, limit)
		if err != nil || len(tasks) > 0 || wait <= 0 {
			return tasks, err
		}
		sleeper, ok := db.queue.work.sleep(woken, wake)
		if !ok {
			continue
		}
		var wakeC <-chan time.Time
		var wakeTimer *time.Timer
		if !wake.IsZero() {
			wakeTimer = time.NewTimer(max(wake.Sub(db.now()), time.Millisecond))
			wakeC = wakeTimer.C
		}
		var stop bool
		select {
		case <-woken:
		case <-wakeC:
		case <-deadline:
			stop = true
		case <-ctx.Done():
			stop, err = true, fmt.Errorf("receive: %w", ctx.Err())
		case <-db.done:
			stop, err = true, fmt.Errorf("receive: %w", gateway.ErrClosed)
		}
		db.queue.work.awake(sleeper)
		if wakeTimer != nil {
			wakeTimer.Stop()
		}
		if stop {
			return nil, err
		}
	}
}

// lease walks the queue from its start up to now, skipping tasks under a
// live lease, and leases what it returns. When it returns nothing, wake is
// the next moment something could become receivable (a future due time or
// a lease running out), zero if none. A task that cannot be decoded is
// logged and skipped: it must not stop the queue.
func (db *DB) lease(ctx context.Context, limit int) (out []gateway.Task, wake time.Time, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("receive: %w", err)
	}
	defer release()
	q := &db.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	now := db.now()
	sooner := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	it, err := db.iter([]byte{tQueue}, []byte{tQueue + 1})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("receive: %w", err)
	}
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) <= 1+timeLen {
			db.corrupt("queue entry", k, errBadKey)
			continue
		}
		if due := getTime(k[1:]); due.After(now) {
			sooner(due)
			break
		}
		id, kerr := readTaskID(k[1+timeLen:])
		if kerr != nil {
			db.corrupt("queue entry", k, kerr)
			continue
		}
		if until, ok := q.leased[id]; ok {
			if until.After(now) {
				sooner(until)
				continue
			}
			delete(q.leased, id)
		}
		v, verr := it.ValueAndErr()
		if verr != nil {
			err = verr
			break
		}
		t, derr := decodeTask(id, v)
		if derr != nil {
			db.corrupt("task "+id, k, derr)
			continue
		}
		q.seq++
		t.Lease = strconv.FormatUint(q.seq, 36)
		q.leased[id] = now.Add(db.leaseTimeout)
		out = append(out, t)
	}
	if err == nil {
		err = it.Error()
	}
	closeIter(it, &err)
	if err != nil {
		for _, t := range out {
			delete(q.leased, t.ID)
		}
		return nil, time.Time{}, fmt.Errorf("receive: %w", err)
	}
	return out, wake, nil
}

// Ack removes a finished task. Acking a task that is already gone is not an
// error: with at-least-once delivery two workers may finish the same task.
func (db *DB) Ack(ctx context.Context, t gateway.Task) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("ack %s: %w", t.ID, err)
	}
	defer release()
	if err := db.settleTask(t, nil, nil, time.Time{}); err != nil {
		return fmt.Errorf("ack %s: %w", t.ID, err)
	}
	return nil
}

// Retry stores the task as given (with its new Attempt) due at `at`. A task
// that was already removed is stored again: the worker still holds work that
// must not be lost.
func (db *DB) Retry(ctx context.Context, t gateway.Task, at time.Time) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("retry %s: %w", t.ID, err)
	}
	defer release()
	if at.IsZero() {
		at = db.now()
	}
	if err := db.settleTask(t, nil, &t, at); err != nil {
		return fmt.Errorf("retry %s: %w", t.ID, err)
	}
	return nil
}

// DeadLetter removes the task and keeps d for operators. Fields of d left
// empty are filled from the task.
func (db *DB) DeadLetter(ctx context.Context, t gateway.Task, d gateway.DeadLetter) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", t.ID, err)
	}
	defer release()
	d = d.FilledFrom(t, db.now())
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", t.ID, err)
	}
	dead := func(b *pebble.Batch) error {
		return b.Set(appendTaskID(putTime(key(tDead, timeLen+len(t.ID)+20), d.DLQTimestamp), t.ID), v, nil)
	}
	if err := db.settleTask(t, dead, nil, time.Time{}); err != nil {
		return fmt.Errorf("dead-letter %s: %w", t.ID, err)
	}
	return nil
}

// settleTask removes task t, runs also (when given) on the same batch,
// and stores retry (when given) due at `at`, in one commit; then drops
// the lease and, for a retry, wakes the receivers that need to know.
func (db *DB) settleTask(t gateway.Task, also func(*pebble.Batch) error, retry *gateway.Task, at time.Time) error {
	unlock := db.lock("t" + t.ID)
	defer unlock()
	b := db.pdb.NewBatch()
	if err := db.fillSettle(b, t, also, retry, at); err != nil {
		b.Close()
		return err
	}
	if err := db.commit(b); err != nil {
		return err
	}
	db.afterSettle(t, retry, at)
	return nil
}

func (db *DB) fillSettle(b *pebble.Batch, t gateway.Task, also func(*pebble.Batch) error, retry *gateway.Task, at time.Time) error {
	if err := db.removeTask(b, t.ID); err != nil {
		return err
	}
	if also != nil {
		if err := also(b); err != nil {
			return err
		}
	}
	if retry == nil {
		return nil
	}
	d := putTime(nil, at)
	if err := b.Set(queueKey(d, retry.ID), encodeTask(*retry), nil); err != nil {
		return err
	}
	return b.Set(taskDueKey(retry.ID), d, nil)
}

// afterSettle runs once the settle is committed, so that a Receive never
// finds the task both still stored and no longer leased.
func (db *DB) afterSettle(t gateway.Task, retry *gateway.Task, at time.Time) {
	db.queue.release(t.ID)
	if retry != nil {
		db.queue.work.added(at)
	}
}

// DeadLetters returns up to limit dead-letter records, oldest first, for
// operators (limit defaults as in the listings). A record that cannot be
// decoded is logged and left out.
func (db *DB) DeadLetters(ctx context.Context, limit int) (out []gateway.DeadLetter, err error) {
	limit = pageLimit(limit)
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tDead}, []byte{tDead + 1})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer closeIter(it, &err)
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			return nil, fmt.Errorf("dead letters: %w", verr)
		}
		var d gateway.DeadLetter
		if jerr := json.Unmarshal(v, &d); jerr != nil {
			db.corrupt("dead letter", it.Key(), jerr)
			continue
		}
		out = append(out, d)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

// UpdateAndAck records a delivery's outcome and removes its task in one
// commit (gateway.Settler): UpdateStatuses then Ack, or neither.
func (db *DB) UpdateAndAck(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task) error {
	return db.settleWithStatuses(ctx, messageID, updates, t, nil, time.Time{})
}

// UpdateAndRetry records a failed attempt and reschedules its task at `at`
// in one commit (gateway.Settler): UpdateStatuses then Retry, or neither.
func (db *DB) UpdateAndRetry(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task, at time.Time) error {
	if at.IsZero() {
		at = db.now()
	}
	return db.settleWithStatuses(ctx, messageID, updates, t, &t, at)
}

func (db *DB) settleWithStatuses(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task, retry *gateway.Task, at time.Time) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("settle %s: %w", t.ID, err)
	}
	defer release()
	unlock := db.lock("m"+messageID, "t"+t.ID)
	defer unlock()
	b := db.pdb.NewBatch()
	// Statuses first: a message that is gone leaves the task as it is,
	// exactly as UpdateStatuses failing before the Ack would.
	if err := db.mergeStatuses(b, messageID, updates); err != nil {
		b.Close()
		return fmt.Errorf("settle %s: %w", t.ID, err)
	}
	if err := db.fillSettle(b, t, nil, retry, at); err != nil {
		b.Close()
		return fmt.Errorf("settle %s: %w", t.ID, err)
	}
	if err := db.commit(b); err != nil {
		return fmt.Errorf("settle %s: %w", t.ID, err)
	}
	db.afterSettle(t, retry, at)
	return nil
}
