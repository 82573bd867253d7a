package embedded

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// committer is the store's only writer. One goroutine takes every write
// queued while it was busy and runs them as a group in a bbolt write
// transaction that stays open across groups; the group's changes are
// appended to the redo log (wal.go) and flushed once, and then its
// callers are answered. Every CheckpointInterval (or when the log grows
// past maxLogBytes, or at Close) the transaction is committed, with the
// number of the last frame it includes, and the log starts over.
//
// An answer therefore costs one small sequential write and one flush, and
// bbolt's own commit — every dirtied page written, two flushes — is paid
// once per checkpoint for hundreds of writes rather than once per group.
// No timer adds latency when the store is idle: a lone write is answered
// as soon as its frame is flushed.
//
// Reads that must see answered writes not yet checkpointed run through
// the committer too (DB.read); the others use an ordinary bbolt view.
type committer struct {
	bolt     *bolt.DB
	log      *redoLog
	maxBatch int
	interval time.Duration
	// begin prepares each transaction before any write runs in it, and
	// rebuilt is told when a transaction was rebuilt from the log, so that
	// state mirroring it (the recent idempotency index) is rebuilt too.
	begin   func(*bolt.Tx)
	rebuilt func(*bolt.Tx)
	calls   chan commitCall
	flushes chan chan error
	stop    chan struct{}
	stopped sync.WaitGroup

	// answered is the number of the last frame flushed (and so answered),
	// committed the last one a checkpoint holds; committed ≤ answered.
	answered, committed atomic.Uint64

	// failure is set when the log or a checkpoint fails (a full disk,
	// typically): the transaction is gone, and the store refuses calls
	// until heal has rebuilt it from the log and committed it, which the
	// next call or Ping attempts. broken is set as well when that
	// rebuilding fails: the log no longer gives back what was answered,
	// and only reopening the store (which recovers from the files) can
	// help.
	failure atomic.Pointer[error]
	broken  atomic.Bool

	// Counters for benchmarks: groups flushed, the calls they carried,
	// and checkpoints.
	commits, writes, checkpoints atomic.Int64

	// Owned by the loop goroutine.
	tx     *bolt.Tx
	w      wtx
	result []error
}

type commitCall struct {
	fn   func(*wtx) error
	done chan error
}

// maxLogBytes makes a checkpoint come early when the log grows past it, so
// that recovery and the transaction's memory stay bounded under a burst of
// large messages.
const maxLogBytes = 16 << 20

func newCommitter(db *bolt.DB, log *redoLog, lsn uint64, maxBatch int, interval time.Duration, begin, rebuilt func(*bolt.Tx)) *committer {
	c := &committer{
		bolt: db, log: log, maxBatch: maxBatch, interval: interval, begin: begin, rebuilt: rebuilt,
		calls: make(chan commitCall, maxBatch), flushes: make(chan chan error), stop: make(chan struct{}),
	}
	c.answered.Store(lsn)
	c.committed.Store(lsn)
	c.w.frame = make([]byte, frameHeader, 64<<10)
	c.stopped.Add(1)
	go c.loop()
	return c
}

var (
	// errFailed wraps a failure to write the log or the database file.
	errFailed = errors.New("store could not write; it retries with the next call")
	// errBroken wraps a failure to recover from that by rebuilding the
	// transaction from the log.
	errBroken = errors.New("store failed; reopen it to recover what was answered")
)

func (c *committer) err() error {
	if p := c.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records a failed write and drops the transaction, whose changes
// the log may lack; heal rebuilds it.
func (c *committer) fail(err error) {
	wrapped := fmt.Errorf("%w: %w", errFailed, err)
	c.failure.CompareAndSwap(nil, &wrapped)
	c.rollback()
}

// breakDown records that the store cannot recover by itself.
func (c *committer) breakDown(err error) {
	wrapped := fmt.Errorf("%w: %w", errBroken, err)
	c.failure.Store(&wrapped)
	c.broken.Store(true)
	c.rollback()
}

func (c *committer) rollback() {
	if c.tx != nil {
		_ = c.tx.Rollback()
		c.tx = nil
	}
}

// heal brings the store back after a failed write, so that a full disk
// needs no restart once space is freed. The frames answered since the
// last checkpoint are all in the log (a failed append advanced neither
// the log's offset nor the answered number), so the transaction is
// rebuilt from them and committed; only when that commit succeeds are
// calls run again. The next frame is then written where the failed one
// began (or at the log's start, after the commit), never after what it
// left: recovery, which stops at the first frame that is torn or out of
// sequence, would otherwise lose every frame behind it. A write that
// still does not fit fails again, by itself.
func (c *committer) heal() {
	if c.err() == nil || c.broken.Load() {
		return
	}
	if err := c.rebuild(); err != nil {
		c.breakDown(err)
		return
	}
	c.failure.Store(nil)
	c.checkpoint()
}

// do runs fn in the open write transaction and returns once what it wrote
// is in the log (or failed). fn may run more than once, when another write
// of its group fails after writing, so it must reset any state it keeps
// across runs. A function that returns an error must not have written
// anything, or its group is run again without it.
func (c *committer) do(fn func(*wtx) error) error {
	if c.broken.Load() {
		return c.err()
	}
	call := commitCall{fn: fn, done: make(chan error, 1)}
	c.calls <- call
	return <-call.done
}

// checkpointNow commits what the transaction holds at once, so that the
// database file alone has every answered write (for long reads, and for
// tests that inspect the file).
func (c *committer) checkpointNow() error {
	done := make(chan error, 1)
	c.flushes <- done
	return <-done
}

// pending reports whether answered writes are not in bbolt yet, so that a
// view could miss them.
func (c *committer) pending() bool {
	answered := c.answered.Load()
	return c.committed.Load() < answered
}

// close stops the loop after the writes already queued and checkpoints.
// Callers guarantee (through DB.mu) that no do is in progress or will
// start.
func (c *committer) close() error {
	close(c.stop)
	c.stopped.Wait()
	logErr := c.log.close()
	if err := c.err(); err != nil {
		return err
	}
	return logErr
}

func (c *committer) loop() {
	defer c.stopped.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	group := make([]commitCall, 0, c.maxBatch)
	for {
		var due <-chan time.Time
		if c.tx != nil {
			due = timer.C
		}
		select {
		case call := <-c.calls:
			group = append(group[:0], call)
		case <-due:
			c.checkpoint()
			continue
		case done := <-c.flushes:
			c.heal()
			c.checkpoint()
			done <- c.err()
			continue
		case <-c.stop:
			c.checkpoint()
			return
		}
	drain:
		for len(group) < c.maxBatch {
			select {
			case call := <-c.calls:
				group = append(group, call)
			default:
				break drain
			}
		}
		c.heal()
		if c.tx == nil && c.err() == nil {
			if err := c.open(); err != nil {
				c.fail(err)
			} else {
				timer.Reset(c.interval)
			}
		}
		c.run(group)
		if c.tx != nil && c.log.off >= maxLogBytes {
			c.checkpoint()
		}
	}
}

// open begins the transaction that the next groups write in.
func (c *committer) open() error {
	tx, err := c.bolt.Begin(true)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	c.begin(tx)
	c.tx = tx
	c.w.reset(tx)
	return nil
}

// run runs a group and answers it. A function that fails after writing
// leaves changes in the transaction that nothing will log: the
// transaction is then rolled back, rebuilt from the log (the groups
// answered since the checkpoint) and the group run again without it, so
// one bad write never fails or corrupts its neighbours.
func (c *committer) run(group []commitCall) {
	c.commits.Add(1)
	c.writes.Add(int64(len(group)))
	c.result = slices.Grow(c.result[:0], len(group))[:len(group)]
	for {
		if err := c.err(); err != nil {
			for _, call := range group {
				call.done <- err
			}
			return
		}
		c.w.frame = c.w.frame[:frameHeader]
		spoiled := -1
		for i, call := range group {
			mark := len(c.w.frame)
			panicked, err := safeCall(call.fn, &c.w)
			c.result[i] = err
			if panicked || (err != nil && len(c.w.frame) != mark) {
				spoiled = i
				break
			}
		}
		if spoiled < 0 {
			break
		}
		group[spoiled].done <- c.result[spoiled]
		group = slices.Delete(group, spoiled, spoiled+1)
		c.result = c.result[:len(group)]
		if err := c.rebuild(); err != nil {
			c.breakDown(err)
		}
	}
	if len(c.w.frame) > frameHeader {
		lsn := c.answered.Load() + 1
		if err := c.log.append(lsn, c.w.frame); err != nil {
			// The frame may or may not be on the device, so its writes'
			// fate is unknown, as with any failed flush; what was
			// answered before is safe in the log. The log's offset
			// stays at the frame's start, where heal has the next
			// frame overwrite whatever it left.
			c.fail(fmt.Errorf("write-ahead log: %w", err))
			for _, call := range group {
				call.done <- c.err()
			}
			return
		}
		c.answered.Store(lsn)
	}
	for i, call := range group {
		call.done <- c.result[i]
	}
}

// rebuild replaces the transaction with one holding exactly what the
// frames answered since the checkpoint hold. It stops at the last
// answered frame: a frame whose append failed may still be whole in the
// file (written, then the flush failed), and was answered as failed.
func (c *committer) rebuild() error {
	c.rollback()
	if err := c.open(); err != nil {
		return err
	}
	last, err := c.log.replay(c.tx, c.committed.Load(), c.answered.Load())
	if err != nil {
		return fmt.Errorf("rebuild from the log: %w", err)
	}
	if want := c.answered.Load(); last != want {
		return fmt.Errorf("rebuild from the log: frames up to %d, answered %d", last, want)
	}
	if c.rebuilt != nil {
		c.rebuilt(c.tx)
	}
	return nil
}

// checkpoint commits the open transaction with the number of the last
// frame it holds, after which the log starts over.
func (c *committer) checkpoint() {
	if c.tx == nil {
		return
	}
	answered := c.answered.Load()
	if answered == c.committed.Load() {
		// Nothing was written (reads and refused writes only).
		_ = c.tx.Rollback()
		c.tx = nil
		return
	}
	if err := putApplied(c.tx, answered); err != nil {
		c.fail(fmt.Errorf("checkpoint: %w", err))
		return
	}
	err := c.tx.Commit()
	c.tx = nil
	if err != nil {
		c.fail(fmt.Errorf("checkpoint: %w", err))
		return
	}
	c.committed.Store(answered)
	c.log.rewind()
	c.checkpoints.Add(1)
}

func safeCall(fn func(*wtx) error, w *wtx) (panicked bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked, err = true, fmt.Errorf("panic in store write: %v", p)
		}
	}()
	return false, fn(w)
}

// CommitStats is what the committer has done so far.
type CommitStats struct {
	// Commits counts groups flushed to the log (one flush each) and
	// Writes the calls they carried.
	Commits, Writes int64
	// Checkpoints counts bbolt commits.
	Checkpoints int64
}

// CommitStats reports how many groups the store has flushed, how many
// writes they carried and how many checkpoints it has made; benchmarks
// read writes per group.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{
		Commits:     db.commit.commits.Load(),
		Writes:      db.commit.writes.Load(),
		Checkpoints: db.commit.checkpoints.Load(),
	}
}
