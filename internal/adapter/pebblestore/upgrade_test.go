package pebblestore

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/adapter/embedded"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// legacyDir is a data directory written by the earlier engine (embedded):
// messages with their statuses and idempotency records, an inbox entry,
// queued and retried tasks, a dead letter, an agent, a schema and a
// workflow.
type legacyDir struct {
	dir       string
	messages  []*gateway.Acceptance
	inboxed   string
	retried   gateway.Task
	dead      gateway.Task
	agent     gateway.Agent
	workflow  string
	schemaID  string
	queuedIDs []string
}

func writeLegacy(t *testing.T) legacyDir {
	t.Helper()
	ctx := t.Context()
	l := legacyDir{dir: t.TempDir()}
	old, err := embedded.Open(embedded.Options{Dir: l.dir})
	require.NoError(t, err)
	now := gatewaytest.Now()
	for i := range 20 {
		// Gateway-made ids (UUIDs) and a client's own spelling.
		id := "0190f3a2-7b1c-7def-8123-4567890abc" + string(rune('a'+i/10)) + string(rune('0'+i%10))
		if i == 19 {
			id = "client-own-id-19"
		}
		a := gatewaytest.NewAcceptance(id, "Alice@a.example", []string{"bob@b.example"}, now.Add(time.Duration(i)*time.Millisecond))
		_, err := old.Accept(ctx, a)
		require.NoError(t, err)
		l.messages = append(l.messages, a)
	}
	l.agent = gateway.Agent{Address: "bob@b.example", DeliveryMode: "pull", APIKeyHash: "hash-of-bobs-key"}
	require.NoError(t, old.PutAgent(ctx, &l.agent))
	l.inboxed = l.messages[0].Message.ID
	require.NoError(t, old.DeliverToInbox(ctx, "bob@b.example", l.inboxed, gateway.RecipientStatus{Status: gateway.StateDelivered, UpdatedAt: now}))
	l.retried, l.dead = l.messages[1].Tasks[0], l.messages[2].Tasks[0]
	l.retried.Attempt = 3
	require.NoError(t, old.Retry(ctx, l.retried, now.Add(-time.Second)))
	require.NoError(t, old.DeadLetter(ctx, l.dead, gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE"}))
	require.NoError(t, old.Ack(ctx, l.messages[0].Tasks[0]))
	for _, a := range l.messages[1:] {
		if a.Tasks[0].ID != l.dead.ID {
			l.queuedIDs = append(l.queuedIDs, a.Tasks[0].ID)
		}
	}
	l.workflow = l.messages[3].Message.ID
	require.NoError(t, old.CreateWorkflow(ctx, workflow.State{WorkflowID: l.workflow, Version: 2}))
	l.schemaID = "agntcy:test.order.v1"
	require.NoError(t, old.PutSchema(ctx, schema.Record{ID: l.schemaID, Schema: []byte(`{"type":"object"}`)}))
	require.NoError(t, old.Close())
	return l
}

// TestUpgradeImportsAnEarlierDataDir: the first start on a data directory
// of the earlier format imports all of it and keeps the old files under
// new names; the next start imports nothing.
func TestUpgradeImportsAnEarlierDataDir(t *testing.T) {
	l := writeLegacy(t)
	ctx := t.Context()

	db, err := Open(Options{Dir: l.dir})
	require.NoError(t, err)
	require.NotNil(t, db.Upgrade, "the earlier data dir was imported")
	assert.Zero(t, db.Upgrade.DamagedCount)
	assert.Equal(t, len(l.messages), db.Upgrade.Imported["messages"])
	for _, name := range []string{embedded.FileName, embedded.WALFileName} {
		assert.NoFileExists(t, filepath.Join(l.dir, name))
		assert.FileExists(t, filepath.Join(l.dir, name+legacySuffix), "kept, not deleted")
	}
	check := func(db *DB) {
		for _, a := range l.messages {
			m, err := db.GetMessage(ctx, a.Message.ID)
			require.NoError(t, err, a.Message.ID)
			assert.Equal(t, a.Message.Raw, m.Raw)
			assert.Equal(t, "Alice@a.example", m.Sender)
			assert.True(t, a.Message.AcceptedAt.Equal(m.AcceptedAt))
			st, err := db.GetStatuses(ctx, a.Message.ID)
			require.NoError(t, err)
			require.Len(t, st, 1)
			// The key is still remembered: a resubmission is a duplicate.
			again := gatewaytest.NewAcceptance("resubmitted-"+a.Message.ID, "alice@a.example", []string{"bob@b.example"}, gatewaytest.Now())
			again.Idempotency.Key = a.Idempotency.Key
			rec, err := db.Accept(ctx, again)
			require.ErrorIs(t, err, gateway.ErrDuplicate, a.Message.ID)
			assert.Equal(t, a.Message.ID, rec.MessageID)
		}
		st, err := db.GetStatuses(ctx, l.inboxed)
		require.NoError(t, err)
		assert.Equal(t, gateway.StateDelivered, st[0].Status)
		inbox, _, err := db.ListInbox(ctx, "bob@b.example", 10, "")
		require.NoError(t, err)
		require.Len(t, inbox, 1)
		assert.Equal(t, l.inboxed, inbox[0].MessageID)

		a, err := db.AgentByKeyHash(ctx, "hash-of-bobs-key")
		require.NoError(t, err)
		assert.Equal(t, "bob@b.example", a.Address)
		assert.True(t, l.agent.CreatedAt.Equal(a.CreatedAt))
		s, err := db.GetWorkflow(ctx, l.workflow)
		require.NoError(t, err)
		assert.Equal(t, 2, s.Version)
		rec, err := db.GetSchema(ctx, l.schemaID)
		require.NoError(t, err)
		assert.JSONEq(t, `{"type":"object"}`, string(rec.Schema))
		dls, err := db.DeadLetters(ctx, 0)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		assert.Equal(t, l.dead.ID, dls[0].TaskID)
	}
	check(db)
	tasks, err := db.Receive(ctx, 100, 0)
	require.NoError(t, err)
	var got []string
	for _, tk := range tasks {
		got = append(got, tk.ID)
		if tk.ID == l.retried.ID {
			assert.Equal(t, 3, tk.Attempt, "the retried task keeps its attempts")
		}
	}
	assert.ElementsMatch(t, l.queuedIDs, got, "every queued task, none acked or dead")
	require.NoError(t, db.Close())

	db = openDB(t, Options{Dir: l.dir})
	assert.Nil(t, db.Upgrade, "imported once")
	check(db)
}

// TestUpgradeResumesAfterAnInterruptedImport: a start that died after
// importing but before renaming the old files does not import twice
// over what was written since; one that died before the marker imports
// again.
func TestUpgradeResumesAfterAnInterruptedImport(t *testing.T) {
	l := writeLegacy(t)
	db := openDB(t, Options{Dir: l.dir})
	require.NotNil(t, db.Upgrade)
	require.NoError(t, db.Close())
	// As if the renames had not happened.
	for _, name := range []string{embedded.FileName, embedded.WALFileName} {
		p := filepath.Join(l.dir, name)
		require.NoError(t, os.Rename(p+legacySuffix, p))
	}
	db = openDB(t, Options{Dir: l.dir})
	assert.Nil(t, db.Upgrade, "the marker says it was imported")
	assert.NoFileExists(t, filepath.Join(l.dir, embedded.FileName))
	assert.FileExists(t, filepath.Join(l.dir, embedded.FileName+legacySuffix))
}

// TestUpgradeWithDamagedRecordsWaitsForAnOperator: an old data directory
// with a record that cannot be read is not imported without it silently:
// the store refuses to start, naming the records and the way on, until
// the operator acknowledges; the old files are kept either way.
func TestUpgradeWithDamagedRecordsWaitsForAnOperator(t *testing.T) {
	l := writeLegacy(t)
	damaged := l.messages[5].Message.ID
	bdb, err := bolt.Open(filepath.Join(l.dir, embedded.FileName), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("messages")).Put([]byte(damaged), []byte{0xff})
	}))
	require.NoError(t, bdb.Close())

	_, err = Open(Options{Dir: l.dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 records could not be read")
	assert.Contains(t, err.Error(), ImportAck)
	assert.FileExists(t, filepath.Join(l.dir, embedded.FileName), "the old files stay as they are")
	report, err := os.ReadFile(filepath.Join(l.dir, importReport))
	require.NoError(t, err)
	assert.Contains(t, string(report), damaged)

	require.NoError(t, os.WriteFile(filepath.Join(l.dir, ImportAck), nil, 0o600))
	db := openDB(t, Options{Dir: l.dir})
	require.NotNil(t, db.Upgrade)
	assert.Equal(t, 1, db.Upgrade.DamagedCount)
	for _, a := range l.messages {
		_, err := db.GetMessage(t.Context(), a.Message.ID)
		if a.Message.ID == damaged {
			assert.ErrorIs(t, err, gateway.ErrNotFound, "kept in the renamed old files only")
			continue
		}
		assert.NoError(t, err, a.Message.ID)
	}
	assert.FileExists(t, filepath.Join(l.dir, embedded.FileName+legacySuffix))
}
