package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// testClock is a service clock the test moves.
type testClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.at }

func (c *testClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.at = c.at.Add(d) }

// clockedWorld is a flakyWorld on a test clock, with r as its workflow
// runner (nil: the in-process driver).
func clockedWorld(t *testing.T, r gateway.WorkflowRunner) (*flakyWorld, *testClock) {
	t.Helper()
	clock := &testClock{at: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	w := newFlakyWorldOn(t, clock.Now, func(_ *gateway.Config, p *gateway.Ports) { p.Runner = r })
	return w, clock
}

// begin has alice start a workflow (coordination as given) with the
// recipients named, and returns its id.
func begin(t *testing.T, w *flakyWorld, key, coordination string, recipients ...string) string {
	t.Helper()
	to, err := json.Marshal(recipients)
	require.NoError(t, err)
	body := fmt.Sprintf(`{"version":"1.0","sender":"alice@example.org","recipients":%s,"idempotency_key":%q,"coordination":%s,"payload":{"q":1}}`, to, key, coordination)
	res, err := w.svc.Accept(context.Background(), w.as(t, "alice"), []byte(body))
	require.NoError(t, err)
	return res.MessageID
}

func answer(t *testing.T, w *flakyWorld, from, key, id string) error {
	t.Helper()
	body := fmt.Sprintf(`{"version":"1.0","sender":"%s@example.org","recipients":["alice@example.org"],"idempotency_key":%q,`+
		`"in_reply_to":%q,"response_type":"workflow_response","payload":{"ok":true}}`, from, key, id)
	_, err := w.svc.Accept(context.Background(), w.as(t, from), []byte(body))
	return err
}

func startTask(id string) gateway.Task {
	return gateway.Task{ID: id + "|start", MessageID: id, Kind: gateway.TaskWorkflowStart}
}

func timeoutTask(id string) gateway.Task {
	return gateway.Task{ID: id + "|timeout", MessageID: id, Kind: gateway.TaskWorkflowTimeout}
}

func participantStatus(t *testing.T, w *flakyWorld, id, address string) workflow.ParticipantStatus {
	t.Helper()
	st, err := w.db.DB.GetWorkflow(context.Background(), id)
	require.NoError(t, err)
	for _, p := range st.Participants {
		if p.Address == address {
			return p.Status
		}
	}
	t.Fatalf("%s is no participant of %s", address, id)
	return ""
}

const parallel = `{"type":"parallel","timeout":60}`

// TestWorkflowTasksRetryAfterStoreFailures: a workflow task whose store
// or queue write fails answers an error (the worker retries it with
// backoff), and its retry carries the task out.
func TestWorkflowTasksRetryAfterStoreFailures(t *testing.T) {
	w, clock := clockedWorld(t, nil)
	ctx := context.Background()
	cases := []struct {
		name       string
		timeout    bool     // the deadline task rather than the start
		recipients []string // default bob and shop
		method     string
		err        error // default errBackend
		after      int   // calls of method let through first
		want       string
		ghost      bool // the unknown participant failed, and with it the workflow
	}{
		{name: "start: read the workflow", method: "GetWorkflow", want: "start workflow"},
		{name: "start: arm the deadline", method: "Enqueue", want: "arm the deadline"},
		{name: "start: look up a participant", method: "GetAgent", want: "look up"},
		{name: "start: deliver to an inbox", method: "DeliverToInbox", want: "deliver to the inbox"},
		{name: "start: queue a push participant", method: "Enqueue", after: 1, want: "enqueue 1 deliveries"},
		{name: "start: tell the workflow of an unknown participant", recipients: []string{"bob@example.org", "ghost@example.org"},
			method: "GetWorkflow", after: 1, want: "delivery failure of ghost@example.org", ghost: true},
		{name: "timeout: read the workflow", timeout: true, method: "GetWorkflow", want: "workflow "},
		{name: "timeout: store the change", timeout: true, method: "UpdateWorkflow", want: "store"},
		{name: "timeout: writes keep conflicting", timeout: true, method: "UpdateWorkflow", err: gateway.ErrConflict, want: "gave up after"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.recipients == nil {
				tc.recipients = []string{"bob@example.org", "shop@example.org"}
			}
			if tc.err == nil {
				tc.err = errBackend
			}
			id := begin(t, w, fmt.Sprint("k-", i), parallel, tc.recipients...)
			task := startTask(id)
			if tc.timeout {
				_, err := w.svc.HandleWorkflowTask(ctx, task)
				require.NoError(t, err)
				clock.Add(2 * time.Minute)
				task = timeoutTask(id)
			}
			w.db.failOn(tc.method, tc.err, tc.after)
			_, err := w.svc.HandleWorkflowTask(ctx, task)
			w.db.heal()
			require.ErrorContains(t, err, tc.want)

			_, err = w.svc.HandleWorkflowTask(ctx, task)
			require.NoError(t, err, "the retry carries the task out")
			switch {
			case tc.timeout:
				assert.Equal(t, workflow.ParticipantTimedOut, participantStatus(t, w, id, "bob@example.org"))
			case tc.ghost:
				assert.Equal(t, workflow.ParticipantFailed, participantStatus(t, w, id, "ghost@example.org"))
			default:
				assert.Equal(t, workflow.ParticipantAwaiting, participantStatus(t, w, id, "bob@example.org"))
			}
		})
	}
}

// TestWorkflowTaskOutcomes: what the in-process driver makes of tasks for
// workflows that are gone, early or late timers, redelivered starts, and
// tasks that are not its own.
func TestWorkflowTaskOutcomes(t *testing.T) {
	w, clock := clockedWorld(t, nil)
	ctx := context.Background()

	again, err := w.svc.HandleWorkflowTask(ctx, startTask("wf-gone"))
	require.NoError(t, err, "the start of a workflow that is not stored is dropped")
	assert.True(t, again.IsZero())
	again, err = w.svc.HandleWorkflowTask(ctx, timeoutTask("wf-gone"))
	require.NoError(t, err, "so is its timer")
	assert.True(t, again.IsZero())

	id := begin(t, w, "k-1", parallel, "bob@example.org")
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	again, err = w.svc.HandleWorkflowTask(ctx, timeoutTask(id))
	require.NoError(t, err)
	assert.Equal(t, clock.Now().Add(60*time.Second), again, "an early timer comes back at the deadline")
	assert.Equal(t, workflow.ParticipantAwaiting, participantStatus(t, w, id, "bob@example.org"))

	clock.Add(time.Minute)
	_, err = w.svc.HandleWorkflowTask(ctx, timeoutTask(id))
	require.NoError(t, err)
	assert.Equal(t, workflow.ParticipantTimedOut, participantStatus(t, w, id, "bob@example.org"))
	again, err = w.svc.HandleWorkflowTask(ctx, timeoutTask(id))
	require.NoError(t, err, "a second timer finds the workflow over")
	assert.True(t, again.IsZero())
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err, "a redelivered start of an ended workflow repeats only its result")
	entries, _, err := w.db.ListInbox(ctx, "alice@example.org", 10, "")
	require.NoError(t, err)
	assert.Len(t, entries, 1, "one workflow result, however often it was repeated")

	_, err = w.svc.HandleWorkflowTask(ctx, gateway.Task{ID: "t-1", MessageID: id, Kind: gateway.TaskLocal})
	require.ErrorContains(t, err, "is not a workflow task")
	_, err = w.svc.HandleWorkflowTask(ctx, gateway.Task{ID: "t-2", MessageID: id, Kind: gateway.TaskWorkflowStep, Token: "tok", Recipients: []string{"bob@example.org"}})
	require.ErrorContains(t, err, "no workflow runner is configured")
}

// TestReplyNotToTheInitiatorIsOrdinaryMail: an answer to a workflow that
// is addressed to someone else than its initiator moves nothing.
func TestReplyNotToTheInitiatorIsOrdinaryMail(t *testing.T) {
	w, _ := clockedWorld(t, nil)
	ctx := context.Background()
	id := begin(t, w, "k-1", parallel, "bob@example.org")
	_, err := w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	body := fmt.Sprintf(`{"version":"1.0","sender":"bob@example.org","recipients":["shop@example.org"],"in_reply_to":%q,"response_type":"workflow_response","payload":{}}`, id)
	_, err = w.svc.Accept(ctx, w.as(t, "bob"), []byte(body))
	require.NoError(t, err)
	assert.Equal(t, workflow.ParticipantAwaiting, participantStatus(t, w, id, "bob@example.org"))
}

// TestWithoutWorkflowStore: a gateway without a workflow store refuses
// coordinated messages, cannot run workflow tasks, shows no workflow and
// has no workflow to tell of failed deliveries.
func TestWithoutWorkflowStore(t *testing.T) {
	w := newFlakyWorld(t, func(_ *gateway.Config, p *gateway.Ports) { p.Workflows = nil })
	ctx := context.Background()
	_, err := w.svc.Accept(ctx, w.as(t, "alice"), []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"coordination":`+parallel+`,"payload":{}}`))
	requireCode(t, err, amtp.CodeCoordinationFailed)
	_, err = w.svc.HandleWorkflowTask(ctx, startTask("wf-1"))
	require.ErrorContains(t, err, "no workflow store")
	_, err = w.svc.WorkflowView(ctx, admin, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	requireCode(t, err, amtp.CodeNotFound)
	require.NoError(t, w.svc.WorkflowDeliveryFailed(ctx, "wf-1", []string{"bob@example.org"}, amtp.CodeAgentUnknown, "gone"))
}

// TestWorkflowActionFailuresFailTheReply: an answer whose consequences
// (asking the next participant, submitting the result) cannot be carried
// out is refused with a retryable error; the answer itself is recorded,
// and its retry carries the consequences out.
func TestWorkflowActionFailuresFailTheReply(t *testing.T) {
	const sequence = `{"type":"sequential","sequence":["bob@example.org","shop@example.org"],"timeout":60}`
	for _, tc := range []struct {
		name   string
		coord  string
		method string
	}{
		{"asking the next participant", sequence, "Enqueue"},
		{"submitting the result", parallel, "Accept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := clockedWorld(t, nil)
			ctx := context.Background()
			id := begin(t, w, "k-1", tc.coord, "bob@example.org")
			_, err := w.svc.HandleWorkflowTask(ctx, startTask(id))
			require.NoError(t, err)

			w.db.failOn(tc.method, errBackend, 0)
			err = answer(t, w, "bob", "r-1", id)
			w.db.heal()
			requireCode(t, err, amtp.CodeTemporaryFailure)
			assert.Equal(t, workflow.ParticipantCompleted, participantStatus(t, w, id, "bob@example.org"))

			require.NoError(t, answer(t, w, "bob", "r-1", id), "the retry repeats what the answer asked for")
			st, err := w.db.DB.GetWorkflow(ctx, id)
			require.NoError(t, err)
			if tc.coord == parallel {
				assert.Equal(t, workflow.StatusCompleted, st.Status)
				entries, _, err := w.db.ListInbox(ctx, "alice@example.org", 10, "")
				require.NoError(t, err)
				assert.Len(t, entries, 2, "bob's answer and the result")
			} else {
				tasks, err := w.db.DB.Receive(ctx, 10, 0)
				require.NoError(t, err)
				var asked []string
				for _, task := range tasks {
					if task.Kind == gateway.TaskLocal {
						asked = append(asked, task.Recipients...)
					}
				}
				assert.Equal(t, []string{"shop@example.org"}, asked, "shop was asked once the store was back")
			}
		})
	}
}

// TestReplacedParticipantStatusNotRecorded: a participant whose agent was
// deleted and registered again since the workflow began fails; when that
// cannot be recorded the start is retried.
func TestReplacedParticipantStatusNotRecorded(t *testing.T) {
	w, clock := clockedWorld(t, nil)
	ctx := context.Background()
	id := begin(t, w, "k-1", parallel, "bob@example.org", "shop@example.org")
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "bob"))
	clock.Add(time.Second)
	_, err := w.svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "bob", DeliveryMode: gateway.ModePull})
	require.NoError(t, err)

	w.db.failOn("UpdateStatuses", errBackend, 0)
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(id))
	w.db.heal()
	require.ErrorContains(t, err, "record 1 replaced participants")
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	assert.Equal(t, workflow.ParticipantFailed, participantStatus(t, w, id, "bob@example.org"))
	st, err := w.db.DB.GetStatuses(ctx, id)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, string(amtp.CodeAgentUnknown), st[0].ErrorCode)
}

// TestWorkflowDeliveryFailedErrors: the worker's report of a participant
// it cannot reach fails when the workflow cannot be read; reports about
// strangers and unknown workflows change nothing.
func TestWorkflowDeliveryFailedErrors(t *testing.T) {
	w, _ := clockedWorld(t, nil)
	ctx := context.Background()
	id := begin(t, w, "k-1", parallel, "bob@example.org")
	_, err := w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	require.NoError(t, w.svc.WorkflowDeliveryFailed(ctx, "wf-unknown", []string{"bob@example.org"}, amtp.CodeRecipientUnavailable, "down"))
	require.NoError(t, w.svc.WorkflowDeliveryFailed(ctx, id, []string{"zed@example.org"}, amtp.CodeRecipientUnavailable, "down"))
	w.db.failOn("GetWorkflow", errBackend, 0)
	err = w.svc.WorkflowDeliveryFailed(ctx, id, []string{"bob@example.org"}, amtp.CodeRecipientUnavailable, "down")
	w.db.heal()
	require.ErrorContains(t, err, "delivery failure of bob@example.org")
	assert.Equal(t, workflow.ParticipantAwaiting, participantStatus(t, w, id, "bob@example.org"))
}

// TestRunnerSteps: how the Step Functions driver takes the step tasks it
// is handed: malformed ones are errors, steps of unknown workflows or of
// rounds long over are settled, and a store that keeps failing or
// conflicting makes the step retry.
func TestRunnerSteps(t *testing.T) {
	r := &runner{}
	w, _ := clockedWorld(t, r)
	ctx := context.Background()
	id := begin(t, w, "k-1", parallel, "bob@example.org", "shop@example.org")
	_, err := w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	step := func(addr, token string, round int) gateway.Task {
		return gateway.Task{ID: id + "|step|" + addr, MessageID: id, Kind: gateway.TaskWorkflowStep, Recipients: []string{addr}, Token: token, Round: round}
	}
	for _, tc := range []struct {
		name   string
		task   gateway.Task
		method string
		err    error
		want   string // "" = settled without error
	}{
		{name: "no token", task: step("bob@example.org", "", 1), want: "needs a token and one participant"},
		{name: "two participants", task: gateway.Task{ID: "s", MessageID: id, Kind: gateway.TaskWorkflowStep, Token: "t", Recipients: []string{"bob@example.org", "shop@example.org"}},
			want: "needs a token and one participant"},
		{name: "not an address", task: step("bob", "tok", 1), want: "participant \"bob\""},
		{name: "unknown workflow", task: gateway.Task{ID: "s", MessageID: "wf-gone", Kind: gateway.TaskWorkflowStep, Token: "t", Recipients: []string{"bob@example.org"}, Round: 1}},
		{name: "round ahead", task: step("bob@example.org", "tok", 2), want: "is ahead of the workflow's round"},
		{name: "round before any decision", task: step("bob@example.org", "tok", 0)},
		{name: "store down", task: step("bob@example.org", "tok", 1), method: "GetWorkflow", err: errBackend, want: "workflow step"},
		{name: "token not stored", task: step("bob@example.org", "tok", 1), method: "UpdateWorkflow", err: errBackend, want: "store token"},
		{name: "token writes keep conflicting", task: step("bob@example.org", "tok", 1), method: "UpdateWorkflow", err: gateway.ErrConflict, want: "gave up after"},
		{name: "not a participant", task: step("zed@example.org", "tok-z", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.method != "" {
				w.db.failOn(tc.method, tc.err, 0)
			}
			_, err := w.svc.HandleWorkflowTask(ctx, tc.task)
			w.db.heal()
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
		})
	}
	assert.Empty(t, r.decisions("tok"), "no step was released")
	entries, _, err := w.db.ListInbox(ctx, "bob@example.org", 10, "")
	require.NoError(t, err)
	assert.Empty(t, entries, "bob was asked by none of the failed steps")
}

// TestRunnerDriverRecord: a workflow stored without the Step Functions
// driver's record (begun before the runner was configured) starts at
// round one; one whose record is corrupt fails every task and answer
// rather than deciding on nonsense; a runner that cannot start the
// execution makes the start retry.
func TestRunnerDriverRecord(t *testing.T) {
	ctx := context.Background()
	r := &runner{}
	w, _ := clockedWorld(t, r)

	plain := begin(t, w, "k-plain", parallel, "bob@example.org")
	st, err := w.db.DB.GetWorkflow(ctx, plain)
	require.NoError(t, err)
	st.Driver = nil
	next := st
	next.Version++
	require.NoError(t, w.db.DB.UpdateWorkflow(ctx, next, st.Version))
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(plain))
	require.NoError(t, err)
	require.Len(t, r.runs, 1)
	assert.Equal(t, 1, r.runs[0].Round)

	r.failRun = errors.New("states: throttled")
	failing := begin(t, w, "k-run", parallel, "bob@example.org")
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(failing))
	require.ErrorContains(t, err, "states: throttled")
	r.failRun = nil

	corrupt := begin(t, w, "k-corrupt", parallel, "bob@example.org")
	st, err = w.db.DB.GetWorkflow(ctx, corrupt)
	require.NoError(t, err)
	next = st
	next.Driver, next.Version = json.RawMessage(`"not a driver record"`), st.Version+1
	require.NoError(t, w.db.DB.UpdateWorkflow(ctx, next, st.Version))
	_, err = w.svc.HandleWorkflowTask(ctx, startTask(corrupt))
	require.ErrorContains(t, err, "driver record")
	_, err = w.svc.HandleWorkflowTask(ctx, gateway.Task{ID: "s", MessageID: corrupt, Kind: gateway.TaskWorkflowStep, Token: "t", Recipients: []string{"bob@example.org"}, Round: 1})
	require.ErrorContains(t, err, "driver record")
	_, err = w.svc.HandleWorkflowTask(ctx, timeoutTask(corrupt))
	require.ErrorContains(t, err, "driver record", "an early timer repeats the last decision, which cannot be read")
	requireCode(t, answer(t, w, "bob", "r-corrupt", corrupt), amtp.CodeTemporaryFailure)
	assert.Equal(t, workflow.ParticipantAwaiting, participantStatus(t, w, corrupt, "bob@example.org"), "nothing was decided")
}

// TestRepeatedAnswerRepeatsTheAsk: an answer the workflow already has
// changes nothing but repeats the asks still open (the driver that made
// them may have died before it could); when that fails the answer gets a
// retryable error.
func TestRepeatedAnswerRepeatsTheAsk(t *testing.T) {
	w, _ := clockedWorld(t, nil)
	ctx := context.Background()
	id := begin(t, w, "k-1", parallel, "bob@example.org", "shop@example.org")
	_, err := w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	require.NoError(t, answer(t, w, "bob", "r-1", id))

	w.db.failOn("Enqueue", errBackend, 0)
	err = answer(t, w, "bob", "r-2", id)
	w.db.heal()
	requireCode(t, err, amtp.CodeTemporaryFailure)

	require.NoError(t, answer(t, w, "bob", "r-2", id))
	assert.Equal(t, workflow.ParticipantAwaiting, participantStatus(t, w, id, "shop@example.org"))
	assert.Equal(t, workflow.ParticipantCompleted, participantStatus(t, w, id, "bob@example.org"))
}

// TestLateAnswerAfterTheIdempotencyWindow: an answer to a workflow that
// ended longer ago than idempotency keys are kept is mail like any other:
// repeating the workflow's result, whose key has expired, must not refuse
// it.
func TestLateAnswerAfterTheIdempotencyWindow(t *testing.T) {
	w, clock := clockedWorld(t, nil)
	ctx := context.Background()
	id := begin(t, w, "k-1", parallel, "bob@example.org")
	_, err := w.svc.HandleWorkflowTask(ctx, startTask(id))
	require.NoError(t, err)
	clock.Add(time.Minute)
	_, err = w.svc.HandleWorkflowTask(ctx, timeoutTask(id))
	require.NoError(t, err)

	clock.Add(gateway.IdempotencyWindow + time.Hour)
	require.NoError(t, answer(t, w, "bob", "r-late", id))
	_, err = w.svc.HandleWorkflowTask(ctx, timeoutTask(id))
	require.NoError(t, err, "a late timer is settled too")
	entries, _, err := w.db.ListInbox(ctx, "alice@example.org", 10, "")
	require.NoError(t, err)
	assert.Len(t, entries, 2, "one workflow result and bob's late answer")
}
