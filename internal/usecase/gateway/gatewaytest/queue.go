package gatewaytest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// RunTaskQueue checks a gateway.TaskQueue. It needs only Queue.
func RunTaskQueue(t *testing.T, f Factory) {
	t.Run("EnqueueReceiveAck", func(t *testing.T) { testEnqueueReceiveAck(t, f(t)) })
	t.Run("NotBeforeHoldsBack", func(t *testing.T) { testNotBefore(t, f(t)) })
	t.Run("LeasedNotReturnedAgain", func(t *testing.T) { testLeased(t, f(t)) })
	t.Run("RetryHidesUntil", func(t *testing.T) { testRetry(t, f(t)) })
	t.Run("DeadLetterRemoves", func(t *testing.T) { testDeadLetter(t, f(t)) })
	t.Run("EnqueueExistingID", func(t *testing.T) { testEnqueueDuplicate(t, f(t)) })
	t.Run("ReceiveMax", func(t *testing.T) { testReceiveMax(t, f(t)) })
	t.Run("ReceiveWakesOnEnqueue", func(t *testing.T) { testReceiveWakes(t, f(t)) })
	t.Run("ReceiveWaitElapses", func(t *testing.T) { testReceiveWaitElapses(t, f(t)) })
	t.Run("ReceiveHonoursContext", func(t *testing.T) { testReceiveContext(t, f(t)) })
	t.Run("SurvivesReopen", func(t *testing.T) { testQueueReopen(t, f(t)) })
}

// The backends run on real clocks (SQS's inside moto), so the contract
// gives every "not yet" a wide margin over what a busy machine takes to
// check it, and every "by then" a wait far longer than it needs: no
// outcome depends on the machine's speed.
const (
	// holdBack is how far in the future the tests make a task due: the
	// checks that it is not receivable yet must be over by then.
	holdBack = 5 * time.Second
	// longWait is the wait of a Receive that must return before it ends
	// (when a task comes due, or is enqueued), and wokeWithin how soon
	// it must have returned.
	longWait   = time.Minute
	wokeWithin = longWait / 2
	// cutShort bounds a Receive whose wait is short or whose context
	// ends: well under SQS's default long poll of 20 s, which a backend
	// ignoring the wait would fall back to.
	cutShort = 15 * time.Second
)

func newTask(recipients ...string) gateway.Task {
	id := NewID("msg")
	return gateway.Task{
		ID:         gateway.TaskID(id, recipients[0]),
		MessageID:  id,
		Kind:       gateway.TaskLocal,
		Recipients: recipients,
		CreatedAt:  Now(),
	}
}

func remoteTask(domain string, recipients ...string) gateway.Task {
	t := newTask(recipients...)
	t.ID = gateway.TaskID(t.MessageID, domain)
	t.Kind = gateway.TaskRemote
	t.Domain = domain
	return t
}

func testEnqueueReceiveAck(t *testing.T, b Backend) {
	remote := remoteTask("b.example", "bob@b.example", "carol@b.example")
	remote.Attempt = 2
	tasks := []gateway.Task{newTask("bob@a.example"), newTask("carol@a.example"), remote}
	require.NoError(t, b.Queue.Enqueue(ctx(t), tasks...))

	got := receiveN(t, b.Queue, len(tasks), longWait)
	assertTasks(t, tasks, got)
	receiveNone(t, b.Queue, 300*time.Millisecond)
	ack(t, b.Queue, got...)
	expectGone(t, b, ids(tasks)...)
}

func testNotBefore(t *testing.T, b Backend) {
	now := Now()
	due := newTask("bob@a.example")
	future := newTask("carol@a.example")
	future.NotBefore = now.Add(holdBack)
	past := newTask("dave@a.example")
	past.NotBefore = now.Add(-time.Hour)
	require.NoError(t, b.Queue.Enqueue(ctx(t), future, due, past))

	got := receiveN(t, b.Queue, 2, longWait)
	assertTasks(t, []gateway.Task{due, past}, got)
	// Settled, so that a short lease lapsing cannot bring them back below.
	ack(t, b.Queue, got...)
	receiveNone(t, b.Queue, 300*time.Millisecond)

	// One long Receive must come back once the task is due, not at the end
	// of its wait.
	start := time.Now()
	got, err := b.Queue.Receive(ctx(t), 10, longWait)
	require.NoError(t, err)
	require.Equal(t, []string{future.ID}, ids(got))
	assert.False(t, time.Now().Before(future.NotBefore), "task received before its not_before")
	assert.Less(t, time.Since(start), wokeWithin, "Receive did not wake when the task became due")
}

func testLeased(t *testing.T, b Backend) {
	task := newTask("bob@a.example")
	require.NoError(t, b.Queue.Enqueue(ctx(t), task))
	first := receiveN(t, b.Queue, 1, longWait)
	receiveNone(t, b.Queue, 300*time.Millisecond)
	if b.LeaseTimeout <= 0 {
		return
	}
	// An unsettled lease lapses and the task is handed out again, under a
	// new lease.
	again := receiveN(t, b.Queue, 1, b.LeaseTimeout+longWait)
	assert.Equal(t, task.ID, again[0].ID)
	assert.NotEqual(t, first[0].Lease, again[0].Lease)
	require.NoError(t, b.Queue.Ack(ctx(t), again[0]))
}

func testRetry(t *testing.T, b Backend) {
	task := newTask("bob@a.example")
	require.NoError(t, b.Queue.Enqueue(ctx(t), task))
	got := receiveN(t, b.Queue, 1, longWait)

	r := got[0]
	r.Attempt = 3
	at := time.Now().Add(holdBack)
	require.NoError(t, b.Queue.Retry(ctx(t), r, at))
	receiveNone(t, b.Queue, 300*time.Millisecond)

	start := time.Now()
	got, err := b.Queue.Receive(ctx(t), 10, longWait)
	require.NoError(t, err)
	require.Equal(t, []string{task.ID}, ids(got))
	assert.False(t, time.Now().Before(at), "retried task received before its time")
	assert.Less(t, time.Since(start), wokeWithin, "Receive did not wake when the retry became due")
	assert.Equal(t, 3, got[0].Attempt, "the retry carries the new attempt count")
	assert.Equal(t, task.MessageID, got[0].MessageID)
	assert.Equal(t, task.Recipients, got[0].Recipients)

	// A retry due now is receivable at once.
	r = got[0]
	r.Attempt = 4
	require.NoError(t, b.Queue.Retry(ctx(t), r, time.Now()))
	got = receiveN(t, b.Queue, 1, longWait)
	assert.Equal(t, 4, got[0].Attempt)
	require.NoError(t, b.Queue.Ack(ctx(t), got[0]))
	expectGone(t, b, task.ID)
}

func testDeadLetter(t *testing.T, b Backend) {
	dead, kept := newTask("bob@a.example"), newTask("carol@a.example")
	require.NoError(t, b.Queue.Enqueue(ctx(t), dead, kept))
	got := receiveN(t, b.Queue, 2, longWait)
	byID := map[string]gateway.Task{}
	for _, tk := range got {
		byID[tk.ID] = tk
	}
	now := time.Now().UTC()
	require.NoError(t, b.Queue.DeadLetter(ctx(t), byID[dead.ID], gateway.DeadLetter{
		MessageID: dead.MessageID, TaskID: dead.ID, Recipients: dead.Recipients,
		FailureReason: "RECIPIENT_UNAVAILABLE", ErrorMessage: "410 Gone", Attempts: 1,
		FirstAttempt: now, LastAttempt: now, DLQTimestamp: now,
	}))
	// The other task is still there: retried now, it comes back.
	require.NoError(t, b.Queue.Retry(ctx(t), byID[kept.ID], time.Now()))
	again := receiveN(t, b.Queue, 1, longWait)
	assert.Equal(t, kept.ID, again[0].ID)
	require.NoError(t, b.Queue.Ack(ctx(t), again[0]))
	expectGone(t, b, dead.ID, kept.ID)
}

func testEnqueueDuplicate(t *testing.T, b Backend) {
	task := newTask("bob@a.example")
	require.NoError(t, b.Queue.Enqueue(ctx(t), task, task))
	changed := task
	changed.Attempt = 5
	require.NoError(t, b.Queue.Enqueue(ctx(t), changed))

	got := receiveN(t, b.Queue, 1, longWait)
	assert.Equal(t, 0, got[0].Attempt, "the task already queued is kept as it was")

	// Enqueueing a task that is out on lease does not add a second copy.
	// One look for copies of either Enqueue, so that it ends well within
	// the lease (a look takes a second on SQS).
	require.NoError(t, b.Queue.Enqueue(ctx(t), task))
	receiveNone(t, b.Queue, 300*time.Millisecond)
	require.NoError(t, b.Queue.Ack(ctx(t), got[0]))
	expectGone(t, b, task.ID)
}

func testReceiveMax(t *testing.T, b Backend) {
	var tasks []gateway.Task
	for range 5 {
		tasks = append(tasks, newTask("bob@a.example"))
	}
	require.NoError(t, b.Queue.Enqueue(ctx(t), tasks...))
	got, err := b.Queue.Receive(ctx(t), 2, longWait)
	require.NoError(t, err)
	require.NotEmpty(t, got)
	require.LessOrEqual(t, len(got), 2, "Receive returned more than max")
	rest := receiveN(t, b.Queue, len(tasks)-len(got), longWait)
	assertTasks(t, tasks, append(got, rest...))
}

func testReceiveWakes(t *testing.T, b Backend) {
	type result struct {
		tasks []gateway.Task
		err   error
		at    time.Time
	}
	done := make(chan result, 1)
	go func() {
		tasks, err := b.Queue.Receive(ctx(t), 10, longWait)
		done <- result{tasks, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	task := newTask("bob@a.example")
	enqueued := time.Now()
	require.NoError(t, b.Queue.Enqueue(ctx(t), task))
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.Equal(t, []string{task.ID}, ids(r.tasks))
		assert.Less(t, r.at.Sub(enqueued), wokeWithin, "Receive did not wake on Enqueue")
	case <-time.After(2 * longWait):
		t.Fatal("Receive did not return")
	}
}

func testReceiveWaitElapses(t *testing.T, b Backend) {
	start := time.Now()
	got, err := b.Queue.Receive(ctx(t), 10, 500*time.Millisecond)
	require.NoError(t, err, "an empty wait is not an error")
	assert.Empty(t, got)
	assert.Less(t, time.Since(start), cutShort, "Receive outlived its wait")
}

func testReceiveContext(t *testing.T, b Backend) {
	c, cancel := context.WithTimeout(ctx(t), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, _ := b.Queue.Receive(c, 10, longWait)
	assert.Empty(t, got)
	assert.Less(t, time.Since(start), cutShort, "Receive ignored its context")
}

func testQueueReopen(t *testing.T, b Backend) {
	requireReopenable(t, b)
	inflight, retried, acked, dead := newTask("a@a.example"), newTask("b@a.example"), newTask("c@a.example"), newTask("d@a.example")
	require.NoError(t, b.Queue.Enqueue(ctx(t), inflight, retried, acked, dead))
	got := receiveN(t, b.Queue, 4, longWait)
	byID := map[string]gateway.Task{}
	for _, tk := range got {
		byID[tk.ID] = tk
	}
	r := byID[retried.ID]
	r.Attempt = 2
	retryAt := time.Now().Add(holdBack)
	require.NoError(t, b.Queue.Retry(ctx(t), r, retryAt))
	require.NoError(t, b.Queue.Ack(ctx(t), byID[acked.ID]))
	require.NoError(t, b.Queue.DeadLetter(ctx(t), byID[dead.ID], gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE"}))
	queued := newTask("e@a.example")
	require.NoError(t, b.Queue.Enqueue(ctx(t), queued))

	b = b.Reopen(t)
	// The lease of the in-flight task did not survive: it is due again.
	got = receiveN(t, b.Queue, 2, longWait)
	assertTasks(t, []gateway.Task{inflight, queued}, got)
	ack(t, b.Queue, got...)
	receiveNone(t, b.Queue, 300*time.Millisecond)

	got, err := b.Queue.Receive(ctx(t), 10, longWait)
	require.NoError(t, err)
	require.Equal(t, []string{retried.ID}, ids(got), "the retry schedule survives")
	assert.False(t, time.Now().Before(retryAt), "retried task received before its time")
	assert.Equal(t, 2, got[0].Attempt)
	receiveNone(t, b.Queue, 300*time.Millisecond)
}

func ack(t *testing.T, q gateway.TaskQueue, tasks ...gateway.Task) {
	t.Helper()
	for _, tk := range tasks {
		require.NoError(t, q.Ack(ctx(t), tk), tk.ID)
	}
}

// receiveN receives until it holds n tasks, failing on a task handed out
// twice or on timeout.
func receiveN(t *testing.T, q gateway.TaskQueue, n int, timeout time.Duration) []gateway.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got []gateway.Task
	seen := map[string]bool{}
	for len(got) < n {
		left := time.Until(deadline)
		require.Positive(t, left, "received %d of %d tasks: %v", len(got), n, ids(got))
		tasks, err := q.Receive(ctx(t), n-len(got), min(left, time.Second))
		require.NoError(t, err)
		require.LessOrEqual(t, len(tasks), n-len(got), "Receive returned more than max")
		for _, tk := range tasks {
			require.False(t, seen[tk.ID], "task %s handed out twice while leased", tk.ID)
			seen[tk.ID] = true
			got = append(got, tk)
		}
	}
	return got
}

// receiveNone fails if a task is received within wait.
func receiveNone(t *testing.T, q gateway.TaskQueue, wait time.Duration) {
	t.Helper()
	tasks, err := q.Receive(ctx(t), 10, wait)
	require.NoError(t, err)
	assert.Empty(t, ids(tasks), "no task should be receivable")
}

// expectGone waits out the backend's lease timeout, if it has one, and
// fails if any of the tasks comes back: settled tasks are gone, not hidden.
func expectGone(t *testing.T, b Backend, taskIDs ...string) {
	t.Helper()
	if b.LeaseTimeout <= 0 {
		return
	}
	time.Sleep(b.LeaseTimeout + 300*time.Millisecond)
	tasks, err := b.Queue.Receive(ctx(t), 10, 300*time.Millisecond)
	require.NoError(t, err)
	for _, id := range ids(tasks) {
		assert.NotContains(t, taskIDs, id, "a settled task came back")
	}
}

// assertTasks compares tasks by id, ignoring order and lease.
func assertTasks(t *testing.T, want, got []gateway.Task) {
	t.Helper()
	require.ElementsMatch(t, ids(want), ids(got))
	byID := map[string]gateway.Task{}
	for _, tk := range got {
		byID[tk.ID] = tk
	}
	for _, w := range want {
		g := byID[w.ID]
		assert.Equal(t, w.MessageID, g.MessageID, w.ID)
		assert.Equal(t, w.Kind, g.Kind, w.ID)
		assert.Equal(t, w.Recipients, g.Recipients, w.ID)
		assert.Equal(t, w.Domain, g.Domain, w.ID)
		assert.Equal(t, w.Attempt, g.Attempt, w.ID)
		assert.True(t, w.CreatedAt.Equal(g.CreatedAt), "%s created_at %v, want %v", w.ID, g.CreatedAt, w.CreatedAt)
		assert.True(t, w.NotBefore.Equal(g.NotBefore), "%s not_before %v, want %v", w.ID, g.NotBefore, w.NotBefore)
	}
}

func ids(tasks []gateway.Task) []string {
	out := make([]string, 0, len(tasks))
	for _, tk := range tasks {
		out = append(out, tk.ID)
	}
	slices.Sort(out)
	return out
}
