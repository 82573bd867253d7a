package pebblestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// acceptInboxed accepts n messages from alice into bob's inbox.
func acceptInboxed(t *testing.T, db *DB, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		a := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, gatewaytest.Now())
		a.Inbox = []string{"bob@b.example"}
		_, err := db.Accept(t.Context(), a)
		require.NoError(t, err)
		ids = append(ids, a.Message.ID)
	}
	return ids
}

// TestDamagedRecordFailsOnlyItself: one record that cannot be decoded is
// an error for that record, and the listings that pass it answer the rest.
func TestDamagedRecordFailsOnlyItself(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	ctx := t.Context()
	ids := acceptInboxed(t, db, 5)
	bad := ids[2]
	require.NoError(t, db.pdb.Set(messageKey(bad), []byte{codecV1, 0xff, 0xff}, pebble.Sync))

	_, err := db.GetMessage(ctx, bad)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.NotErrorIs(t, err, gateway.ErrNotFound)

	inbox, next, err := db.ListInbox(ctx, "bob@b.example", 10, "")
	require.NoError(t, err, "one damaged message does not fail the page")
	assert.Empty(t, next)
	var listed []string
	for _, e := range inbox {
		listed = append(listed, e.MessageID)
	}
	assert.Equal(t, append(append([]string{}, ids[:2]...), ids[3:]...), listed)

	summaries, _, err := db.ListMessages(ctx, gateway.MessageQuery{Limit: 10})
	require.NoError(t, err)
	assert.Len(t, summaries, 4)

	require.NoError(t, db.Close())
	rep, err := Check(dir)
	require.ErrorIs(t, err, ErrDamaged)
	assert.Equal(t, 1, rep.DamagedCount)
	assert.Contains(t, rep.Damaged[0], "messages")
	assert.Equal(t, 4, rep.Records["messages"])
}

// storeFiles lists the files of the store whose names end in suffix.
func storeFiles(t *testing.T, dataDir, suffix string) []string {
	t.Helper()
	entries, err := os.ReadDir(storePath(dataDir))
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			info, err := e.Info()
			require.NoError(t, err)
			if info.Size() > 0 {
				out = append(out, filepath.Join(storePath(dataDir), e.Name()))
			}
		}
	}
	return out
}

// flipByte damages one byte of a file at a fraction of its length.
func flipByte(t *testing.T, path string, at float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	i := int(float64(len(b)) * at)
	b[i] ^= 0x5a
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// TestDamagedLogRefusesToStart: a damaged record in the middle of the log,
// with answered writes after it, stops the store from opening (and check
// names it) instead of opening without those writes.
func TestDamagedLogRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	ids := acceptInboxed(t, db, 200)
	require.NoError(t, db.Close())
	logs := storeFiles(t, dir, ".log")
	require.Len(t, logs, 1, "the writes are in the log only")
	flipByte(t, logs[0], 0.3)

	_, err := Open(Options{Dir: dir})
	require.Error(t, err, "%d answered messages would otherwise be missing", len(ids))
	assert.True(t, pebble.IsCorruptionError(err) || errors.Is(err, pebble.ErrCorruption), "%v", err)
	assert.Contains(t, err.Error(), "damaged", "the error says what is wrong")
	assert.Contains(t, err.Error(), "restore", "and what an operator can do")
	_, err = Check(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "damaged")
}

// TestDamagedTableNeverReadsAsMissing: a damaged block of a table makes
// the reads that need it fail; no answered message reads as not found.
func TestDamagedTableNeverReadsAsMissing(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	ids := acceptInboxed(t, db, 200)
	require.NoError(t, db.pdb.Flush())
	require.NoError(t, db.Close())
	tables := storeFiles(t, dir, ".sst")
	require.NotEmpty(t, tables)
	for _, p := range tables {
		for _, at := range []float64{0.2, 0.4, 0.6, 0.8} {
			flipByte(t, p, at)
		}
	}

	_, err := Check(dir)
	require.Error(t, err, "check reports the damaged table")

	db, err = Open(Options{Dir: dir})
	if err != nil {
		return // refusing to open is as good: nothing is silently lost
	}
	t.Cleanup(func() { _ = db.Close() })
	failed := 0
	for _, id := range ids {
		_, err := db.GetMessage(t.Context(), id)
		require.NotErrorIs(t, err, gateway.ErrNotFound, id)
		if err != nil {
			failed++
		}
	}
	assert.NotZero(t, failed, "the damage was read somewhere")
}

// TestBackupOfARunningStoreRestores: a backup taken while writes go on
// holds every write answered before it began, and a store restored from
// it serves them.
func TestBackupOfARunningStoreRestores(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	before := acceptInboxed(t, db, 300)
	require.NoError(t, db.pdb.Flush())
	before = append(before, acceptInboxed(t, db, 50)...) // some in the log only

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				a := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"carol@c.example"}, gatewaytest.Now())
				if _, err := db.Accept(t.Context(), a); err != nil {
					return
				}
			}
		}
	}()
	backup := filepath.Join(t.TempDir(), "backup")
	err := db.Backup(t.Context(), backup)
	close(stop)
	wg.Wait()
	require.NoError(t, err)

	restored := t.TempDir()
	require.NoError(t, os.Rename(backup, storePath(restored)))
	rdb := openDB(t, Options{Dir: restored})
	for _, id := range before {
		_, err := rdb.GetMessage(t.Context(), id)
		require.NoError(t, err, id)
	}
	inbox, _, err := rdb.ListInbox(t.Context(), "bob@b.example", 500, "")
	require.NoError(t, err)
	assert.Len(t, inbox, len(before))
	_, err = Check(restored)
	require.NoError(t, rdb.Close())
	_, err = Check(restored)
	require.NoError(t, err)
}
