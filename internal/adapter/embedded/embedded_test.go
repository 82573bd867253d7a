package embedded

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/schema/schematest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// testLease is short so that the contract suite can watch leases lapse.
const testLease = time.Second

func openDB(t *testing.T, opts Options) *DB {
	t.Helper()
	db, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func backend(t *testing.T, dir string) gatewaytest.Backend {
	db := openDB(t, Options{Dir: dir, LeaseTimeout: testLease})
	return gatewaytest.Backend{
		Messages:     db,
		Inbox:        db,
		Agents:       db,
		Queue:        db,
		Workflows:    db,
		LeaseTimeout: testLease,
		Reopen: func(t *testing.T) gatewaytest.Backend {
			require.NoError(t, db.Close())
			return backend(t, dir)
		},
	}
}

func factory(t *testing.T) gatewaytest.Backend { return backend(t, t.TempDir()) }

func TestMessageStore(t *testing.T)  { gatewaytest.RunMessageStore(t, factory) }
func TestInboxStore(t *testing.T)    { gatewaytest.RunInboxStore(t, factory) }
func TestAgentStore(t *testing.T)    { gatewaytest.RunAgentStore(t, factory) }
func TestTaskQueue(t *testing.T)     { gatewaytest.RunTaskQueue(t, factory) }
func TestWorkflowStore(t *testing.T) { gatewaytest.RunWorkflowStore(t, factory) }

var (
	_ gateway.MessageStore  = (*DB)(nil)
	_ gateway.InboxStore    = (*DB)(nil)
	_ gateway.AgentStore    = (*DB)(nil)
	_ gateway.TaskQueue     = (*DB)(nil)
	_ gateway.Pinger        = (*DB)(nil)
	_ gateway.WorkflowStore = (*DB)(nil)
)

func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	db := openDB(t, Options{Dir: dir})
	require.NoError(t, db.Ping(t.Context()))

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "data dir")
	st, err = os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "database file")
}

func TestOpenNeedsDir(t *testing.T) {
	_, err := Open(Options{})
	assert.Error(t, err)
}

func TestClosed(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir()})
	require.NoError(t, err)
	ctx := t.Context()

	// A Receive waiting for work is released by Close.
	waiting := make(chan error, 1)
	go func() {
		_, err := db.Receive(ctx, 1, time.Minute)
		waiting <- err
	}()
	time.Sleep(50 * time.Millisecond)

	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "a second Close is harmless")
	select {
	case err := <-waiting:
		assert.ErrorIs(t, err, gateway.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a waiting Receive")
	}

	a := gatewaytest.NewAcceptance("m1", "alice@a.example", []string{"bob@b.example"}, time.Now())
	task := a.Tasks[0]
	calls := map[string]error{}
	_, calls["Accept"] = db.Accept(ctx, a)
	_, calls["GetMessage"] = db.GetMessage(ctx, "m1")
	_, calls["GetStatuses"] = db.GetStatuses(ctx, "m1")
	calls["UpdateStatuses"] = db.UpdateStatuses(ctx, "m1", a.Statuses)
	_, _, calls["ListMessages"] = db.ListMessages(ctx, gateway.MessageQuery{})
	calls["DeliverToInbox"] = db.DeliverToInbox(ctx, "bob@b.example", "m1", a.Statuses[0])
	_, _, calls["ListInbox"] = db.ListInbox(ctx, "bob@b.example", 0, "")
	calls["AckInbox"] = db.AckInbox(ctx, "bob@b.example", "m1")
	calls["PutAgent"] = db.PutAgent(ctx, &gateway.Agent{Address: "bob@b.example"})
	_, calls["GetAgent"] = db.GetAgent(ctx, "bob@b.example")
	_, calls["AgentByKeyHash"] = db.AgentByKeyHash(ctx, "00")
	calls["DeleteAgent"] = db.DeleteAgent(ctx, "bob@b.example")
	_, calls["ListAgents"] = db.ListAgents(ctx)
	calls["Enqueue"] = db.Enqueue(ctx, task)
	_, calls["Receive"] = db.Receive(ctx, 1, 0)
	calls["Ack"] = db.Ack(ctx, task)
	calls["Retry"] = db.Retry(ctx, task, time.Now())
	calls["DeadLetter"] = db.DeadLetter(ctx, task, gateway.DeadLetter{})
	_, calls["DeadLetters"] = db.DeadLetters(ctx, 0)
	calls["Ping"] = db.Ping(ctx)
	wf := gatewaytest.NewWorkflow("wf1")
	calls["CreateWorkflow"] = db.CreateWorkflow(ctx, wf)
	_, calls["GetWorkflow"] = db.GetWorkflow(ctx, "wf1")
	wf.Version++
	calls["UpdateWorkflow"] = db.UpdateWorkflow(ctx, wf, wf.Version-1)
	for name, err := range calls {
		assert.ErrorIs(t, err, gateway.ErrClosed, name)
	}
}

func TestCancelledContext(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, time.Now())
	_, err := db.Accept(ctx, a)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = db.GetMessage(t.Context(), a.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "a cancelled Accept writes nothing")
}

func TestSecondOpenOfSameDirFails(t *testing.T) {
	dir := t.TempDir()
	openDB(t, Options{Dir: dir})
	start := time.Now()
	_, err := Open(Options{Dir: dir})
	assert.Error(t, err, "bbolt's file lock keeps a second writer out")
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestDuplicateMessageID(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	now := time.Now().UTC()
	first := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	_, err := db.Accept(t.Context(), first)
	require.NoError(t, err)

	// Same message id under another key: nothing is overwritten.
	second := gatewaytest.NewAcceptance(first.Message.ID, "alice@a.example", []string{"carol@c.example"}, now)
	second.Idempotency.Key = "another-key"
	rec, err := db.Accept(t.Context(), second)
	require.ErrorIs(t, err, gateway.ErrMessageIDTaken)
	assert.Nil(t, rec, "nothing of the stored message is answered: the service reports a conflict")
	m, err := db.GetMessage(t.Context(), first.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, first.Message.Recipients, m.Recipients)
	assert.Nil(t, readIdem(t, db, "alice@a.example", "another-key"), "the second key was not recorded")
}

// readIdem returns the record of (sender, key) in idem_log or idem.
func readIdem(t *testing.T, db *DB, sender, key string) *gateway.IdempotencyRecord {
	t.Helper()
	scope := idemKey(sender, key)
	var v []byte
	require.NoError(t, db.read(func(r reader) error {
		c := r.bucket(bucketIdemLog).Cursor()
		for k, lv := c.First(); k != nil; k, lv = c.Next() {
			if bytes.Equal(k[timeLen:], scope) {
				v = clone(lv)
				return nil
			}
		}
		v = clone(r.bucket(bucketIdem).Get(scope))
		return nil
	}))
	if v == nil {
		return nil
	}
	rec, err := decodeIdem(scope, v)
	require.NoError(t, err)
	return &rec
}

// putIdem writes a's idempotency record into the idem bucket, where
// earlier versions wrote every record and where the oldest move to.
func putIdem(t *testing.T, db *DB, a *gateway.Acceptance) {
	t.Helper()
	require.NoError(t, db.commit.checkpointNow())
	require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
		rec := a.Idempotency.Filled(&a.Message, a.Message.AcceptedAt)
		return tx.Bucket(bucketIdem).Put(idemKey(rec.Sender, rec.Key), encodeIdem(rec))
	}))
}

func countKeys(t *testing.T, db *DB, bucket []byte) int {
	t.Helper()
	n := 0
	require.NoError(t, db.commit.checkpointNow())
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	}))
	return n
}

func TestSweeperPrunesOnlyExpiredIdempotency(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir(), SweepInterval: 20 * time.Millisecond})
	ctx := t.Context()
	now := time.Now().UTC()
	old := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now.Add(-gateway.IdempotencyWindow-time.Minute))
	fresh := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	for _, a := range []*gateway.Acceptance{old, fresh} {
		_, err := db.Accept(ctx, a)
		require.NoError(t, err)
	}
	require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@b.example", APIKeyHash: "ab"}))
	require.NoError(t, db.DeliverToInbox(ctx, "bob@b.example", old.Message.ID, old.Statuses[0]))

	require.Eventually(t, func() bool {
		return readIdem(t, db, "alice@a.example", old.Idempotency.Key) == nil
	}, 5*time.Second, 10*time.Millisecond, "the expired record is pruned")
	assert.NotNil(t, readIdem(t, db, "alice@a.example", fresh.Idempotency.Key), "a live record stays")
	assert.Equal(t, 1, countKeys(t, db, bucketIdemLog))
	assert.Zero(t, countKeys(t, db, bucketIdem), "accepts write to idem_log only")
	assert.Zero(t, countKeys(t, db, bucketIdemTime), "accepts write no time index")

	// Everything else is untouched.
	for _, a := range []*gateway.Acceptance{old, fresh} {
		_, err := db.GetMessage(ctx, a.Message.ID)
		require.NoError(t, err)
		_, err = db.GetStatuses(ctx, a.Message.ID)
		require.NoError(t, err)
	}
	assert.Equal(t, 2, countKeys(t, db, bucketMsgTime))
	assert.Equal(t, 2, countKeys(t, db, bucketTasks))
	assert.Equal(t, 2, countKeys(t, db, bucketDue))
	assert.Equal(t, 1, countKeys(t, db, bucketInbox))
	assert.Equal(t, 1, countKeys(t, db, bucketAgents))
	assert.Equal(t, 1, countKeys(t, db, bucketAgentKeys))
}

func TestReusedExpiredKeyIsNotSwept(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	now := time.Now().UTC()
	old := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now.Add(-gateway.IdempotencyWindow-time.Minute))
	_, err := db.Accept(ctx, old)
	require.NoError(t, err)
	reuse := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	reuse.Idempotency.Key = old.Idempotency.Key
	_, err = db.Accept(ctx, reuse)
	require.NoError(t, err)

	require.NoError(t, db.commit.checkpointNow()) // the sweep reads the file
	n, err := db.sweepRecent(100)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "the key holds the new record")
	_, err = db.Accept(ctx, old)
	assert.ErrorIs(t, err, gateway.ErrDuplicate, "the reused key still blocks")
}

// TestDuplicateIDKeepsExpiredKeySweepable: an Accept refused because its
// message id exists must not touch the expired record of the key it
// carries, or that record would never be swept.
func TestDuplicateIDKeepsExpiredKeySweepable(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	now := time.Now().UTC()
	old := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now.Add(-gateway.IdempotencyWindow-time.Minute))
	other := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	for _, a := range []*gateway.Acceptance{old, other} {
		_, err := db.Accept(ctx, a)
		require.NoError(t, err)
	}
	clash := gatewaytest.NewAcceptance(other.Message.ID, "alice@a.example", []string{"bob@b.example"}, now)
	clash.Idempotency.Key = old.Idempotency.Key
	_, err := db.Accept(ctx, clash)
	require.ErrorIs(t, err, gateway.ErrMessageIDTaken)

	require.NoError(t, db.commit.checkpointNow()) // the sweep reads the file
	n, err := db.sweepRecent(100)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the expired record is still there for the sweeper")
	assert.Nil(t, readIdem(t, db, "alice@a.example", old.Idempotency.Key))
	assert.NotNil(t, readIdem(t, db, "alice@a.example", other.Idempotency.Key))
}

// TestSweepWalksInSteps: a sweep examines a bounded number of records,
// resumes where the previous one stopped, wraps around at the end, and
// deletes only expired records, at most its limit.
func TestSweepWalksInSteps(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	now := time.Now().UTC()
	var expired, live []*gateway.Acceptance
	for i := range 10 {
		at := now
		if i%2 == 0 {
			at = now.Add(-gateway.IdempotencyWindow - time.Minute)
		}
		a := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, at)
		putIdem(t, db, a)
		if i%2 == 0 {
			expired = append(expired, a)
		} else {
			live = append(live, a)
		}
	}
	require.NoError(t, db.commit.checkpointNow()) // the sweep reads the file
	total := 0
	for range 3 { // 3 × 3 records examined: not yet the whole bucket
		n, err := db.sweepIdempotency(3, 100)
		require.NoError(t, err)
		assert.LessOrEqual(t, n, 3)
		assert.NotNil(t, db.sweepFrom, "the pass is not complete")
		total += n
	}
	n, err := db.sweepIdempotency(3, 100) // the tenth, then the end
	require.NoError(t, err)
	total += n
	assert.Equal(t, len(expired), total, "one pass deleted every expired record")
	assert.Nil(t, db.sweepFrom, "the pass is complete")
	for _, a := range live {
		assert.NotNil(t, readIdem(t, db, "alice@a.example", a.Idempotency.Key))
	}
	for _, a := range expired {
		assert.Nil(t, readIdem(t, db, "alice@a.example", a.Idempotency.Key))
	}

	// The limit holds, and the next pass finds what it left.
	old := now.Add(-gateway.IdempotencyWindow - time.Minute)
	for range 3 {
		putIdem(t, db, gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, old))
	}
	require.NoError(t, db.commit.checkpointNow()) // the sweep reads the file
	n, err = db.sweepIdempotency(100, 2)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = db.sweepIdempotency(100, 2)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, len(live), countKeys(t, db, bucketIdem))
}

// TestSweepDrainsAnEarlierVersionsIndex: records that an earlier version
// indexed by time (idem_time) go with their index entries; a live
// record and its entry stay.
func TestSweepDrainsAnEarlierVersionsIndex(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	now := time.Now().UTC()
	old := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now.Add(-gateway.IdempotencyWindow-time.Minute))
	fresh := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
		for _, a := range []*gateway.Acceptance{old, fresh} {
			rec := a.Idempotency.Filled(&a.Message, a.Message.AcceptedAt)
			k := idemKey(rec.Sender, rec.Key)
			require.NoError(t, tx.Bucket(bucketIdem).Put(k, encodeIdem(rec)))
			require.NoError(t, tx.Bucket(bucketIdemTime).Put(append(putTime(nil, rec.CreatedAt), k...), nil))
		}
		return nil
	}))
	require.NoError(t, db.sweepTick())
	assert.Nil(t, readIdem(t, db, "alice@a.example", old.Idempotency.Key))
	assert.NotNil(t, readIdem(t, db, "alice@a.example", fresh.Idempotency.Key))
	assert.Equal(t, 1, countKeys(t, db, bucketIdemTime))
}

func TestListMessagesBoundedScan(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour)
	// One match, buried under more non-matching messages than one page may
	// examine (10×1+1000 for limit 1).
	match := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "needle@a.example", []string{"bob@b.example"}, base)
	_, err := db.Accept(ctx, match)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 2500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := gatewaytest.NewAcceptance(gatewaytest.NewID("hay"), "hay@a.example", []string{"bob@b.example"}, base.Add(time.Duration(i+1)*time.Millisecond))
			a.Tasks = nil
			_, err := db.Accept(ctx, a)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()

	query := gateway.MessageQuery{Sender: "needle@a.example", Limit: 1}
	page, next, err := db.ListMessages(ctx, query)
	require.NoError(t, err)
	assert.Empty(t, page, "the first page stops at its scan budget")
	require.NotEmpty(t, next, "and says where to go on")
	var found []string
	for pages := 0; next != "" && pages < 10; pages++ {
		query.Cursor = next
		page, next, err = db.ListMessages(ctx, query)
		require.NoError(t, err)
		for _, s := range page {
			found = append(found, s.MessageID)
		}
	}
	assert.Equal(t, []string{match.Message.ID}, found)
	assert.Empty(t, next)
}

func TestBadCursors(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	for _, c := range []string{"!!", encodeCursor(cursorInbox, make([]byte, 12)), encodeCursor(cursorMessages, []byte{1, 2})} {
		_, _, err := db.ListMessages(ctx, gateway.MessageQuery{Cursor: c})
		assert.ErrorIs(t, err, ErrBadCursor, c)
	}
	_, _, err := db.ListInbox(ctx, "bob@b.example", 1, encodeCursor(cursorMessages, make([]byte, 12)))
	assert.ErrorIs(t, err, ErrBadCursor, "a listing cursor is not an inbox cursor")
}

func TestDeadLetterRecord(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	a := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, time.Now())
	require.NoError(t, db.Enqueue(ctx, a.Tasks...))
	got, err := db.Receive(ctx, 1, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	got[0].Attempt = 4
	require.NoError(t, db.DeadLetter(ctx, got[0], gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE", ErrorMessage: "410"}))

	dls, err := db.DeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	assert.Equal(t, a.Tasks[0].ID, dls[0].TaskID)
	assert.Equal(t, a.Message.ID, dls[0].MessageID)
	assert.Equal(t, []string{"bob@b.example"}, dls[0].Recipients)
	assert.Equal(t, 4, dls[0].Attempts)
	assert.Equal(t, "RECIPIENT_UNAVAILABLE", dls[0].FailureReason)
	assert.False(t, dls[0].DLQTimestamp.IsZero())
	assert.Equal(t, 0, countKeys(t, db, bucketTasks))
	assert.Equal(t, 0, countKeys(t, db, bucketDue))
}

func TestLeaseExpiryWakesReceive(t *testing.T) {
	const lease = 200 * time.Millisecond
	db := openDB(t, Options{Dir: t.TempDir(), LeaseTimeout: lease})
	ctx := t.Context()
	task := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, time.Now()).Tasks[0]
	require.NoError(t, db.Enqueue(ctx, task))
	// Taken before the lease starts, so that "not before the lease
	// lapsed" holds however long the first Receive takes to return.
	start := time.Now()
	first, err := db.Receive(ctx, 1, 0)
	require.NoError(t, err)
	require.Len(t, first, 1)

	// The wait is far longer than any busy machine needs for the lease
	// to lapse, so that waking at its end cannot pass for waking early.
	const wait = time.Minute
	again, err := db.Receive(ctx, 1, wait)
	require.NoError(t, err)
	require.Len(t, again, 1)
	assert.Equal(t, task.ID, again[0].ID)
	assert.GreaterOrEqual(t, time.Since(start), lease, "not before the lease lapsed")
	assert.Less(t, time.Since(start), wait/2, "woken by the lapse, not by the end of the wait")
}

// TestReceiveDoesNotSpin checks that a waiting Receive sleeps: with only a
// far-future task queued, a full wait must cost (almost) no CPU.
func TestReceiveDoesNotSpin(t *testing.T) {
	var clockReads atomic.Int64
	db := openDB(t, Options{Dir: t.TempDir(), Now: func() time.Time {
		clockReads.Add(1)
		return time.Now()
	}})
	ctx := t.Context()
	task := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, time.Now()).Tasks[0]
	task.NotBefore = time.Now().Add(time.Hour)
	require.NoError(t, db.Enqueue(ctx, task))

	// Each scan reads the clock a bounded number of times; a polling loop
	// would read it thousands of times in half a second.
	clockReads.Store(0)
	got, err := db.Receive(ctx, 1, 500*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.LessOrEqual(t, clockReads.Load(), int64(4), "Receive polled instead of waiting")
}

const crashEnv = "AGENTRY_EMBEDDED_CRASH_DIR"

const crashMessages = 300

// TestCrashLosesNothing accepts messages in a child process, kills it with
// SIGKILL right after Accept returned, and checks that every message and
// every task (including those leased when the child died) is there.
func TestCrashLosesNothing(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLosesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(2 * time.Minute)
wait:
	for {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "child ended without ok; stderr:\n%s", stderr.String())
			if line == "ok" {
				break wait
			}
			t.Logf("child: %s", line)
		case <-timeout:
			t.Fatalf("child did not report; stderr:\n%s", stderr.String())
		}
	}
	require.NoError(t, cmd.Process.Signal(os.Kill))
	_ = cmd.Wait()

	db := openDB(t, Options{Dir: dir})
	ctx := t.Context()
	for i := range crashMessages {
		id := fmt.Sprintf("crash-%04d", i)
		m, err := db.GetMessage(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, "alice@a.example", m.Sender)
		st, err := db.GetStatuses(ctx, id)
		require.NoError(t, err, id)
		assert.Len(t, st, 1)
	}
	tasks, err := db.Receive(ctx, 2*crashMessages, 0)
	require.NoError(t, err)
	assert.Len(t, tasks, crashMessages, "every task is due after the crash, leased ones included")
	seen := map[string]bool{}
	for _, tk := range tasks {
		seen[tk.MessageID] = true
	}
	assert.Len(t, seen, crashMessages)
}

// crashChild accepts crashMessages concurrently (so that group commit is in
// play), leases some tasks, reports "ok" and waits to be killed.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	db, err := Open(Options{Dir: dir})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, crashMessages)
	for i := range crashMessages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := gatewaytest.NewAcceptance(fmt.Sprintf("crash-%04d", i), "alice@a.example", []string{"bob@b.example"}, time.Now().UTC())
			if _, err := db.Accept(ctx, a); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fail(err)
	}
	if _, err := db.Receive(ctx, 50, 0); err != nil {
		fail(err)
	}
	fmt.Println("ok")
	time.Sleep(time.Hour)
}

// TestQueueMemoryBounded queues 50,000 future tasks and checks that the
// heap does not hold them: the queue lives in the file, not in memory.
func TestQueueMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 50,000 tasks")
	}
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const total, chunk = 50_000, 1000
	later := time.Now().Add(time.Hour)
	for n := 0; n < total; n += chunk {
		tasks := make([]gateway.Task, chunk)
		for i := range tasks {
			id := fmt.Sprintf("mem-%06d", n+i)
			tasks[i] = gateway.Task{
				ID: gateway.TaskID(id, "bob@b.example"), MessageID: id, Kind: gateway.TaskLocal,
				Recipients: []string{"bob@b.example"}, CreatedAt: time.Now(), NotBefore: later,
			}
		}
		require.NoError(t, db.Enqueue(ctx, tasks...))
	}
	got, err := db.Receive(ctx, 10, 50*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, got, "all tasks are in the future")
	require.Equal(t, total, countKeys(t, db, bucketDue))

	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap growth after %d queued tasks: %.2f MB (heap %d → %d bytes)", total, float64(growth)/(1<<20), before.HeapAlloc, after.HeapAlloc)
	assert.Less(t, growth, int64(20<<20), "the queue must not keep tasks in memory")
}

func TestSchemaStore(t *testing.T) {
	schematest.RunStore(t, func(t *testing.T) schema.Store {
		db, err := Open(Options{Dir: t.TempDir()})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// TestOrderedBucketsFillTheirPages: messages accepted in id order, and
// retried once (the task moves, the status grows) the way a queued
// message is, leave the pages of the append-ordered buckets mostly full,
// not split in halves.
func TestOrderedBucketsFillTheirPages(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir(), LeaseTimeout: testLease})
	ctx := t.Context()
	payload := strings.Repeat("lorem ipsum ", 40)
	for range 1500 {
		now := time.Now().UTC()
		a := gatewaytest.NewAcceptance(gatewaytest.NewID("fill"), "alice@a.example", []string{"bob@b.example"}, now)
		a.Message.Raw = fmt.Appendf(nil, `{"message_id":%q,"payload":{"text":%q}}`, a.Message.ID, payload)
		_, err := db.Accept(ctx, a)
		require.NoError(t, err)
		next := now.Add(time.Hour)
		retrying := a.Statuses[0]
		retrying.Status, retrying.Attempts, retrying.NextRetry = gateway.StateRetrying, 1, &next
		retrying.ErrorCode, retrying.ErrorMessage = "RECIPIENT_UNAVAILABLE", "webhook not reachable: connection refused"
		task := a.Tasks[0]
		task.Attempt = 1
		require.NoError(t, db.UpdateAndRetry(ctx, a.Message.ID, []gateway.RecipientStatus{retrying}, task, next))
	}
	require.NoError(t, db.commit.checkpointNow())
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMessages, bucketStatuses, bucketMsgTime, bucketTasks} {
			st := tx.Bucket(name).Stats()
			fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
			// Split in halves they are about 0.5 full; filled to 90 % the
			// small records reach 0.88, these 650-byte messages 0.63
			// (bbolt leaves at least three records for the new page).
			assert.Greater(t, fill, 0.6, "%s: %d of %d leaf bytes in use", name, st.LeafInuse, st.LeafAlloc)
		}
		return nil
	}))
}
