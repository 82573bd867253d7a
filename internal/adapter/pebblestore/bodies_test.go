package pebblestore

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// acceptLarge accepts a message into bob's inbox whose raw bytes are
// size long (random, so that nothing compresses them away).
func acceptLarge(t *testing.T, db *DB, size int) *gateway.Acceptance {
	t.Helper()
	a := gatewaytest.NewAcceptance(gatewaytest.NewID("large"), "alice@a.example", []string{"bob@b.example"}, gatewaytest.Now())
	pad := make([]byte, size*3/4)
	_, _ = rand.Read(pad)
	raw := append(a.Message.Raw[:len(a.Message.Raw)-1:len(a.Message.Raw)-1], `,"pad":"`...)
	raw = append(raw, base64.StdEncoding.EncodeToString(pad)...)
	a.Message.Raw = append(raw, `"}`...)
	a.Inbox = []string{"bob@b.example"}
	_, err := db.Accept(t.Context(), a)
	require.NoError(t, err)
	return a
}

func bodyFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(storePath(dataDir), bodiesDir))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestLargeBodyLivesInAFile: a body of largeBody bytes or more is kept
// in a file and read back byte for byte, after a reopen too; a smaller
// one stays in Pebble.
func TestLargeBodyLivesInAFile(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	small := acceptInboxed(t, db, 1)[0]
	large := acceptLarge(t, db, 2*largeBody)
	require.GreaterOrEqual(t, len(large.Message.Raw), largeBody)

	require.Equal(t, []string{bodyFileName(messageKey(large.Message.ID))}, bodyFiles(t, dir), "only the large body has a file")
	v, err := db.get(messageKey(large.Message.ID))
	require.NoError(t, err)
	assert.Less(t, len(v), 512, "the message value keeps a reference, not the body")

	check := func(db *DB) {
		got, err := db.GetMessage(t.Context(), large.Message.ID)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(large.Message.Raw, got.Raw), "body read back byte for byte")
		assert.Equal(t, large.Message.Sender, got.Sender)
		inbox, _, err := db.ListInbox(t.Context(), "bob@b.example", 10, "")
		require.NoError(t, err)
		require.Len(t, inbox, 2)
		assert.Equal(t, small, inbox[0].MessageID)
		assert.True(t, bytes.Equal(large.Message.Raw, inbox[1].Raw))
	}
	check(db)
	require.NoError(t, db.Close())
	db = openDB(t, Options{Dir: dir})
	check(db)
	require.NoError(t, db.Close())
	_, err = Check(dir)
	require.NoError(t, err)
}

// TestDamagedBodyFailsOnlyItsMessage: a body file that is altered,
// truncated or gone is an error for its message (ErrCorrupt, never "not
// found" nor another message's bytes), the inbox page still answers the
// rest, and `store check` names it.
func TestDamagedBodyFailsOnlyItsMessage(t *testing.T) {
	damage := map[string]func(t *testing.T, path string){
		"altered": func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[len(b)/2] ^= 0x01
			require.NoError(t, os.WriteFile(path, b, 0o600))
		},
		"truncated": func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, largeBody/2))
		},
		"longer": func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte(" "))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		},
		"missing": func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) },
	}
	for name, spoil := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, Options{Dir: dir})
			good := acceptLarge(t, db, largeBody)
			bad := acceptLarge(t, db, largeBody)
			spoil(t, db.bodyPath(messageKey(bad.Message.ID)))

			_, err := db.GetMessage(t.Context(), bad.Message.ID)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.NotErrorIs(t, err, gateway.ErrNotFound)
			got, err := db.GetMessage(t.Context(), good.Message.ID)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(good.Message.Raw, got.Raw))

			inbox, _, err := db.ListInbox(t.Context(), "bob@b.example", 10, "")
			require.NoError(t, err, "one damaged body does not fail the page")
			require.Len(t, inbox, 1)
			assert.Equal(t, good.Message.ID, inbox[0].MessageID)

			require.NoError(t, db.Close())
			rep, err := Check(dir)
			require.ErrorIs(t, err, ErrDamaged)
			assert.Equal(t, 1, rep.DamagedCount)
		})
	}
}

// TestUnreferencedBodiesAreRemovedAtOpen: a body whose batch never
// committed (a crash between the file and the commit) and a temporary
// file are removed when the store opens; referenced bodies stay.
func TestUnreferencedBodiesAreRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	kept := acceptLarge(t, db, largeBody)
	orphanKey := messageKey(gatewaytest.NewID("never-committed"))
	_, err := db.writeBody(orphanKey, []byte(`{"never":"committed"}`))
	require.NoError(t, err)
	bodies := filepath.Join(storePath(dir), bodiesDir)
	require.NoError(t, os.WriteFile(filepath.Join(bodies, ".tmp-123"), []byte("half"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(bodies, "not-ours.txt"), []byte("x"), 0o600))
	require.Len(t, bodyFiles(t, dir), 4)
	require.NoError(t, db.Close())

	db = openDB(t, Options{Dir: dir})
	assert.ElementsMatch(t, []string{bodyFileName(messageKey(kept.Message.ID)), "not-ours.txt"}, bodyFiles(t, dir))
	_, err = db.GetMessage(t.Context(), kept.Message.ID)
	require.NoError(t, err)
}

// TestBackupCarriesBodies: a backup holds the body files of the large
// messages it holds, and the restored store reads them.
func TestBackupCarriesBodies(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	large := acceptLarge(t, db, 3*largeBody)
	backup := filepath.Join(t.TempDir(), "backup")
	require.NoError(t, db.Backup(t.Context(), backup))
	require.NoError(t, db.Close())

	restored := t.TempDir()
	require.NoError(t, os.Rename(backup, storePath(restored)))
	rdb := openDB(t, Options{Dir: restored})
	got, err := rdb.GetMessage(t.Context(), large.Message.ID)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(large.Message.Raw, got.Raw))
}
