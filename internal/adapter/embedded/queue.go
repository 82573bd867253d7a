package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// queueState is all the queue keeps in memory: the leases of tasks that
// callers received and have not settled yet.
type queueState struct {
	// mu covers leased and seq, and is held across Receive's scan so that a
	// settle (answered, then drop the lease under mu) can never interleave
	// with a scan that saw the task before the answer but the lease after.
	// A scan started after the answer sees the settle: DB.read runs it in
	// the committer's transaction while the settle is not checkpointed.
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

// signal wakes the receivers waiting for work. Waking them is not free:
// each runs a lease scan, in the committer's transaction, under queueState's
// mutex, which every settle then waits for. The Immediate Path stores a task
// with every pushed message, due only after its window; a receiver already
// asleep until something earlier has nothing to gain from it. So added
// wakes the receivers only when one of them would otherwise sleep past the
// new work's due time.
//
// A round is the life of one channel: wait hands it out, a broadcast closes
// it and the next wait makes a new one.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
	// asleep holds the wake time of each receiver asleep on ch (zero: it
	// has no wake time, it waits for work).
	asleep map[uint64]time.Time
	nextID uint64
	// early is the earliest due time of the work added on this round
	// without closing ch: a receiver whose scan began on the round may have
	// missed it.
	early time.Time
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// broadcast wakes every receiver.
func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broadcastLocked()
}

func (s *signal) broadcastLocked() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	clear(s.asleep)
	s.early = time.Time{}
}

// firstDue is the earliest due time of tasks. Some of them may have been
// stored already; waking receivers for those is merely early.
func firstDue(tasks []preparedTask) time.Time {
	var first time.Time
	for i, t := range tasks {
		if i == 0 || t.due.Before(first) {
			first = t.due
		}
	}
	return first
}

// added reports that work due at `due` was stored (answered).
func (s *signal) added(due time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		// No receiver took this round: the next one to scan sees the work.
		return
	}
	for _, wake := range s.asleep {
		if wake.IsZero() || due.Before(wake) {
			s.broadcastLocked()
			return
		}
	}
	if s.early.IsZero() || due.Before(s.early) {
		s.early = due
	}
}

// sleep registers a receiver that took ch before its scan and found its
// next wake at `wake` (zero: none). ok is false when the receiver must scan
// again instead: ch was closed, or work that its scan may have missed is
// due before wake. A registered receiver calls awake(id) when it wakes.
func (s *signal) sleep(ch <-chan struct{}, wake time.Time) (id uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != ch {
		return 0, false
	}
	if !s.early.IsZero() && (wake.IsZero() || s.early.Before(wake)) {
		// Which receivers scanned before that work was stored is not
		// known, so all of them look again.
		s.broadcastLocked()
		return 0, false
	}
	if s.asleep == nil {
		s.asleep = make(map[uint64]time.Time)
	}
	s.nextID++
	s.asleep[s.nextID] = wake
	return s.nextID, true
}

func (s *signal) awake(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.asleep, id)
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
	now := db.now()
	prepared := make([]preparedTask, 0, len(tasks))
	for _, t := range tasks {
		due := t.NotBefore
		if due.IsZero() {
			due = now
		}
		p, err := prepareTask(t, due)
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		prepared = append(prepared, p)
	}
	var added bool
	err = db.commit.do(func(tx *wtx) error {
		added = false
		b, due := tx.Bucket(bucketTasks), tx.Bucket(bucketDue)
		for _, p := range prepared {
			ok, err := p.put(b, due)
			if err != nil {
				return err
			}
			added = added || ok
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", tasks[0].ID, err)
	}
	if added {
		db.queue.work.added(firstDue(prepared))
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

// lease walks the due index from its start up to now, skipping tasks under
// a live lease, and leases what it returns. When it returns nothing, wake
// is the next moment something could become receivable (a future due time
// or a lease running out), zero if none.
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
	var mine []string // the leases this run of the scan took
	err = db.read(func(r reader) error {
		// The committer may run a read again (see committer.do): the
		// leases of an earlier run go first.
		for _, id := range mine {
			delete(q.leased, id)
		}
		mine, out, wake = mine[:0], out[:0], time.Time{}
		tasks := r.bucket(bucketTasks)
		c := r.bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if due := getTime(k); due.After(now) {
				sooner(due)
				return nil
			}
			id := string(k[timeLen:])
			if until, ok := q.leased[id]; ok {
				if until.After(now) {
					sooner(until)
					continue
				}
				delete(q.leased, id)
			}
			v := tasks.Get(k[timeLen:])
			if len(v) < timeLen {
				// Task and due entry are written and removed together,
				// so this is unreachable short of corruption.
				continue
			}
			t, err := decodeTask(k[timeLen:], v[timeLen:])
			if err != nil {
				return fmt.Errorf("task %s: corrupt record: %w", id, err)
			}
			q.seq++
			t.Lease = strconv.FormatUint(q.seq, 36)
			q.leased[id] = now.Add(db.leaseTimeout)
			mine = append(mine, id)
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		for _, t := range out {
			delete(q.leased, t.ID)
		}
		return nil, time.Time{}, fmt.Errorf("receive: %w", err)
	}
	return out, wake, nil
}

// removeTask deletes a task and its due entry, if it is still there.
func removeTask(tx *wtx, id []byte) error {
	tasks := tx.Bucket(bucketTasks)
	v := tasks.Get(id)
	if v == nil {
		return nil
	}
	if len(v) < timeLen {
		return fmt.Errorf("task %s: corrupt record", id)
	}
	dueKey := append(clone(v[:timeLen]), id...)
	if err := tx.Bucket(bucketDue).Delete(dueKey); err != nil {
		return err
	}
	return tasks.Delete(id)
}

// Ack removes a finished task. Acking a task that is already gone is not an
// error: with at-least-once delivery two workers may finish the same task.
func (db *DB) Ack(ctx context.Context, t gateway.Task) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("ack %s: %w", t.ID, err)
	}
	defer release()
	id := []byte(t.ID)
	if err := db.commit.do(func(tx *wtx) error { return removeTask(tx, id) }); err != nil {
		return fmt.Errorf("ack %s: %w", t.ID, err)
	}
	// Only after the commit, so that a Receive never finds the task both
	// still stored and no longer leased.
	db.queue.release(t.ID)
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
	p, err := prepareTask(t, at)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	err = db.commit.do(func(tx *wtx) error {
		if err := removeTask(tx, p.id); err != nil {
			return err
		}
		_, err := p.put(tx.Bucket(bucketTasks), tx.Bucket(bucketDue))
		return err
	})
	if err != nil {
		return fmt.Errorf("retry %s: %w", t.ID, err)
	}
	db.queue.release(t.ID)
	db.queue.work.added(p.due)
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
	if d.TaskID == "" {
		d.TaskID = t.ID
	}
	if d.MessageID == "" {
		d.MessageID = t.MessageID
	}
	if d.Recipients == nil {
		d.Recipients = t.Recipients
	}
	if d.Attempts == 0 {
		d.Attempts = t.Attempt
	}
	if d.DLQTimestamp.IsZero() {
		d.DLQTimestamp = db.now()
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", t.ID, err)
	}
	key := append(putTime(nil, d.DLQTimestamp), t.ID...)
	id := []byte(t.ID)
	err = db.commit.do(func(tx *wtx) error {
		if err := removeTask(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bucketDeadLetters).Put(key, v)
	})
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", t.ID, err)
	}
	db.queue.release(t.ID)
	return nil
}

// DeadLetters returns up to limit dead-letter records, oldest first, for
// operators (limit defaults as in the listings).
func (db *DB) DeadLetters(ctx context.Context, limit int) ([]gateway.DeadLetter, error) {
	limit = pageLimit(limit)
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer release()
	var out []gateway.DeadLetter
	err = db.readLong(func(r reader) error {
		c := r.bucket(bucketDeadLetters).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			var d gateway.DeadLetter
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("dead letter %q: corrupt record: %w", k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

// UpdateAndAck records a delivery's outcome and removes its task in one
// commit (gateway.Settler): UpdateStatuses then Ack, or neither.
func (db *DB) UpdateAndAck(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task) error {
	return db.settle(ctx, messageID, updates, t, nil)
}

// UpdateAndRetry records a failed attempt and reschedules its task at `at`
// in one commit (gateway.Settler): UpdateStatuses then Retry, or neither.
func (db *DB) UpdateAndRetry(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task, at time.Time) error {
	if at.IsZero() {
		at = db.now()
	}
	p, err := prepareTask(t, at)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return db.settle(ctx, messageID, updates, t, &p)
}

// settle is UpdateAndAck (retry nil) and UpdateAndRetry.
func (db *DB) settle(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task, retry *preparedTask) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("settle %s: %w", t.ID, err)
	}
	defer release()
	key, id := []byte(messageID), []byte(t.ID)
	var missing bool
	err = db.commit.do(func(tx *wtx) error {
		missing = false
		// Statuses first: a message that is gone leaves the task as it
		// is, exactly as UpdateStatuses failing before the Ack would.
		if err := mergeStatuses(tx, key, updates); errors.Is(err, gateway.ErrNotFound) {
			missing = true
			return nil
		} else if err != nil {
			return err
		}
		if err := removeTask(tx, id); err != nil {
			return err
		}
		if retry != nil {
			_, err := retry.put(tx.Bucket(bucketTasks), tx.Bucket(bucketDue))
			return err
		}
		return nil
	})
	if err == nil && missing {
		err = gateway.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("settle %s: %w", t.ID, err)
	}
	db.queue.release(t.ID)
	if retry != nil {
		// A waiting Receive must see the new due time (as after Retry).
		db.queue.work.added(retry.due)
	}
	return nil
}
