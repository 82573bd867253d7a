package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// runner is a test double of the gateway's own WorkflowRunner port: it
// records what the driver asks of Step Functions. failResume makes the
// next Resume calls fail, as an unreachable Step Functions endpoint would;
// failRun, when set, is what every Run answers.
type runner struct {
	mu         sync.Mutex
	runs       []gateway.Decision
	resumed    map[string][]gateway.Decision // token → decisions handed to it
	failResume int
	failRun    error
}

func (r *runner) Run(_ context.Context, d gateway.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failRun != nil {
		return r.failRun
	}
	r.runs = append(r.runs, d)
	return nil
}

func (r *runner) Resume(_ context.Context, token string, d gateway.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failResume > 0 {
		r.failResume--
		return errors.New("step functions unreachable")
	}
	if r.resumed == nil {
		r.resumed = map[string][]gateway.Decision{}
	}
	r.resumed[token] = append(r.resumed[token], d)
	return nil
}

func (r *runner) decisions(token string) []gateway.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gateway.Decision(nil), r.resumed[token]...)
}

type runnerWorld struct {
	svc *gateway.Service
	db  *pebblestore.DB
	run *runner
}

func newRunnerWorld(t *testing.T) runnerWorld {
	t.Helper()
	ctx := context.Background()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	for _, name := range []string{"boss", "a", "b"} {
		require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: name + "@example.org", DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("key-" + name)}))
	}
	r := &runner{}
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, Runner: r})
	require.NoError(t, err)
	return runnerWorld{svc: svc, db: db, run: r}
}

func (w runnerWorld) as(t *testing.T, name string) gateway.Principal {
	t.Helper()
	p, err := w.svc.Authenticate(context.Background(), "key-"+name)
	require.NoError(t, err)
	return p
}

func (w runnerWorld) step(t *testing.T, id, addr, token string, round int) {
	t.Helper()
	_, err := w.svc.HandleWorkflowTask(context.Background(), gateway.Task{ID: id + "|step|" + addr, MessageID: id, Kind: gateway.TaskWorkflowStep,
		Recipients: []string{addr}, Token: token, Round: round})
	require.NoError(t, err)
}

func (w runnerWorld) reply(t *testing.T, from, id string) error {
	t.Helper()
	body := `{"version":"1.0","sender":"` + from + `@example.org","recipients":["boss@example.org"],"idempotency_key":"r-` + from + `",` +
		`"in_reply_to":"` + id + `","response_type":"workflow_response","payload":{"ok":true}}`
	_, err := w.svc.Accept(context.Background(), w.as(t, from), []byte(body))
	return err
}

// The Step Functions driver's rounds: steps store their tokens, an answer
// that decides nothing releases nothing, the deciding answer releases
// every step of the round with the same decision, and a step that reports
// after its round was decided gets that decision at once.
func TestRunnerRounds(t *testing.T) {
	w := newRunnerWorld(t)
	ctx := context.Background()
	res, err := w.svc.Accept(ctx, w.as(t, "boss"), []byte(`{"version":"1.0","sender":"boss@example.org","recipients":["a@example.org","b@example.org"],`+
		`"coordination":{"type":"parallel","timeout":60},"payload":{"q":1}}`))
	require.NoError(t, err)
	id := res.MessageID

	_, err = w.svc.HandleWorkflowTask(ctx, gateway.Task{ID: id + "|start", MessageID: id, Kind: gateway.TaskWorkflowStart})
	require.NoError(t, err)
	require.Len(t, w.run.runs, 1)
	first := w.run.runs[0]
	assert.Equal(t, gateway.DecisionAsk, first.Next)
	assert.Equal(t, 1, first.Round)
	assert.Equal(t, []gateway.AskItem{{Address: "a@example.org"}, {Address: "b@example.org"}}, first.Ask)
	assert.InDelta(t, 61, first.TimeoutSeconds, 1, "the steps wait until the deadline, plus a second")

	w.step(t, id, "a@example.org", "tok-a", 1)
	require.NoError(t, w.reply(t, "a", id))
	assert.Empty(t, w.run.decisions("tok-a"), "one of two answers ends no round")

	w.step(t, id, "b@example.org", "tok-b", 1)
	require.NoError(t, w.reply(t, "b", id))
	for _, tok := range []string{"tok-a", "tok-b"} {
		got := w.run.decisions(tok)
		require.Len(t, got, 1, "token %s", tok)
		assert.Equal(t, gateway.DecisionDone, got[0].Next)
		assert.Equal(t, workflow.StatusCompleted, got[0].Status)
		assert.Equal(t, 2, got[0].Round)
	}

	// A duplicate of a's step message arriving late: released at once.
	w.step(t, id, "a@example.org", "tok-a-late", 1)
	late := w.run.decisions("tok-a-late")
	require.Len(t, late, 1)
	assert.Equal(t, workflow.StatusCompleted, late[0].Status)
}

// A driver that stored its decision but could not hand it over answers
// the reply with a retryable error; the client's retry of the same reply
// hands it over.
func TestRunnerRepairsAfterFailedRelease(t *testing.T) {
	w := newRunnerWorld(t)
	ctx := context.Background()
	res, err := w.svc.Accept(ctx, w.as(t, "boss"), []byte(`{"version":"1.0","sender":"boss@example.org","recipients":["a@example.org"],`+
		`"coordination":{"type":"sequential","sequence":["a@example.org"],"timeout":60},"payload":{"q":1}}`))
	require.NoError(t, err)
	id := res.MessageID
	w.step(t, id, "a@example.org", "tok-a", 1)

	w.run.failResume = 1
	err = w.reply(t, "a", id)
	require.Error(t, err, "the decision could not be handed over")
	assert.Empty(t, w.run.decisions("tok-a"))
	st, err := w.db.GetWorkflow(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, workflow.StatusCompleted, st.Status, "the answer itself was recorded")

	require.NoError(t, w.reply(t, "a", id), "the retry succeeds")
	got := w.run.decisions("tok-a")
	require.Len(t, got, 1)
	assert.Equal(t, gateway.DecisionDone, got[0].Next)

	// The result reached the initiator exactly once.
	entries, _, err := w.db.ListInbox(ctx, "boss@example.org", 10, "")
	require.NoError(t, err)
	assert.Len(t, entries, 2, "a's reply and one workflow_result")
}
