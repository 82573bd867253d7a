package dynamo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// mutate rewrites the stored item k through fn, bypassing the adapter.
func (e *env) mutate(t *testing.T, k item, fn func(it item)) {
	t.Helper()
	it := e.rawItem(t, k)
	require.NotEmpty(t, it, "item %s/%s", getStr(k, aPK), getStr(k, aSK))
	fn(it)
	e.putRaw(t, it)
}

// missingBlob is a reference of the form s3blob hands out, to bytes that
// were never stored.
func missingBlob(t *testing.T, e *env) string {
	t.Helper()
	ref, err := e.blobs.Put(ctx(t), []byte("a body"))
	require.NoError(t, err)
	missing := ref[:len(ref)-64] + strings.Repeat("0", 64)
	require.True(t, s3blob.IsRef(missing))
	return missing
}

// TestCorruptItemsAreErrors: an item the adapter cannot read (written by
// a broken or foreign writer) makes the read fail with an error that names
// what is wrong; it is never taken for absent, nor half-decoded into an
// answer.
func TestCorruptItemsAreErrors(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	const badTime = "yesterday"

	// accepted stores a message from a fresh sender to a fresh pull
	// recipient (filed in its inbox) and returns it.
	accepted := func(t *testing.T, st *Store) *gateway.Acceptance {
		t.Helper()
		a := toInbox(newAcceptance(strings.ToLower(gatewaytest.NewID("from"))+"@a.example", strings.ToLower(gatewaytest.NewID("to"))+"@b.example"))
		_, err := st.Accept(ctx(t), a)
		require.NoError(t, err)
		return a
	}
	// unfinished is a message whose recipient items were never written.
	unfinished := func(t *testing.T) *gateway.Acceptance {
		t.Helper()
		crashing := e.store(t)
		crashing.afterCommit = func() error { return errors.New("simulated crash") }
		a := newAcceptance("alice@a.example", "bob@b.example")
		_, err := crashing.Accept(ctx(t), a)
		require.ErrorContains(t, err, "simulated crash")
		return a
	}
	agent := func(t *testing.T) *gateway.Agent {
		t.Helper()
		a := newAgent("corrupt")
		require.NoError(t, s.PutAgent(ctx(t), a))
		e.mutate(t, agentKey(a.Address), func(it item) { it[agCreated] = str(badTime) })
		e.mutate(t, apiKeyKey(a.APIKeyHash), func(it item) { it[agCreated] = str(badTime) })
		return a
	}
	setMsg := func(t *testing.T, a *gateway.Acceptance, name string, v types.AttributeValue) {
		t.Helper()
		e.mutate(t, messageKey(a.Message.ID), func(it item) { it[name] = v })
	}
	addedStatus := []gateway.RecipientStatus{{Address: "zed@z.example", Status: gateway.StateFailed, Attempts: 1, UpdatedAt: gatewaytest.Now()}}
	notAMap := &types.AttributeValueMemberL{Value: []types.AttributeValue{str("not a map")}}

	cases := []struct {
		name string
		run  func(t *testing.T) error
		want string
	}{
		{"GetAgent", func(t *testing.T) error {
			_, err := s.GetAgent(ctx(t), agent(t).Address)
			return err
		}, "agent record"},
		{"AgentByKeyHash", func(t *testing.T) error {
			_, err := s.AgentByKeyHash(ctx(t), agent(t).APIKeyHash)
			return err
		}, "agent record"},
		{"PutAgent over it", func(t *testing.T) error {
			a := agent(t)
			a.WebhookURL = "https://agents.example/new"
			return s.PutAgent(ctx(t), a)
		}, "read current"},
		{"ReplaceAgentKey of it", func(t *testing.T) error {
			a := agent(t)
			_, err := s.ReplaceAgentKey(ctx(t), a.Address, a.APIKeyHash, "new")
			return err
		}, "agent record"},
		{"GetMessage/accepted_at", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aAt, str(badTime))
			_, err := s.GetMessage(ctx(t), a.Message.ID)
			return err
		}, "attribute at"},
		{"GetMessage/sender verification", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aVerif, str("{"))
			_, err := s.GetMessage(ctx(t), a.Message.ID)
			return err
		}, "sender verification"},
		{"GetMessage/body missing from S3", func(t *testing.T) error {
			a := accepted(t, s)
			ref := missingBlob(t, e)
			e.mutate(t, messageKey(a.Message.ID), func(it item) {
				delete(it, aRaw)
				delete(it, aRawZ)
				it[aBlob] = str(ref)
			})
			_, err := s.GetMessage(ctx(t), a.Message.ID)
			assert.ErrorIs(t, err, s3blob.ErrNotFound)
			return err
		}, "read body"},
		{"GetMessage/body in S3 without a blob store", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aBlob, str(missingBlob(t, e)))
			_, err := e.store(t, func(c *Config) { c.Blobs = nil }).GetMessage(ctx(t), a.Message.ID)
			return err
		}, "no blob store is configured"},
		{"GetStatuses/status not a map", func(t *testing.T) error {
			a := accepted(t, s)
			e.mutate(t, e.recipientItemKey(t, a.Message.ID, a.Message.Recipients[0]), func(it item) { it[aStatus] = str("delivered") })
			_, err := s.GetStatuses(ctx(t), a.Message.ID)
			return err
		}, "is not a map"},
		{"GetStatuses/specs of an unfinished message", func(t *testing.T) error {
			a := unfinished(t)
			setMsg(t, a, aSpecs, notAMap)
			_, err := s.GetStatuses(ctx(t), a.Message.ID)
			return err
		}, "is not a map"},
		{"UpdateStatuses/accepted_at", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aAt, str(badTime))
			return s.UpdateStatuses(ctx(t), a.Message.ID, addedStatus)
		}, "attribute at"},
		{"UpdateStatuses/specs", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aSpecs, notAMap)
			return s.UpdateStatuses(ctx(t), a.Message.ID, addedStatus)
		}, "is not a map"},
		{"ListInbox/accepted_at", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aAt, str(badTime))
			_, _, err := s.ListInbox(ctx(t), a.Message.Recipients[0], 10, "")
			return err
		}, "attribute at"},
		{"ListInbox/body missing from S3", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aBlob, str(missingBlob(t, e)))
			_, _, err := s.ListInbox(ctx(t), a.Message.Recipients[0], 10, "")
			assert.ErrorIs(t, err, s3blob.ErrNotFound)
			return err
		}, "read body"},
		{"ListInbox/entry sort key", func(t *testing.T) error {
			a := accepted(t, s)
			e.mutate(t, e.recipientItemKey(t, a.Message.ID, a.Message.Recipients[0]), func(it item) { it[aG2S] = str("not a time#" + a.Message.ID) })
			_, _, err := s.ListInbox(ctx(t), a.Message.Recipients[0], 10, "")
			return err
		}, "sort key"},
		{"ListMessages/accepted_at", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aAt, str(badTime))
			_, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Sender: a.Message.Sender})
			return err
		}, "attribute at"},
		{"ListMessages/status", func(t *testing.T) error {
			a := accepted(t, s)
			e.mutate(t, e.recipientItemKey(t, a.Message.ID, a.Message.Recipients[0]), func(it item) { it[aStatus] = str("delivered") })
			_, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Sender: a.Message.Sender})
			return err
		}, "is not a map"},
		{"ListMessages/index sort key", func(t *testing.T) error {
			a := accepted(t, s)
			setMsg(t, a, aG1S, str("garbage"))
			_, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Sender: a.Message.Sender})
			return err
		}, "too short"},
		{"Allow/bucket without tokens", func(t *testing.T) error {
			name := gatewaytest.NewID("rl")
			e.putRaw(t, item{aPK: str(pfxRate + name), aSK: str(skRate), aLast: num(time.Now().UnixNano()), aVer: num(1)})
			_, _, err := s.Allow(ctx(t), name, policy.Limit{Rate: 10, Per: time.Hour}, time.Now())
			return err
		}, "corrupt bucket: no tokens"},
		{"GetWorkflow/state", func(t *testing.T) error {
			st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
			require.NoError(t, s.CreateWorkflow(ctx(t), st))
			e.mutate(t, workflowKey(st.WorkflowID), func(it item) { it[aRaw] = bin([]byte("{")) })
			_, err := s.GetWorkflow(ctx(t), st.WorkflowID)
			return err
		}, "corrupt state"},
		{"GetWorkflow/state missing from S3", func(t *testing.T) error {
			st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
			require.NoError(t, s.CreateWorkflow(ctx(t), st))
			e.mutate(t, workflowKey(st.WorkflowID), func(it item) { it[aBlob] = str(missingBlob(t, e)) })
			_, err := s.GetWorkflow(ctx(t), st.WorkflowID)
			assert.ErrorIs(t, err, s3blob.ErrNotFound)
			return err
		}, "get workflow"},
		{"GetWorkflow/state in S3 without a blob store", func(t *testing.T) error {
			st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
			require.NoError(t, s.CreateWorkflow(ctx(t), st))
			e.mutate(t, workflowKey(st.WorkflowID), func(it item) { it[aBlob] = str(missingBlob(t, e)) })
			_, err := e.store(t, func(c *Config) { c.Blobs = nil }).GetWorkflow(ctx(t), st.WorkflowID)
			return err
		}, "no blob store is configured"},
		// The last two spoil their listings for the rest of this env.
		{"ListSchemas", func(t *testing.T) error {
			e.putRaw(t, item{aPK: str(pkSchemas), aSK: str("urn:corrupt"), aRaw: bin([]byte("{"))})
			_, err := s.ListSchemas(ctx(t))
			return err
		}, "corrupt record"},
		{"ListAgents", func(t *testing.T) error {
			agent(t)
			_, err := s.ListAgents(ctx(t))
			return err
		}, "agent record"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			require.Error(t, err)
			assert.NotErrorIs(t, err, gateway.ErrNotFound)
			assert.NotErrorIs(t, err, schema.ErrNotFound)
			assert.ErrorContains(t, err, "dynamo: ")
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestBlobStoreFailures: a body or workflow state that must go to S3 is
// refused when S3 refuses it, and nothing that would point at the missing
// object is stored.
func TestBlobStoreFailures(t *testing.T) {
	e := newEnv(t)
	broken, err := s3blob.New(awstest.Config(t), "no-such-bucket-"+strings.ToLower(gatewaytest.NewID("b")))
	require.NoError(t, err)
	s := e.store(t, func(c *Config) { c.Blobs = broken })

	a := newAcceptance("alice@a.example", "bob@b.example")
	a.Message.Raw = []byte(`{"payload":"` + strings.Repeat("x", 500<<10) + `"}`)
	_, err = s.Accept(ctx(t), a)
	require.ErrorContains(t, err, "store body")
	_, err = s.GetMessage(ctx(t), a.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	assert.Empty(t, e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key)), "the key was not claimed")

	st := bigWorkflow(t)
	err = s.CreateWorkflow(ctx(t), st)
	require.ErrorContains(t, err, "store state")
	_, err = s.GetWorkflow(ctx(t), st.WorkflowID)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
}
