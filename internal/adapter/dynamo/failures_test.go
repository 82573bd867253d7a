package dynamo

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// newAgent is a pull agent at a fresh address, with a key.
func newAgent(name string) *gateway.Agent {
	addr := strings.ToLower(gatewaytest.NewID(name)) + "@a.example"
	return &gateway.Agent{Address: addr, DeliveryMode: gateway.ModePull, APIKeyHash: testKeyHash(addr), CreatedAt: gatewaytest.Now()}
}

// TestDynamoFailuresReachTheCaller: when a DynamoDB call fails, every
// operation stops there and returns the failure (errors.Is finds it) with
// the context of what it was doing, rather than an answer built on a read
// or write that did not happen.
func TestDynamoFailuresReachTheCaller(t *testing.T) {
	e := newEnv(t)
	good := e.store(t)
	// inbox files a message in a fresh recipient's inbox.
	inbox := func(t *testing.T) (string, string) {
		t.Helper()
		a := toInbox(newAcceptance("alice@a.example", strings.ToLower(gatewaytest.NewID("bob"))+"@b.example"))
		_, err := good.Accept(ctx(t), a)
		require.NoError(t, err)
		return a.Message.Recipients[0], a.Message.ID
	}
	agent := func(t *testing.T) *gateway.Agent {
		t.Helper()
		a := newAgent("agent")
		require.NoError(t, good.PutAgent(ctx(t), a))
		return a
	}
	status := func(addr string) []gateway.RecipientStatus {
		return []gateway.RecipientStatus{{Address: addr, Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: gatewaytest.Now()}}
	}

	cases := []struct {
		name string
		fail func(any) error
		run  func(t *testing.T, s *Store) error
		want string // what the error says the operation was doing
	}{
		{"PutAgent/read", awstest.FailCalls(1, getOf(pfxAgent), errInjected), func(t *testing.T, s *Store) error {
			return s.PutAgent(ctx(t), newAgent("put"))
		}, "put agent"},
		{"PutAgent/write", failAll[*dynamodb.TransactWriteItemsInput](), func(t *testing.T, s *Store) error {
			return s.PutAgent(ctx(t), newAgent("put"))
		}, "put agent"},
		{"ReplaceAgentKey/read", awstest.FailCalls(1, getOf(pfxAgent), errInjected), func(t *testing.T, s *Store) error {
			a := agent(t)
			_, err := s.ReplaceAgentKey(ctx(t), a.Address, a.APIKeyHash, "new")
			return err
		}, "replace agent key"},
		{"ReplaceAgentKey/write", failAll[*dynamodb.TransactWriteItemsInput](), func(t *testing.T, s *Store) error {
			a := agent(t)
			_, err := s.ReplaceAgentKey(ctx(t), a.Address, a.APIKeyHash, "new")
			return err
		}, "replace agent key"},
		{"GetAgent", awstest.FailCalls(1, getOf(pfxAgent), errInjected), func(t *testing.T, s *Store) error {
			_, err := s.GetAgent(ctx(t), agent(t).Address)
			return err
		}, "get agent"},
		{"AgentByKeyHash", awstest.FailCalls(1, getOf(pfxAPIKey), errInjected), func(t *testing.T, s *Store) error {
			_, err := s.AgentByKeyHash(ctx(t), agent(t).APIKeyHash)
			return err
		}, "agent by key hash"},
		{"DeleteAgent/purge query", failAll[*dynamodb.QueryInput](), func(t *testing.T, s *Store) error {
			return s.DeleteAgent(ctx(t), agent(t).Address)
		}, "purge its inbox"},
		{"DeleteAgent/purge unfile", awstest.FailCalls(1, updateOf(pfxTo), errInjected), func(t *testing.T, s *Store) error {
			addr, _ := inbox(t)
			return s.DeleteAgent(ctx(t), addr)
		}, "purge its inbox"},
		{"DeleteAgent/read", awstest.FailCalls(1, getOf(pfxAgent), errInjected), func(t *testing.T, s *Store) error {
			return s.DeleteAgent(ctx(t), agent(t).Address)
		}, "delete agent"},
		{"DeleteAgent/write", failAll[*dynamodb.TransactWriteItemsInput](), func(t *testing.T, s *Store) error {
			return s.DeleteAgent(ctx(t), agent(t).Address)
		}, "delete agent"},
		{"ListAgents/query", failAll[*dynamodb.QueryInput](), func(t *testing.T, s *Store) error {
			_, err := s.ListAgents(ctx(t))
			return err
		}, "list agents"},
		{"ListAgents/read", failAll[*dynamodb.BatchGetItemInput](), func(t *testing.T, s *Store) error {
			agent(t)
			_, err := s.ListAgents(ctx(t))
			return err
		}, "list agents"},
		{"ListInbox/query", failAll[*dynamodb.QueryInput](), func(t *testing.T, s *Store) error {
			_, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
			return err
		}, "list inbox"},
		{"ListInbox/read", failAll[*dynamodb.BatchGetItemInput](), func(t *testing.T, s *Store) error {
			addr, _ := inbox(t)
			_, _, err := s.ListInbox(ctx(t), addr, 10, "")
			return err
		}, "read messages"},
		{"AckInbox", failAll[*dynamodb.UpdateItemInput](), func(t *testing.T, s *Store) error {
			addr, id := inbox(t)
			return s.AckInbox(ctx(t), addr, id)
		}, "ack"},
		{"DeliverToInbox", failAll[*dynamodb.UpdateItemInput](), func(t *testing.T, s *Store) error {
			a := newAcceptance("alice@a.example", "bob@b.example")
			_, err := good.Accept(ctx(t), a)
			require.NoError(t, err)
			return s.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, status("bob@b.example")[0])
		}, "deliver"},
		{"UpdateStatuses/read message", awstest.FailCalls(1, getOf(pfxMessage), errInjected), func(t *testing.T, s *Store) error {
			a := newAcceptance("alice@a.example", "bob@b.example")
			_, err := good.Accept(ctx(t), a)
			require.NoError(t, err)
			// A recipient without an item: its status needs the message.
			return s.UpdateStatuses(ctx(t), a.Message.ID, status("zed@z.example"))
		}, "read message"},
		{"UpdateStatuses/create item", awstest.FailCalls(1, putOf(pfxMessage, pfxRecipient), errInjected), func(t *testing.T, s *Store) error {
			a := newAcceptance("alice@a.example", "bob@b.example")
			_, err := good.Accept(ctx(t), a)
			require.NoError(t, err)
			return s.UpdateStatuses(ctx(t), a.Message.ID, status("zed@z.example"))
		}, "create item"},
		{"GetStatuses/query", failAll[*dynamodb.QueryInput](), func(t *testing.T, s *Store) error {
			_, err := s.GetStatuses(ctx(t), "any")
			return err
		}, "get statuses"},
		{"GetStatuses/read recipients", failAll[*dynamodb.BatchGetItemInput](), func(t *testing.T, s *Store) error {
			a := newAcceptance("alice@a.example", "bob@b.example")
			_, err := good.Accept(ctx(t), a)
			require.NoError(t, err)
			_, err = s.GetStatuses(ctx(t), a.Message.ID)
			return err
		}, "read recipients"},
		{"ListMessages/index", failAll[*dynamodb.QueryInput](), func(t *testing.T, s *Store) error {
			_, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Sender: "alice@a.example"})
			return err
		}, "list messages"},
		{"ListMessages/head", awstest.FailCalls(1, func(in *dynamodb.QueryInput) bool { return in.IndexName == nil }, errInjected), func(t *testing.T, s *Store) error {
			sender := strings.ToLower(gatewaytest.NewID("lister")) + "@a.example"
			_, err := good.Accept(ctx(t), newAcceptance(sender, "bob@b.example"))
			require.NoError(t, err)
			_, _, err = s.ListMessages(ctx(t), gateway.MessageQuery{Sender: sender})
			return err
		}, "read message"},
		{"Allow/read", failAll[*dynamodb.GetItemInput](), func(t *testing.T, s *Store) error {
			_, _, err := s.Allow(ctx(t), gatewaytest.NewID("rl"), policy.Limit{Rate: 10, Per: time.Hour}, time.Now())
			return err
		}, "rate limit read"},
		{"Allow/write", failAll[*dynamodb.PutItemInput](), func(t *testing.T, s *Store) error {
			_, _, err := s.Allow(ctx(t), gatewaytest.NewID("rl"), policy.Limit{Rate: 10, Per: time.Hour}, time.Now())
			return err
		}, "rate limit write"},
		{"PutSchema", failAll[*dynamodb.PutItemInput](), func(t *testing.T, s *Store) error {
			return s.PutSchema(ctx(t), schema.Record{ID: "urn:x", Schema: []byte(`{}`), Version: 1})
		}, "put schema"},
		{"GetSchema", failAll[*dynamodb.GetItemInput](), func(t *testing.T, s *Store) error {
			_, err := s.GetSchema(ctx(t), "urn:x")
			return err
		}, "get schema"},
		{"ListSchemas", failAll[*dynamodb.QueryInput](), func(t *testing.T, s *Store) error {
			_, err := s.ListSchemas(ctx(t))
			return err
		}, "list schemas"},
		{"DeleteSchema", failAll[*dynamodb.DeleteItemInput](), func(t *testing.T, s *Store) error {
			return s.DeleteSchema(ctx(t), "urn:x")
		}, "delete schema"},
		{"CreateWorkflow", failAll[*dynamodb.PutItemInput](), func(t *testing.T, s *Store) error {
			return s.CreateWorkflow(ctx(t), gatewaytest.NewWorkflow(gatewaytest.NewID("wf")))
		}, "create workflow"},
		{"GetWorkflow", failAll[*dynamodb.GetItemInput](), func(t *testing.T, s *Store) error {
			_, err := s.GetWorkflow(ctx(t), "wf")
			return err
		}, "get workflow"},
		{"UpdateWorkflow/write", failAll[*dynamodb.PutItemInput](), func(t *testing.T, s *Store) error {
			st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
			require.NoError(t, good.CreateWorkflow(ctx(t), st))
			next := st
			next.Version++
			return s.UpdateWorkflow(ctx(t), next, st.Version)
		}, "update workflow"},
		{"UpdateWorkflow/read after conflict", failAll[*dynamodb.GetItemInput](), func(t *testing.T, s *Store) error {
			st := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
			require.NoError(t, good.CreateWorkflow(ctx(t), st))
			next := st
			next.Version += 5
			return s.UpdateWorkflow(ctx(t), next, st.Version+3)
		}, "read version after a failed condition"},
		{"Accept/claim", awstest.FailCalls(1, putOf(pfxIdem, ""), errInjected), func(t *testing.T, s *Store) error {
			_, err := s.Accept(ctx(t), newAcceptance("alice@a.example", "bob@b.example"))
			return err
		}, "claim idempotency key"},
		{"Accept/message", awstest.FailCalls(1, putOf(pfxMessage, skMessage), errInjected), func(t *testing.T, s *Store) error {
			_, err := s.Accept(ctx(t), newAcceptance("alice@a.example", "bob@b.example"))
			return err
		}, "write message"},
		{"Accept/recipients", awstest.FailCalls(1, putOf(pfxTo, ""), errInjected), func(t *testing.T, s *Store) error {
			_, err := s.Accept(ctx(t), newAcceptance("alice@a.example", "bob@b.example"))
			return err
		}, "write recipient bob@b.example"},
		{"Accept/workflow transaction", failAll[*dynamodb.TransactWriteItemsInput](), func(t *testing.T, s *Store) error {
			a := newAcceptance("alice@a.example", "bob@b.example")
			wf := gatewaytest.NewWorkflow(a.Message.ID)
			a.Workflow = &wf
			_, err := s.Accept(ctx(t), a)
			return err
		}, "write transaction"},
		{"Accept/release the key of a taken id", failAll[*dynamodb.DeleteItemInput](), func(t *testing.T, s *Store) error {
			first := newAcceptance("alice@a.example", "bob@b.example")
			_, err := good.Accept(ctx(t), first)
			require.NoError(t, err)
			again := gatewaytest.NewAcceptance(first.Message.ID, "carol@c.example", []string{"dave@d.example"}, gatewaytest.Now())
			_, err = s.Accept(ctx(t), again)
			return err
		}, "release the key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := e.faultyStore(t, faults{fail: tc.fail})
			err := tc.run(t, s)
			require.ErrorIs(t, err, errInjected)
			assert.ErrorContains(t, err, "dynamo: ")
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
