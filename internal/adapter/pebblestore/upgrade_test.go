package pebblestore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/boltimport"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// legacyFixture is a data directory written by the earlier engine's own
// code, with writes in its redo log only (its README says what it holds).
const legacyFixture = "../boltimport/testdata/v1"

// legacyBase is the fixture's clock; the store's runs an hour later, so
// that its idempotency records are within their window whenever the test
// runs.
var legacyBase = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func legacyNow() time.Time { return legacyBase.Add(time.Hour) }

// legacyMessage is a message of the fixture: its id, recipients and
// acceptance time.
type legacyMessage struct {
	id         string
	recipients []string
	at         time.Time
}

func fixtureID(n int) string { return fmt.Sprintf("019ad3c4-5e00-7000-8000-%012d", n) }

// legacyMessages are every message of the fixture: 1–8 and the two
// others in the database file, 10–13 in the log only.
func legacyMessages() []legacyMessage {
	bob := []string{"bob@b.example"}
	ms := []legacyMessage{
		{"legacy-json-0001", bob, legacyBase},
		{"client-own-id", []string{"bob@b.example", "carol@c.example"}, legacyBase.Add(9 * time.Second)},
	}
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13} {
		ms = append(ms, legacyMessage{fixtureID(n), bob, legacyBase.Add(time.Duration(n) * time.Second)})
	}
	return ms
}

// copyLegacy copies the fixture into a data directory of the test's own.
func copyLegacy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{boltimport.FileName, boltimport.WALFileName} {
		b, err := os.ReadFile(filepath.Join(legacyFixture, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	return dir
}

// checkLegacy checks that db holds what the fixture holds.
func checkLegacy(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	for _, lm := range legacyMessages() {
		m, err := db.GetMessage(ctx, lm.id)
		require.NoError(t, err, lm.id)
		// The fixture's raw messages are gatewaytest.NewAcceptance's.
		assert.True(t, json.Valid(m.Raw), lm.id)
		assert.Contains(t, string(m.Raw), `"message_id":"`+lm.id+`"`)
		assert.Equal(t, "Alice@a.example", m.Sender)
		assert.True(t, lm.at.Equal(m.AcceptedAt), lm.id)
		st, err := db.GetStatuses(ctx, lm.id)
		require.NoError(t, err)
		assert.Len(t, st, len(lm.recipients))
		// The key is still remembered: a resubmission is a duplicate.
		again := gatewaytest.NewAcceptance("resubmitted-"+lm.id, "alice@a.example", []string{"bob@b.example"}, legacyNow())
		again.Idempotency.Key = "key-" + lm.id
		rec, err := db.Accept(ctx, again)
		require.ErrorIs(t, err, gateway.ErrDuplicate, lm.id)
		assert.Equal(t, lm.id, rec.MessageID)
	}
	st, err := db.GetStatuses(ctx, fixtureID(7))
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[0].Status, "delivered in the log only")
	inbox, _, err := db.ListInbox(ctx, "bob@b.example", 10, "")
	require.NoError(t, err)
	var inboxed []string
	for _, e := range inbox {
		inboxed = append(inboxed, e.MessageID)
	}
	assert.ElementsMatch(t, []string{fixtureID(7), fixtureID(13)}, inboxed, "message 1 was acked in the log")

	for hash, address := range map[string]string{
		"hash-of-bobs-key": "bob@b.example", "hash-of-carols-key": "carol@c.example", "hash-of-erins-key": "erin@b.example",
	} {
		a, err := db.AgentByKeyHash(ctx, hash)
		require.NoError(t, err, hash)
		assert.Equal(t, address, a.Address)
		assert.True(t, legacyBase.Equal(a.CreatedAt))
	}
	_, err = db.AgentByKeyHash(ctx, "hash-of-franks-key")
	require.ErrorIs(t, err, gateway.ErrNotFound, "deleted in the log")

	s, err := db.GetWorkflow(ctx, fixtureID(4))
	require.NoError(t, err)
	assert.Equal(t, 2, s.Version)
	assert.Equal(t, workflow.StatusCompleted, s.Status)
	_, err = db.GetWorkflow(ctx, fixtureID(11))
	require.NoError(t, err)
	for _, id := range []string{"agntcy:test.order.v1", "agntcy:fixture.inlog.v1", "agntcy:fixture.last.v1"} {
		_, err := db.GetSchema(ctx, id)
		require.NoError(t, err, id)
	}
	dls, err := db.DeadLetters(ctx, 0)
	require.NoError(t, err)
	var dead []string
	for _, d := range dls {
		dead = append(dead, d.TaskID)
	}
	assert.ElementsMatch(t, []string{gateway.TaskID(fixtureID(3), "bob@b.example"), gateway.TaskID(fixtureID(8), "bob@b.example")}, dead)
}

// legacyQueue is the fixture's queue: every task not acked or dead, with
// the attempts of the retried ones.
func legacyQueue() map[string]int {
	q := map[string]int{
		gateway.TaskID("legacy-json-0001", "bob@b.example"): 0,
		gateway.TaskID("client-own-id", "bob@b.example"):    0,
		gateway.TaskID("client-own-id", "carol@c.example"):  0,
	}
	for _, n := range []int{2, 4, 6, 7, 10, 11, 12} {
		q[gateway.TaskID(fixtureID(n), "bob@b.example")] = 0
	}
	q[gateway.TaskID(fixtureID(2), "bob@b.example")] = 3 // retried before the checkpoint
	q[gateway.TaskID(fixtureID(6), "bob@b.example")] = 1 // retried in the log
	return q
}

// TestUpgradeImportsAnEarlierDataDir: the first start on a data directory
// of the earlier format imports all of it — the database file and the
// writes only its redo log holds — and keeps the old files under new
// names; the next start imports nothing.
func TestUpgradeImportsAnEarlierDataDir(t *testing.T) {
	dir := copyLegacy(t)
	ctx := t.Context()

	db, err := Open(Options{Dir: dir, Now: legacyNow})
	require.NoError(t, err)
	require.NotNil(t, db.Upgrade, "the earlier data dir was imported")
	assert.Zero(t, db.Upgrade.DamagedCount)
	assert.Equal(t, len(legacyMessages()), db.Upgrade.Imported["messages"])
	for _, name := range []string{boltimport.FileName, boltimport.WALFileName} {
		assert.NoFileExists(t, filepath.Join(dir, name))
		assert.FileExists(t, filepath.Join(dir, name+legacySuffix), "kept, not deleted")
	}
	checkLegacy(t, db)
	tasks, err := db.Receive(ctx, 100, 0)
	require.NoError(t, err)
	got := map[string]int{}
	for _, tk := range tasks {
		got[tk.ID] = tk.Attempt
	}
	assert.Equal(t, legacyQueue(), got, "every queued task, none acked or dead, with its attempts")
	require.NoError(t, db.Close())

	db = openDB(t, Options{Dir: dir, Now: legacyNow})
	assert.Nil(t, db.Upgrade, "imported once")
	checkLegacy(t, db)
}

// TestUpgradeResumesAfterAnInterruptedImport: a start that died after
// importing but before renaming the old files does not import twice
// over what was written since.
func TestUpgradeResumesAfterAnInterruptedImport(t *testing.T) {
	dir := copyLegacy(t)
	db := openDB(t, Options{Dir: dir, Now: legacyNow})
	require.NotNil(t, db.Upgrade)
	require.NoError(t, db.Close())
	// As if the renames had not happened.
	for _, name := range []string{boltimport.FileName, boltimport.WALFileName} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.Rename(p+legacySuffix, p))
	}
	db = openDB(t, Options{Dir: dir, Now: legacyNow})
	assert.Nil(t, db.Upgrade, "the marker says it was imported")
	assert.NoFileExists(t, filepath.Join(dir, boltimport.FileName))
	assert.FileExists(t, filepath.Join(dir, boltimport.FileName+legacySuffix))
	checkLegacy(t, db)
}

// TestUpgradeWithDamagedRecordsWaitsForAnOperator: an old data directory
// with a record that cannot be read is not imported without it silently:
// the store refuses to start, naming the records and the way on, until
// the operator acknowledges; the old files are kept either way.
func TestUpgradeWithDamagedRecordsWaitsForAnOperator(t *testing.T) {
	dir := copyLegacy(t)
	damaged := fixtureID(5)
	// Flip the meta version of the message's record: bbolt keeps a key
	// and its value side by side, and the value starts with the meta's
	// length, its version (2) and the sender's length (15).
	path := filepath.Join(dir, boltimport.FileName)
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	at := -1
	for from := 0; at < 0; {
		i := bytes.Index(file[from:], []byte(damaged))
		require.GreaterOrEqual(t, i, 0, "the message's record")
		v := from + i + len(damaged)
		if bytes.HasPrefix(file[v+1:], []byte("\x02\x0fAlice@a.example")) {
			at = v + 1
		}
		from = v
	}
	file[at] ^= 0xee
	require.NoError(t, os.WriteFile(path, file, 0o600))

	_, err = Open(Options{Dir: dir, Now: legacyNow})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 records could not be read")
	assert.Contains(t, err.Error(), ImportAck)
	assert.FileExists(t, filepath.Join(dir, boltimport.FileName), "the old files stay as they are")
	report, err := os.ReadFile(filepath.Join(dir, importReport))
	require.NoError(t, err)
	assert.Contains(t, string(report), damaged)

	require.NoError(t, os.WriteFile(filepath.Join(dir, ImportAck), nil, 0o600))
	db := openDB(t, Options{Dir: dir, Now: legacyNow})
	require.NotNil(t, db.Upgrade)
	assert.Equal(t, 1, db.Upgrade.DamagedCount)
	for _, m := range legacyMessages() {
		_, err := db.GetMessage(t.Context(), m.id)
		if m.id == damaged {
			assert.ErrorIs(t, err, gateway.ErrNotFound, "kept in the renamed old files only")
			continue
		}
		assert.NoError(t, err, m.id)
	}
	assert.FileExists(t, filepath.Join(dir, boltimport.FileName+legacySuffix))
}

// TestUpgradeRefusesFilesWrittenAfterTheImport: files of the earlier
// engine that appear after the import (that engine run again on the
// directory) are neither renamed over the kept ones nor passed over in
// silence: the store refuses to start, naming them.
func TestUpgradeRefusesFilesWrittenAfterTheImport(t *testing.T) {
	dir := copyLegacy(t)
	db := openDB(t, Options{Dir: dir, Now: legacyNow})
	require.NotNil(t, db.Upgrade)
	require.NoError(t, db.Close())
	kept, err := os.ReadFile(filepath.Join(dir, boltimport.FileName+legacySuffix))
	require.NoError(t, err)

	// The earlier engine writes a data directory of its own again.
	again := copyLegacy(t)
	for _, name := range []string{boltimport.FileName, boltimport.WALFileName} {
		require.NoError(t, os.Rename(filepath.Join(again, name), filepath.Join(dir, name)))
	}
	require.NoError(t, os.Truncate(filepath.Join(dir, boltimport.FileName), int64(len(kept))+4096))

	_, err = Open(Options{Dir: dir, Now: legacyNow})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "written after")
	assert.Contains(t, err.Error(), boltimport.FileName)
	assert.FileExists(t, filepath.Join(dir, boltimport.FileName), "left where it is")
	still, err := os.ReadFile(filepath.Join(dir, boltimport.FileName+legacySuffix))
	require.NoError(t, err)
	assert.Equal(t, kept, still, "the files kept at the import are not replaced")
}
