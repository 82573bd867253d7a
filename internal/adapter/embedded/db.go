package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// FileName is the name of the database file inside Options.Dir.
const FileName = "agentry.db"

// Options configures Open. Zero values take the documented defaults.
type Options struct {
	// Dir is the data directory (AGENTRY_DATA_DIR). It is created with mode
	// 0700 if missing; the database file inside it gets mode 0600.
	Dir string
	// MaxBatchSize caps the number of writes in one group (one log flush).
	// Default 256.
	MaxBatchSize int
	// LeaseTimeout is how long a received task stays invisible when it is
	// neither acked nor retried. Default 5m.
	LeaseTimeout time.Duration
	// SweepInterval is how often expired idempotency records are pruned.
	// Default 5m.
	SweepInterval time.Duration
	// CheckpointInterval is how long the committer's transaction stays
	// open before it is committed to the database file (writes are
	// durable before that, in the redo log). Default 10ms: a checkpoint holds
	// up writes while bbolt commits, so a longer interval lengthens the
	// slowest answers (accept p99 8.5 ms at 10ms, 10 ms at 20ms, 18 ms at
	// 60ms in make bench) for little more throughput.
	CheckpointInterval time.Duration
	// Now replaces the clock in tests. Default time.Now.
	Now func() time.Time

	// maxRecent bounds the idempotency records kept in idem_log (and in
	// memory, see idem.go); tests lower it. Default defaultMaxRecent.
	maxRecent int
}

const (
	defaultBatchSize     = 256
	defaultLeaseTimeout  = 5 * time.Minute
	defaultSweepInterval = 5 * time.Minute
	defaultCheckpoint    = 10 * time.Millisecond
	// lockTimeout keeps a second process on the same directory from hanging
	// forever on bbolt's file lock.
	lockTimeout = 2 * time.Second
	// defaultMaxRecent keeps the recent idempotency index under about
	// 38 MB (36 bytes a record measured at this size, 26 at 10,000); a
	// site accepting fewer than 1.7 messages a second never fills it
	// within the 7-day window.
	defaultMaxRecent = 1 << 20
	// initialMmap is address space only (the file does not grow to it):
	// it spares readers most of the remaps that would otherwise block them
	// while the file grows, and spares the heap the copies a remap makes
	// of every value a write transaction holds. With 64 MiB, a few 10 MiB
	// messages made remaps that held 37 MB of such copies live at once.
	initialMmap = 1 << 30
)

var (
	bucketMessages    = []byte("messages")
	bucketStatuses    = []byte("statuses")
	bucketMsgTime     = []byte("msg_time")
	bucketIdem        = []byte("idem")
	bucketIdemTime    = []byte("idem_time")
	bucketIdemLog     = []byte("idem_log")
	bucketInbox       = []byte("inbox")
	bucketInboxRef    = []byte("inbox_ref")
	bucketAgents      = []byte("agents")
	bucketAgentKeys   = []byte("agent_keys")
	bucketTasks       = []byte("tasks")
	bucketDue         = []byte("due")
	bucketDeadLetters = []byte("dead_letters")
	bucketWorkflows   = []byte("workflows")
	bucketSchemas     = []byte("schemas")

	allBuckets = [][]byte{
		bucketMessages, bucketStatuses, bucketMsgTime, bucketIdem, bucketIdemTime,
		bucketInbox, bucketInboxRef, bucketAgents, bucketAgentKeys, bucketTasks,
		bucketDue, bucketDeadLetters, bucketWorkflows, bucketSchemas, bucketWAL,
		bucketIdemLog,
	}
)

// DB is the embedded backend. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	now  func() time.Time

	leaseTimeout  time.Duration
	sweepInterval time.Duration

	// mu is held shared by every call for its whole duration and exclusively
	// by Close, so that Close waits for calls in progress and later calls
	// see closed instead of a closed bolt handle.
	mu     sync.RWMutex
	closed bool
	// done is closed first thing in Close, to wake blocked Receives and the
	// sweeper, which do not hold mu while they wait.
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	sweeping  sync.WaitGroup
	// sweepFrom is where the next idempotency sweep resumes (nil: at
	// the start); only the sweeper uses it.
	sweepFrom []byte

	queue  queueState
	commit *committer
	agents agentCache

	// recent indexes idem_log (idem.go); only the committer touches it.
	// When it holds more than maxRecent records, Accept signals
	// moveRecent and the sweeper moves the oldest to the idem bucket.
	recent     *recentIndex
	maxRecent  int
	moveRecent chan struct{}
}

// Open opens (or creates) the database in opts.Dir.
func Open(opts Options) (*DB, error) {
	if opts.Dir == "" {
		return nil, errors.New("open embedded store: no data directory")
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = defaultBatchSize
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = defaultLeaseTimeout
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = defaultSweepInterval
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = defaultCheckpoint
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.maxRecent <= 0 {
		opts.maxRecent = defaultMaxRecent
	}
	if err := makeDataDir(opts.Dir); err != nil {
		return nil, err
	}
	path := filepath.Join(opts.Dir, FileName)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// The freelist is rebuilt from the pages on open instead of being
		// written on every commit; data and meta pages are still fsynced,
		// so this costs a slower open, never durability.
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmap,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	log, err := openRedoLog(opts.Dir)
	if err != nil {
		_ = bdb.Close()
		return nil, err
	}
	// Recovery: the checkpoint plus the frames answered after it.
	var lsn uint64
	recent := newRecentIndex()
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		fillOrdered(tx)
		applied := readApplied(tx)
		if lsn, err = log.replay(tx, applied, math.MaxUint64); err != nil {
			return err
		}
		recent.build(tx)
		if lsn == applied {
			return nil
		}
		return putApplied(tx, lsn)
	})
	if err != nil {
		_ = log.close()
		_ = bdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	log.rewind()
	db := &DB{
		bolt:          bdb,
		now:           opts.Now,
		leaseTimeout:  opts.LeaseTimeout,
		sweepInterval: opts.SweepInterval,
		done:          make(chan struct{}),
		queue:         newQueueState(),
		commit:        newCommitter(bdb, log, lsn, opts.MaxBatchSize, opts.CheckpointInterval, fillOrdered, recent.build),
		recent:        recent,
		maxRecent:     opts.maxRecent,
		moveRecent:    make(chan struct{}, 1),
	}
	db.sweeping.Add(1)
	go db.sweepLoop()
	return db, nil
}

func makeDataDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	// MkdirAll's mode passes through the umask; a restrictive umask can only
	// narrow 0700, but say it explicitly so the directory is never shared.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod data dir %s: %w", dir, err)
	}
	return nil
}

// Close stops the sweeper, waits for calls in progress and closes the file.
// Later calls return gateway.ErrClosed; a second Close returns nil.
func (db *DB) Close() error {
	first := false
	db.closeOnce.Do(func() {
		first = true
		close(db.done)
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		db.sweeping.Wait()
		commitErr := db.commit.close()
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("close %s: %w", FileName, err)
		}
		if commitErr != nil {
			db.closeErr = fmt.Errorf("close %s: %w", FileName, commitErr)
		}
	})
	if !first {
		return nil
	}
	return db.closeErr
}

// Ping reports whether the store is open, readable and writing. After a
// failed write (a full disk) it tries to recover, so that readiness comes
// back once space is freed even when no other call arrives.
func (db *DB) Ping(ctx context.Context) error {
	release, err := db.enter(ctx)
	if err != nil {
		return err
	}
	defer release()
	if db.commit.err() != nil {
		if err := db.commit.checkpointNow(); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
	return db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("ping: bucket %s missing", name)
			}
		}
		return nil
	})
}

// Live reports an error when the store has failed in a way it cannot
// recover from while the process runs, so that a liveness probe has the
// process restarted (reopening recovers every answered write from the
// files). A store that merely could not write, as on a full disk, is
// live: it recovers by itself once space is freed, and Ping reports it
// not ready meanwhile.
func (db *DB) Live(context.Context) error {
	if db.commit.broken.Load() {
		return fmt.Errorf("live: %w", db.commit.err())
	}
	return nil
}

// read runs fn where it sees every write answered before the call: in a
// bbolt view when bbolt holds them all, else in the committer's
// transaction (after the writes queued before it). Writes wait while fn
// runs there, so it is for reads of a bounded, small size.
func (db *DB) read(fn func(reader) error) error {
	if db.commit.pending() {
		return db.commit.do(func(w *wtx) error { return fn(w) })
	}
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(viewTx{tx}) })
}

// readLong is read for walks whose length the caller does not bound
// tightly (listings of every agent or schema, the message listing's
// scan): when writes are pending it has them checkpointed first and reads
// a view, so that writes wait at most for a checkpoint, not for the walk.
func (db *DB) readLong(fn func(reader) error) error {
	if db.commit.pending() {
		if err := db.commit.checkpointNow(); err != nil {
			return err
		}
	}
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(viewTx{tx}) })
}

// enter admits a call: it fails fast on a cancelled context or a closed
// store, and otherwise holds off Close until release is called. Calls must
// not nest enter, or a pending Close could deadlock them.
func (db *DB) enter(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return nil, gateway.ErrClosed
	}
	return db.mu.RUnlock, nil
}

// putTime appends t as 8 bytes whose byte order is time order: flipping the
// sign bit maps int64 order onto uint64 order, so times before 1970 still
// sort first.
func putTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(unixNano(t))^(1<<63))
}

// getTime reads what putTime wrote.
func getTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// unixNano clamps to the representable range instead of overflowing, so
// that a zero time sorts first rather than at some arbitrary point.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

const timeLen = 8

// join builds a key from parts separated by 0x00.
func join(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// clone copies a value out of a bbolt page, which is only valid inside the
// transaction that read it.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// appendFillPercent is how full bbolt fills a page before splitting it in
// buckets whose keys arrive in order; a little room is left for the
// in-place growth of status records.
const appendFillPercent = 0.9

// fillOrdered sets appendFillPercent on the buckets whose keys arrive in
// order — message ids are UUIDv7, task ids start with them, the message
// time index and idem_log start with the time — so that these grow at their end,
// where bbolt's default split (in halves) would leave every page half
// empty for good. (Not due: its keys start with the due time, and a
// retried task leaves the present for the future, so inserts land in the
// middle and the entries around them leave soon; there full pages only
// split more often.) It runs at the start of every write transaction (the
// committer's, and recovery's): a bucket's fill percent belongs to the
// transaction's handle on it, so
// every write that may split one of these pages, the growth of a status
// or the move of a retried task included, must see it.
func fillOrdered(tx *bolt.Tx) {
	for _, name := range [][]byte{bucketMessages, bucketStatuses, bucketMsgTime, bucketTasks, bucketIdemLog} {
		tx.Bucket(name).FillPercent = appendFillPercent
	}
}
