package embedded

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// noCheckpoint keeps every answered write in the log only, as after a
// crash between checkpoints.
const noCheckpoint = time.Hour

func acceptN(t *testing.T, db *DB, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = gatewaytest.NewID("wal")
		_, err := db.Accept(t.Context(), gatewaytest.NewAcceptance(ids[i], "alice@a.example", []string{"bob@b.example"}, time.Now().UTC()))
		require.NoError(t, err)
	}
	return ids
}

// copyStore copies the data directory as a crash would leave it: the
// database file as of its last checkpoint (bbolt writes pages only when it
// commits) and the log as flushed.
func copyStore(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{FileName, WALFileName} {
		b, err := os.ReadFile(filepath.Join(from, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, name), b, 0o600))
	}
	return to
}

func missing(t *testing.T, db *DB, ids []string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		_, err := db.GetMessage(t.Context(), id)
		if errors.Is(err, gateway.ErrNotFound) {
			out = append(out, id)
			continue
		}
		require.NoError(t, err)
	}
	return out
}

// TestRecoveryReappliesTheLog: writes answered after the last checkpoint
// are only in the log; Open puts them back, and a torn last frame (a
// group never answered) is left out without failing the open.
func TestRecoveryReappliesTheLog(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir, CheckpointInterval: noCheckpoint})
	ids := acceptN(t, db, 20)
	crashed := copyStore(t, dir)

	// The copy's database file has none of them yet.
	info, err := os.Stat(filepath.Join(crashed, WALFileName))
	require.NoError(t, err)
	require.Positive(t, info.Size())

	again := openDB(t, Options{Dir: crashed})
	assert.Empty(t, missing(t, again, ids), "every answered accept is back")
	require.NoError(t, again.Close())
	// Recovered once: a second open finds the same (the log is dead now).
	again = openDB(t, Options{Dir: crashed})
	assert.Empty(t, missing(t, again, ids))
	require.NoError(t, again.Close())

	// Tear the last frame: the accepts before it survive.
	torn := copyStore(t, dir)
	path := filepath.Join(torn, WALFileName)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)-7], 0o600))
	again = openDB(t, Options{Dir: torn})
	assert.Equal(t, ids[len(ids)-1:], missing(t, again, ids), "only the torn group is lost")
	// The store goes on from there, and keeps what it writes next.
	more := acceptN(t, again, 3)
	require.NoError(t, again.Close())
	again = openDB(t, Options{Dir: torn})
	assert.Empty(t, missing(t, again, append(ids[:len(ids)-1:len(ids)-1], more...)))
}

// TestCheckpointMakesTheFileWhole: after a checkpoint the database file
// alone holds every answered write.
func TestCheckpointMakesTheFileWhole(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir, CheckpointInterval: noCheckpoint})
	ids := acceptN(t, db, 10)
	require.NoError(t, db.commit.checkpointNow())
	crashed := copyStore(t, dir)
	require.NoError(t, os.Remove(filepath.Join(crashed, WALFileName)))
	again := openDB(t, Options{Dir: crashed})
	assert.Empty(t, missing(t, again, ids))
}

// TestSpoiledWriteLeavesTheRestIntact: a write that fails (or panics) after
// it has written is undone alone — the groups answered before it and the
// writes beside it keep their effects.
func TestSpoiledWriteLeavesTheRestIntact(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir(), CheckpointInterval: noCheckpoint})
	before := acceptN(t, db, 5)

	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Go(func() {
			key := []byte{'k', byte(i)}
			errs[i] = db.commit.do(func(w *wtx) error {
				if err := w.Bucket(bucketSchemas).Put(key, []byte("v")); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return errors.New("refused after writing")
				case 2:
					panic("broken after writing")
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		var v []byte
		require.NoError(t, db.read(func(r reader) error {
			v = clone(r.bucket(bucketSchemas).Get([]byte{'k', byte(i)}))
			return nil
		}))
		if i%4 == 1 || i%4 == 2 {
			assert.Error(t, err, "write %d", i)
			assert.Nil(t, v, "write %d is undone", i)
		} else {
			assert.NoError(t, err, "write %d", i)
			assert.Equal(t, []byte("v"), v, "write %d", i)
		}
	}
	assert.Empty(t, missing(t, db, before), "earlier groups survive the rebuild")
	assert.NoError(t, db.Ping(t.Context()))
}

// TestLostLogBreaksTheStore: when the log can be neither written nor
// read back, the store cannot rebuild what it answered: it refuses
// everything (its state is unknown), reports itself not live so that the
// process is restarted, and reopening it recovers every write answered
// before.
func TestLostLogBreaksTheStore(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, CheckpointInterval: noCheckpoint})
	require.NoError(t, err)
	ids := acceptN(t, db, 8)
	require.NoError(t, db.Live(t.Context()))
	require.NoError(t, db.commit.log.f.Close()) // the device goes away

	_, err = db.Accept(t.Context(), gatewaytest.NewAcceptance(gatewaytest.NewID("wal"), "alice@a.example", []string{"bob@b.example"}, time.Now().UTC()))
	require.ErrorIs(t, err, errFailed)
	_, err = db.GetMessage(t.Context(), ids[0])
	require.ErrorIs(t, err, errBroken, "reads too: the file lacks what the log holds")
	require.ErrorIs(t, db.Ping(t.Context()), errBroken)
	require.ErrorIs(t, db.Live(t.Context()), errBroken)
	require.Error(t, db.Close())

	again := openDB(t, Options{Dir: dir})
	assert.Empty(t, missing(t, again, ids))
}

// TestFailedFlushHeals: a log append that fails (a full disk) fails its
// group alone; once the device takes writes again the store goes on
// without a reopen, and what it writes next survives a crash. The failed
// append may leave a torn frame or, when only its flush failed, a whole
// one; either way it was answered as failed, so it is neither re-applied
// by the store nor allowed to end the log before the frames written after
// it.
func TestFailedFlushHeals(t *testing.T) {
	for _, tc := range []struct {
		name string
		// whole: the failed frame is all in the file (its flush failed),
		// else only its first part is (its write failed midway).
		whole bool
		// pending: answered writes are in the log only when the append
		// fails, else a checkpoint holds them all.
		pending bool
	}{
		{"torn frame", false, false},
		{"whole frame", true, false},
		{"torn frame, writes pending", false, true},
		{"whole frame, writes pending", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, Options{Dir: dir, CheckpointInterval: noCheckpoint})
			before := acceptN(t, db, 5)
			if !tc.pending {
				require.NoError(t, db.commit.checkpointNow())
			}
			writable := failLog(t, db, dir, tc.whole)

			lost := gatewaytest.NewID("wal")
			_, err := db.Accept(t.Context(), gatewaytest.NewAcceptance(lost, "alice@a.example", []string{"bob@b.example"}, time.Now().UTC()))
			require.ErrorIs(t, err, errFailed)
			assert.NoError(t, db.Live(t.Context()), "a full disk is no reason to restart")

			setLogFile(t, db, writable) // space is freed
			after := acceptN(t, db, 3)
			assert.Empty(t, missing(t, db, append(slices.Clone(before), after...)))
			assert.Nil(t, ghost(t, db), "the failed frame is not re-applied")
			require.NoError(t, db.Ping(t.Context()))

			crashed := openDB(t, Options{Dir: copyStore(t, dir)})
			assert.Empty(t, missing(t, crashed, append(before, after...)), "every answered write survives a crash")
			assert.Equal(t, []string{lost}, missing(t, crashed, []string{lost}))
			assert.Nil(t, ghost(t, crashed))
		})
	}
}

// ghostKey is what failLog's frame writes.
var ghostKey = []byte("ghost")

// failLog makes the log's device refuse writes, as a full disk does, after
// writing at the log's end what a failed append of the next frame may
// leave there. It returns the writable file, for setLogFile.
func failLog(t *testing.T, db *DB, dir string, whole bool) *os.File {
	t.Helper()
	path := filepath.Join(dir, WALFileName)
	readOnly, err := os.Open(path)
	require.NoError(t, err)
	var writable *os.File
	// Run by the committer, which owns the log.
	require.NoError(t, db.commit.do(func(*wtx) error {
		frame := appendOp(make([]byte, frameHeader), opPut, bucketSchemas, ghostKey, []byte("never answered"))
		sealFrame(db.commit.answered.Load()+1, frame)
		if !whole {
			frame = frame[:len(frame)-4]
		}
		if _, err := db.commit.log.f.WriteAt(frame, db.commit.log.off); err != nil {
			return err
		}
		writable, db.commit.log.f = db.commit.log.f, readOnly
		return nil
	}))
	t.Cleanup(func() { _ = readOnly.Close() })
	return writable
}

// setLogFile replaces the log's file handle, in the committer.
func setLogFile(t *testing.T, db *DB, f *os.File) {
	t.Helper()
	require.NoError(t, db.commit.do(func(*wtx) error {
		db.commit.log.f = f
		return nil
	}))
}

func ghost(t *testing.T, db *DB) []byte {
	t.Helper()
	var v []byte
	require.NoError(t, db.read(func(r reader) error {
		v = clone(r.bucket(bucketSchemas).Get(ghostKey))
		return nil
	}))
	return v
}

// FuzzReplay: whatever the log file holds — garbage, or a well-framed
// frame of arbitrary operations — replaying it returns an error or applies
// it, and never panics (Open runs it on whatever a crash left).
func FuzzReplay(f *testing.F) {
	valid := appendOp(appendOp(nil, opPut, bucketMessages, []byte("k"), []byte("v")), opDelete, bucketDue, []byte("d"), nil)
	f.Add(valid)
	f.Add([]byte{opPut, 200, 'x'})
	f.Add([]byte{9, 4, 'i', 'd', 'e', 'm', 1, 'k'})
	dir := f.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "fuzz.db"), 0o600, nil)
	require.NoError(f, err)
	f.Cleanup(func() { _ = db.Close() })
	require.NoError(f, db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}))
	logPath := filepath.Join(dir, "fuzz.wal")
	f.Fuzz(func(t *testing.T, data []byte) {
		framed := append(make([]byte, frameHeader), data...)
		l := &redoLog{}
		for _, content := range [][]byte{data, nil} {
			if content == nil {
				// The same bytes as a well-formed frame, so that the
				// operations themselves are parsed.
				require.NoError(t, os.WriteFile(logPath, nil, 0o600))
				f, err := os.OpenFile(logPath, os.O_RDWR, 0o600)
				require.NoError(t, err)
				l.f = f
				require.NoError(t, l.append(1, framed))
			} else {
				require.NoError(t, os.WriteFile(logPath, content, 0o600))
				f, err := os.Open(logPath)
				require.NoError(t, err)
				l.f = f
			}
			replayAndDiscard(t, db, l)
		}
	})
}

// replayAndDiscard replays l into a transaction that it always rolls back,
// a panic included, so that a failing input fails the test instead of
// leaving bbolt's writer locked.
func replayAndDiscard(t *testing.T, db *bolt.DB, l *redoLog) {
	t.Helper()
	defer func() { _ = l.f.Close() }()
	tx, err := db.Begin(true)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	last, _ := l.replay(tx, 0, math.MaxUint64)
	assert.LessOrEqual(t, last, uint64(1))
}
