package dynamo

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// bigWorkflow is a state whose JSON is over the inline limit, by way of
// one large answer.
func bigWorkflow(t *testing.T) workflow.State {
	t.Helper()
	s := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
	big, err := json.Marshal(map[string]string{"text": strings.Repeat("x", awsres.MaxItemBytes)})
	require.NoError(t, err)
	s.Participants[0].Response = big
	return s
}

func TestLargeWorkflowGoesThroughS3(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	st := bigWorkflow(t)
	require.NoError(t, s.CreateWorkflow(ctx(t), st))

	raw := e.rawItem(t, workflowKey(st.WorkflowID))
	assert.NotContains(t, raw, aRaw, "the state is not inline")
	assert.True(t, s3blob.IsRef(getStr(raw, aBlob)), "the item holds an S3 reference")

	got, err := s.GetWorkflow(ctx(t), st.WorkflowID)
	require.NoError(t, err)
	assert.Equal(t, st, got)

	// An update claim-checks again and still checks the version.
	n := st
	n.Step, n.Version = 3, st.Version+1
	require.NoError(t, s.UpdateWorkflow(ctx(t), n, st.Version))
	got, err = s.GetWorkflow(ctx(t), st.WorkflowID)
	require.NoError(t, err)
	assert.Equal(t, n, got)
}

func TestLargeWorkflowWithoutBlobStoreIsRefused(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, func(c *Config) { c.Blobs = nil })
	err := s.CreateWorkflow(ctx(t), bigWorkflow(t))
	assert.ErrorIs(t, err, ErrBodyTooLarge)
}

func TestWorkflowTTL(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
	require.NoError(t, s.CreateWorkflow(ctx(t), st))
	raw := e.rawItem(t, workflowKey(st.WorkflowID))
	exp, ok := getNum(raw, aTTL)
	require.True(t, ok)
	assert.Equal(t, ttl(st.Deadline.Add(DefaultRetention)), exp, "deadline + retention")
	ver, _ := getNum(raw, aVer)
	assert.Equal(t, int64(st.Version), ver)
}

// TestWorkflowStatesThatCannotBeStored: a state without an id, or one
// that does not encode, is refused and leaves the stored state as it was.
func TestWorkflowStatesThatCannotBeStored(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	require.ErrorContains(t, s.CreateWorkflow(ctx(t), workflow.State{}), "no workflow id")

	st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
	broken := st
	broken.Driver = json.RawMessage(`{"tokens":`)
	require.ErrorContains(t, s.CreateWorkflow(ctx(t), broken), "encode state")
	_, err := s.GetWorkflow(ctx(t), st.WorkflowID)
	require.ErrorIs(t, err, gateway.ErrNotFound)

	require.NoError(t, s.CreateWorkflow(ctx(t), st))
	broken.Version = st.Version + 1
	require.ErrorContains(t, s.UpdateWorkflow(ctx(t), broken, st.Version), "encode state")
	got, err := s.GetWorkflow(ctx(t), st.WorkflowID)
	require.NoError(t, err)
	assert.Equal(t, st, got)
}

func TestSchemaThatCannotBeStored(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	err := s.PutSchema(ctx(t), schema.Record{ID: "urn:broken", Schema: json.RawMessage(`{"type":`), Version: 1})
	require.ErrorContains(t, err, "put schema urn:broken")
	_, err = s.GetSchema(ctx(t), "urn:broken")
	assert.ErrorIs(t, err, schema.ErrNotFound)
}
