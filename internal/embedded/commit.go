package embedded

import (
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// committer is the store's group commit. One goroutine owns writing: it
// takes every write queued while the previous transaction was committing
// and commits them together, so there is one fsync per group rather than
// per write, and no timer adds latency when the store is idle (bbolt's own
// Batch waits a fixed window before each group).
type committer struct {
	bolt     *bolt.DB
	maxBatch int
	// begin prepares each transaction before the group's writes run.
	begin   func(*bolt.Tx)
	calls   chan commitCall
	stop    chan struct{}
	stopped sync.WaitGroup
	// commits and writes count transactions and the calls they carried,
	// for benchmarks (writes per commit is the group commit's yield).
	commits, writes atomic.Int64
}

type commitCall struct {
	fn   func(*bolt.Tx) error
	done chan error
}

func newCommitter(db *bolt.DB, maxBatch int, begin func(*bolt.Tx)) *committer {
	c := &committer{bolt: db, maxBatch: maxBatch, begin: begin, calls: make(chan commitCall, maxBatch), stop: make(chan struct{})}
	c.stopped.Add(1)
	go c.loop()
	return c
}

// do runs fn inside a group-committed write transaction and returns when
// that transaction is durable (or failed). fn may run more than once (when
// another write of its group fails), so it must be idempotent and must not
// keep state across runs except what it resets at its start.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	call := commitCall{fn: fn, done: make(chan error, 1)}
	c.calls <- call
	return <-call.done
}

// close stops the loop after the writes already queued. Callers guarantee
// (through DB.mu) that no do is in progress or will start.
func (c *committer) close() {
	close(c.stop)
	c.stopped.Wait()
}

func (c *committer) loop() {
	defer c.stopped.Done()
	group := make([]commitCall, 0, c.maxBatch)
	for {
		select {
		case call := <-c.calls:
			group = append(group[:0], call)
		case <-c.stop:
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
		c.commit(group)
	}
}

// commit runs a group in one transaction. A write whose function fails is
// answered with its error and taken out, and the rest is retried, so one
// bad write never fails its neighbours.
func (c *committer) commit(group []commitCall) {
	c.commits.Add(1)
	c.writes.Add(int64(len(group)))
	for len(group) > 0 {
		failed := -1
		var failErr error
		err := c.bolt.Update(func(tx *bolt.Tx) error {
			c.begin(tx)
			for i, call := range group {
				if err := safeCall(call.fn, tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			group[failed].done <- failErr
			group = append(group[:failed], group[failed+1:]...)
			continue
		}
		for _, call := range group {
			call.done <- err
		}
		return
	}
}

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in store write: %v", p)
		}
	}()
	return fn(tx)
}

// CommitStats is the group commit's yield so far: transactions committed
// and the writes they carried.
type CommitStats struct {
	Commits, Writes int64
}

// CommitStats reports how many write transactions the store has committed
// and how many writes they carried; benchmarks read writes per commit.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Commits: db.commit.commits.Load(), Writes: db.commit.writes.Load()}
}
