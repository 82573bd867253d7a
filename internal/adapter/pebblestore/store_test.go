package pebblestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

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
	assert.Error(t, err, "Pebble's lock file keeps a second writer out")
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
	assert.Equal(t, 0, countKeys(t, db, tQueue))
	assert.Equal(t, 0, countKeys(t, db, tTaskDue))
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

const crashEnv = "AGENTRY_PEBBLESTORE_CRASH_DIR"

const crashMessages = 300

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
	require.Equal(t, total, countKeys(t, db, tTaskDue))

	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap growth after %d queued tasks: %.2f MB (heap %d → %d bytes)", total, float64(growth)/(1<<20), before.HeapAlloc, after.HeapAlloc)
	assert.Less(t, growth, int64(20<<20), "the queue must not keep tasks in memory")
}

// readIdem returns the stored idempotency record of (sender, key), nil if
// none.
func readIdem(t *testing.T, db *DB, sender, key string) *gateway.IdempotencyRecord {
	t.Helper()
	k := idemKey(sender, key)
	v, err := db.get(k)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil
	}
	require.NoError(t, err)
	rec, err := decodeIdem(k, v)
	require.NoError(t, err)
	return &rec
}

// countKeys counts the keys of one table.
func countKeys(t *testing.T, db *DB, table byte) int {
	t.Helper()
	it, err := db.iter([]byte{table}, []byte{table + 1})
	require.NoError(t, err)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	return n
}
