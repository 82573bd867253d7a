package gatewaytest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// RunWorkflowStore checks a gateway.WorkflowStore (Backend.Workflows). It
// is not part of RunAll: only adapters that implement the port call it.
func RunWorkflowStore(t *testing.T, f Factory) {
	t.Run("CreateGet", func(t *testing.T) { testWorkflowCreateGet(t, f(t)) })
	t.Run("DuplicateCreate", func(t *testing.T) { testWorkflowDuplicate(t, f(t)) })
	t.Run("NotFound", func(t *testing.T) { testWorkflowNotFound(t, f(t)) })
	t.Run("Update", func(t *testing.T) { testWorkflowUpdate(t, f(t)) })
	t.Run("StaleUpdate", func(t *testing.T) { testWorkflowStale(t, f(t)) })
	t.Run("ConcurrentUpdatesOneWins", func(t *testing.T) { testWorkflowConcurrent(t, f(t)) })
	t.Run("SurvivesReopen", func(t *testing.T) { testWorkflowReopen(t, f(t)) })
	t.Run("StoredByAccept", func(t *testing.T) { testWorkflowAccept(t, f(t)) })
}

// NewWorkflow is an in-progress parallel workflow as workflow.Start would
// store it, with one participant that has already answered, so that
// payloads and times are part of every round trip.
func NewWorkflow(id string) workflow.State {
	now := Now()
	return workflow.State{
		WorkflowID: id,
		Initiator:  "boss@a.example",
		Type:       amtp.CoordinationParallel,
		Status:     workflow.StatusInProgress,
		CreatedAt:  now.Add(-time.Minute),
		UpdatedAt:  now,
		Deadline:   now.Add(time.Hour),
		Participants: []workflow.Participant{
			{
				Address: "alice@b.example", Status: workflow.ParticipantCompleted, Required: true,
				// Compact, as Apply stores payloads, so that it reads back byte for byte.
				Response:    json.RawMessage(`{"score":7,"tags":["a","b"],"note":"ok"}`),
				ReplyID:     NewID("reply"),
				RespondedAt: now,
			},
			{Address: "bob@c.example", Status: workflow.ParticipantAwaiting, Required: true},
			{Address: "carol@c.example", Status: workflow.ParticipantFailed, Error: json.RawMessage(`{"error_code":"X","error_message":"no"}`)},
		},
		Branches: []string{workflow.BranchThen},
		Version:  2,
	}
}

// next is s after one change, as Apply would return it.
func next(s workflow.State, step int) workflow.State {
	s.Participants = append([]workflow.Participant(nil), s.Participants...)
	s.Participants[1].Status = workflow.ParticipantCompleted
	s.Participants[1].Response = json.RawMessage(`{"step":` + itoa(step) + `}`)
	s.Step = step
	s.UpdatedAt = s.UpdatedAt.Add(time.Second)
	s.Version++
	return s
}

func itoa(n int) string {
	b, _ := json.Marshal(n) // an int always marshals
	return string(b)
}

func getWorkflow(t *testing.T, b Backend, id string) workflow.State {
	t.Helper()
	got, err := b.Workflows.GetWorkflow(ctx(t), id)
	require.NoError(t, err, "get workflow %s", id)
	return got
}

func testWorkflowCreateGet(t *testing.T, b Backend) {
	s := NewWorkflow(NewID("wf"))
	require.NoError(t, b.Workflows.CreateWorkflow(ctx(t), s))
	assert.Equal(t, s, getWorkflow(t, b, s.WorkflowID))
}

func testWorkflowDuplicate(t *testing.T, b Backend) {
	s := NewWorkflow(NewID("wf"))
	require.NoError(t, b.Workflows.CreateWorkflow(ctx(t), s))
	other := next(s, 5)
	err := b.Workflows.CreateWorkflow(ctx(t), other)
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, s, getWorkflow(t, b, s.WorkflowID), "a duplicate create writes nothing")
}

// testWorkflowAccept: the state of a coordinated message is written by the
// message's own Accept, all or nothing, and a duplicate acceptance neither
// replaces it nor stores the state it carries.
func testWorkflowAccept(t *testing.T, b Backend) {
	id := NewID("wfmsg")
	a := NewAcceptance(id, "boss@a.example", []string{"alice@b.example", "bob@c.example"}, Now())
	s := NewWorkflow(id)
	s.Driver = json.RawMessage(`{"round":1}`)
	a.Workflow = &s
	_, err := b.Messages.Accept(ctx(t), a)
	require.NoError(t, err)
	assert.Equal(t, s, getWorkflow(t, b, id))

	again := NewAcceptance(id, "boss@a.example", []string{"alice@b.example"}, Now())
	again.Idempotency.Key = "another-key-" + id
	other := next(s, 3)
	again.Workflow = &other
	_, err = b.Messages.Accept(ctx(t), again)
	require.ErrorIs(t, err, gateway.ErrMessageIDTaken)
	assert.Equal(t, s, getWorkflow(t, b, id), "a duplicate acceptance leaves the workflow alone")

	mismatched := NewAcceptance(NewID("wfmsg"), "boss@a.example", []string{"alice@b.example"}, Now())
	wrong := NewWorkflow(NewID("wf"))
	mismatched.Workflow = &wrong
	_, err = b.Messages.Accept(ctx(t), mismatched)
	require.Error(t, err, "a workflow must carry its message's id")
	_, err = b.Messages.GetMessage(ctx(t), mismatched.Message.ID)
	require.ErrorIs(t, err, gateway.ErrNotFound, "nothing of a refused acceptance is stored")
}

func testWorkflowNotFound(t *testing.T, b Backend) {
	_, err := b.Workflows.GetWorkflow(ctx(t), "no-such-workflow")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	s := NewWorkflow(NewID("wf"))
	err = b.Workflows.UpdateWorkflow(ctx(t), next(s, 1), s.Version)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = b.Workflows.GetWorkflow(ctx(t), s.WorkflowID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "an update of an unknown workflow creates nothing")
}

func testWorkflowUpdate(t *testing.T, b Backend) {
	s := NewWorkflow(NewID("wf"))
	require.NoError(t, b.Workflows.CreateWorkflow(ctx(t), s))
	n1 := next(s, 1)
	require.NoError(t, b.Workflows.UpdateWorkflow(ctx(t), n1, s.Version))
	assert.Equal(t, n1, getWorkflow(t, b, s.WorkflowID))
	n2 := next(n1, 2)
	require.NoError(t, b.Workflows.UpdateWorkflow(ctx(t), n2, n1.Version))
	got := getWorkflow(t, b, s.WorkflowID)
	assert.Equal(t, n2, got)
	assert.Equal(t, s.Version+2, got.Version)

	err := b.Workflows.UpdateWorkflow(ctx(t), n2, n2.Version)
	assert.Error(t, err, "a write that does not raise the version is refused")
	assert.NotErrorIs(t, err, gateway.ErrConflict)
}

func testWorkflowStale(t *testing.T, b Backend) {
	s := NewWorkflow(NewID("wf"))
	require.NoError(t, b.Workflows.CreateWorkflow(ctx(t), s))
	n1 := next(s, 1)
	require.NoError(t, b.Workflows.UpdateWorkflow(ctx(t), n1, s.Version))
	// A second writer that read s before n1 was stored.
	stale := next(s, 9)
	stale.Version = n1.Version + 1
	err := b.Workflows.UpdateWorkflow(ctx(t), stale, s.Version)
	require.ErrorIs(t, err, gateway.ErrConflict)
	assert.Equal(t, n1, getWorkflow(t, b, s.WorkflowID), "a stale update writes nothing")
}

func testWorkflowConcurrent(t *testing.T, b Backend) {
	s := NewWorkflow(NewID("wf"))
	require.NoError(t, b.Workflows.CreateWorkflow(ctx(t), s))
	const writers = 10
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = b.Workflows.UpdateWorkflow(ctx(t), next(s, i+1), s.Version)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "writers %d and %d both won", winner, i)
			winner = i
			continue
		}
		require.ErrorIs(t, err, gateway.ErrConflict, "writer %d", i)
	}
	require.NotEqual(t, -1, winner, "no writer won")
	assert.Equal(t, next(s, winner+1), getWorkflow(t, b, s.WorkflowID), "the winner's state is stored")
}

func testWorkflowReopen(t *testing.T, b Backend) {
	requireReopenable(t, b)
	s := NewWorkflow(NewID("wf"))
	require.NoError(t, b.Workflows.CreateWorkflow(ctx(t), s))
	n1 := next(s, 1)
	require.NoError(t, b.Workflows.UpdateWorkflow(ctx(t), n1, s.Version))
	b = b.Reopen(t)
	assert.Equal(t, n1, getWorkflow(t, b, s.WorkflowID))
	require.ErrorIs(t, b.Workflows.UpdateWorkflow(ctx(t), next(s, 2), s.Version), gateway.ErrConflict,
		"the version check survives too")
}
