package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Options configures Open. Zero values take the documented defaults.
type Options struct {
	// Dir is the data directory (AGENTRY_DATA_DIR). It is created with mode
	// 0700 if missing; the store lives in its subdirectory StoreDir.
	Dir string
	// LeaseTimeout is how long a received task stays invisible when it is
	// neither acked nor retried. Default 5m.
	LeaseTimeout time.Duration
	// SweepInterval is how often expired idempotency records are pruned.
	// Default 5m.
	SweepInterval time.Duration
	// ReserveBytes is the free space the store keeps on its file system:
	// below it writes are refused (ErrFull) and Ping fails, before Pebble
	// meets a failed log write, which it cannot survive (doc.go). Default
	// 64 MiB.
	ReserveBytes uint64
	// CacheBytes is Pebble's block cache, beyond the memtables: Pebble
	// takes its memtables' memory out of the cache's budget, so the cache
	// it is given is CacheBytes plus what the memtables can hold (with a
	// cache no larger than the memtables, no block is cached at all and
	// every lookup reads its index and filter blocks from the file).
	// Default 8 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one memtable (two at most are held).
	// Default 4 MiB. Both defaults are fixed amounts of memory, whatever
	// the number of messages (docs/performance.md, "Memory").
	MemTableBytes uint64
	// Logger receives Pebble's messages. Default slog.Default().
	Logger *slog.Logger
	// Now replaces the clock in tests. Default time.Now.
	Now func() time.Time
}

// The memory the store holds whatever the number of messages.
const (
	// DefaultCacheBytes is Options.CacheBytes's default.
	DefaultCacheBytes = 8 << 20
	// DefaultMemTableBytes is Options.MemTableBytes's default.
	DefaultMemTableBytes = 4 << 20
	// MaxMemTables is Pebble's MemTableStopWritesThreshold: writes wait
	// while that many memtables are full or flushing.
	MaxMemTables = 2
)

// StoreDir is the store's directory inside Options.Dir.
const StoreDir = "store"

const (
	defaultLeaseTimeout  = 5 * time.Minute
	defaultSweepInterval = 5 * time.Minute
	defaultReserve       = 64 << 20
	// targetFileSize is the size of every table (sstable).
	targetFileSize = 2 << 20
	// lockStripes bounds the memory of the per-key write locks (8 bytes
	// each). A writer holds its stripes through its synced commit, so two
	// writers that share one wait a whole commit: with 32 writers of two
	// keys each, 512 stripes made about one write in four wait, 4096 make
	// about one in thirty.
	lockStripes = 4096
)

// ErrFull is returned (wrapped) for a write refused because the file
// system is below Options.ReserveBytes of free space.
var ErrFull = errors.New("storage full")

// DB is the embedded backend on Pebble. It is safe for concurrent use.
type DB struct {
	pdb  *pebble.DB
	dir  string
	now  func() time.Time
	log  *slog.Logger
	opts Options

	leaseTimeout  time.Duration
	sweepInterval time.Duration

	// mu is held shared by every call for its whole duration and exclusively
	// by Close, so that Close waits for calls in progress.
	mu        sync.RWMutex
	closed    bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	sweeping  sync.WaitGroup
	sweepFrom []byte

	// locks serialise the read-modify-writes of one key (a message, a
	// task, an idempotency scope): each holds its stripes from its reads
	// until its synced commit returns, while writes to other keys commit
	// alongside it in Pebble's group commit.
	seed  maphash.Seed
	locks [lockStripes]sync.Mutex
	// agentMu serialises agent and schema writes (rare; several keys each).
	agentMu sync.Mutex

	queue  queueState
	agents agentCache
	space  spaceGuard
	// broken is set when Pebble reported a fatal error: the process must
	// be restarted (Live fails), and reopening recovers every answered
	// write from the log.
	broken   atomic.Bool
	brokeErr atomic.Value
	// damaged holds the first damaged file Pebble met (a block whose
	// checksum failed): the reads that need it fail, and Ping reports the
	// store not ready until an operator has checked it and restarted.
	damaged atomic.Value

	writes, syncs atomic.Int64

	// Upgrade reports the import of an earlier data directory made by
	// this Open, nil when there was none.
	Upgrade *UpgradeReport
}

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*DB, error) {
	if opts.Dir == "" {
		return nil, errors.New("open store: no data directory")
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = defaultLeaseTimeout
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = defaultSweepInterval
	}
	if opts.ReserveBytes == 0 {
		opts.ReserveBytes = defaultReserve
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.MemTableBytes == 0 {
		opts.MemTableBytes = DefaultMemTableBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := makeDataDir(opts.Dir); err != nil {
		return nil, err
	}
	dir := storePath(opts.Dir)
	db := &DB{
		dir:           dir,
		now:           opts.Now,
		log:           opts.Logger,
		opts:          opts,
		leaseTimeout:  opts.LeaseTimeout,
		sweepInterval: opts.SweepInterval,
		done:          make(chan struct{}),
		seed:          maphash.MakeSeed(),
		queue:         newQueueState(),
	}
	db.space = spaceGuard{dir: opts.Dir, reserve: opts.ReserveBytes}
	pdb, err := db.openPebble(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, damagedError(err))
	}
	db.pdb = pdb
	rep, err := db.upgrade(opts.Dir)
	if err != nil {
		_ = pdb.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	db.Upgrade = rep
	if rep != nil {
		db.log.Info("store: imported the data directory of the earlier format", "imported", rep.Imported, "kept_as", "*"+legacySuffix)
		if rep.DamagedCount > 0 {
			db.log.Error("store: records of the earlier format could not be read and were not imported; the old files are kept",
				"count", rep.DamagedCount, "first", rep.Damaged)
		}
	}
	if err := db.sweepBodies(); err != nil {
		_ = pdb.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	db.sweeping.Add(1)
	go db.sweepLoop()
	return db, nil
}

// openPebble opens the store at dir, creating it if needed. A store is
// created, closed and opened again: Pebble writes a new store's first log
// before it moves the store to the format asked for, so that log would
// lack the synced offsets that recovery needs to tell damage from a torn
// tail (see pebbleOptions).
func (db *DB) openPebble(dir string) (*pebble.DB, error) {
	_, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		pdb, err := pebble.Open(dir, db.pebbleOptions())
		if err != nil {
			return nil, err
		}
		if err := pdb.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return pebble.Open(dir, db.pebbleOptions())
}

func storePath(dataDir string) string { return dataDir + string(os.PathSeparator) + StoreDir }

func (db *DB) pebbleOptions() *pebble.Options {
	o := &pebble.Options{
		MemTableSize:                db.opts.MemTableBytes,
		MemTableStopWritesThreshold: MaxMemTables,
		CacheSize:                   db.opts.CacheBytes + MaxMemTables*int64(db.opts.MemTableBytes),
		Logger:                      pebbleLogger{db: db},
		FS:                          syncCountingFS{FS: vfs.Default, syncs: &db.syncs},
		// Pebble's default (16 GiB) would make it delete obsolete files
		// eagerly on any small disk; our own reserve refuses writes
		// first.
		FreeSpaceThresholdBytes: db.opts.ReserveBytes,
		EventListener:           &pebble.EventListener{DataCorruption: db.damagedFile},
		// From FormatWALSyncChunks on, the log records how far it was
		// synced, which is what lets recovery tell a damaged record with
		// answered writes after it (an error: the store refuses to open)
		// from the torn tail of a crash (the end of the log). Before it,
		// recovery stopped at the first damaged record and opened without
		// everything after it.
		FormatMajorVersion: pebble.FormatNewest,
	}
	for i := range o.Levels {
		// Most lookups miss (a new message id, a new idempotency key, a
		// task not yet queued): a bloom filter answers those without
		// reading the tables' blocks.
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Tables of one size at every level (Pebble doubles it per level by
	// default, up to 128 MiB in L6): most keys arrive in time order, so a
	// compaction then rewrites the few small tables its input overlaps,
	// not one large table holding everything.
	for i := range o.TargetFileSizes {
		o.TargetFileSizes[i] = targetFileSize
	}
	// Flushes write L0 tables that a compaction rewrites soon after:
	// compressing them costs CPU for nothing. Compactions out of L0
	// compress (Snappy), so data at rest is compressed.
	o.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	for i := 1; i < len(o.Levels); i++ {
		o.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
	}
	o.EnsureDefaults()
	return o
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
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod data dir %s: %w", dir, err)
	}
	return nil
}

// Close stops the sweeper, waits for calls in progress and closes the
// store. Later calls return gateway.ErrClosed; a second Close returns nil.
func (db *DB) Close() error {
	first := false
	db.closeOnce.Do(func() {
		first = true
		close(db.done)
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		db.sweeping.Wait()
		if db.broken.Load() {
			// A store whose commit pipeline failed cannot close cleanly;
			// its files are recovered at the next open.
			db.closeErr = fmt.Errorf("close store: %w", db.Live(context.Background()))
			return
		}
		if err := db.pdb.Close(); err != nil {
			db.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	if !first {
		return nil
	}
	return db.closeErr
}

// Ping reports whether the store is open, readable and has room to write.
func (db *DB) Ping(ctx context.Context) error {
	release, err := db.enter(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := db.Live(ctx); err != nil {
		return err
	}
	if d, _ := db.damaged.Load().(string); d != "" {
		return fmt.Errorf("ping: damaged file %s; stop the gateway and run agentry store check", d)
	}
	if err := db.space.check(0); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	_, err = db.get(key(tMeta, 0))
	if err != nil && !errors.Is(err, gateway.ErrNotFound) {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Live reports an error once Pebble has failed in a way it cannot recover
// from while the process runs (a failed log write): a liveness probe then
// has the process restarted, and reopening recovers every answered write.
// A store that refuses writes for want of space is live: it resumes by
// itself once space is freed, and Ping reports it not ready meanwhile.
func (db *DB) Live(context.Context) error {
	if db.broken.Load() {
		err, _ := db.brokeErr.Load().(error)
		return fmt.Errorf("live: store failed: %w", err)
	}
	return nil
}

// enter admits a call: it fails fast on a cancelled context or a closed
// store, and otherwise holds off Close until release is called.
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

// lock takes the stripes of keys in a fixed order (so that two callers
// never wait for each other) and returns their release.
func (db *DB) lock(keys ...string) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.String(db.seed, k)%lockStripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		db.locks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			db.locks[i].Unlock()
		}
	}
}

// get returns a copy of the value at k, gateway.ErrNotFound if none.
func (db *DB) get(k []byte) ([]byte, error) {
	v, closer, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, gateway.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// has reports whether k is stored.
func (db *DB) has(k []byte) (bool, error) {
	_, closer, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// commit makes b durable (synced) or returns why not. An answered 202
// rests on this sync; Pebble's commit pipeline groups concurrent ones.
func (db *DB) commit(b *pebble.Batch) error {
	defer b.Close()
	if b.Empty() {
		return nil
	}
	if err := db.space.check(uint64(b.Len())); err != nil {
		return err
	}
	if db.broken.Load() {
		return db.Live(context.Background())
	}
	db.writes.Add(1)
	return b.Commit(pebble.Sync)
}

// iter opens an iterator over the keys that start with prefix.
func (db *DB) iter(lower, upper []byte) (*pebble.Iterator, error) {
	return db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
}

func closeIter(it io.Closer, err *error) {
	if cerr := it.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

// pebbleLogger passes Pebble's messages to slog. Pebble calls Fatalf
// where it cannot go on (a failed write or sync of its log or manifest);
// returning would let it carry on as if the write had succeeded, so
// Fatalf marks the store broken (Live fails, every later write is
// refused) and panics the calling goroutine, which never answers.
type pebbleLogger struct{ db *DB }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.db.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.db.log.Warn("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	err := fmt.Errorf("pebble: "+format, args...)
	l.db.brokeErr.Store(err)
	l.db.broken.Store(true)
	l.db.log.Error("store failed; restart the process to recover", "err", err)
	panic(err)
}

// damagedError explains a damaged store to the operator, whose next step
// it names; other errors pass unchanged.
func damagedError(err error) error {
	if !pebble.IsCorruptionError(err) {
		return err
	}
	return fmt.Errorf("the store is damaged, and it is not opened so that nothing answered is silently left out: "+
		"keep the data directory as it is, run `agentry store check` for what is damaged, and restore the last backup "+
		"(`agentry store backup`): %w", err)
}

// damagedFile is Pebble's report of a damaged block. Pebble's default is
// to stop the process; the read that met it fails instead, and the store
// reports itself not ready (Ping).
func (db *DB) damagedFile(info pebble.DataCorruptionInfo) {
	db.damaged.CompareAndSwap(nil, info.Path)
	db.log.Error("store: damaged file; reads that need it fail. Stop the gateway, run `agentry store check`, restore from a backup",
		"file", info.Path, "err", info.Details)
}
