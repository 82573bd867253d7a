package dynamo

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// TestAcceptRefuses: an acceptance the store cannot keep as given is
// refused before anything of it is written.
func TestAcceptRefuses(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	cases := []struct {
		name string
		make func() *gateway.Acceptance
		err  string
	}{
		{"no acceptance", func() *gateway.Acceptance { return nil }, "message without id"},
		{"no message id", func() *gateway.Acceptance {
			a := newAcceptance("alice@a.example", "bob@b.example")
			a.Message.ID = ""
			return a
		}, "message without id"},
		{"inbox recipient without a status", func() *gateway.Acceptance {
			a := newAcceptance("alice@a.example", "bob@b.example")
			a.Inbox = []string{"zed@z.example"}
			return a
		}, "inbox recipient zed@z.example has no status"},
		{"workflow of another message", func() *gateway.Acceptance {
			a := newAcceptance("alice@a.example", "bob@b.example")
			wf := gatewaytest.NewWorkflow(gatewaytest.NewID("wf"))
			a.Workflow = &wf
			return a
		}, "accepted with message"},
		{"workflow state that does not encode", func() *gateway.Acceptance {
			a := newAcceptance("alice@a.example", "bob@b.example")
			wf := gatewaytest.NewWorkflow(a.Message.ID)
			wf.Driver = json.RawMessage(`{"broken":`)
			a.Workflow = &wf
			return a
		}, "encode state"},
		{"tasks that do not encode", func() *gateway.Acceptance {
			a := newAcceptance("alice@a.example", "bob@b.example")
			a.Tasks[0].CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			return a
		}, "encode tasks"},
		{"message item too large even without its body", func() *gateway.Acceptance {
			var rcpts []string
			for i := range 1800 {
				rcpts = append(rcpts, fmt.Sprintf("r%04d-%s@b.example", i, strings.Repeat("x", 220)))
			}
			a := newAcceptance("alice@a.example", rcpts...)
			a.Message.Raw = []byte(`{"payload":"small"}`)
			return a
		}, "without its body, over DynamoDB's item limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.make()
			_, err := s.Accept(ctx(t), a)
			require.ErrorContains(t, err, tc.err)
			assert.ErrorContains(t, err, "dynamo: accept")
			if a == nil || a.Message.ID == "" {
				return
			}
			assert.Empty(t, e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key)), "the key is not claimed")
			assert.Empty(t, e.rawItem(t, messageKey(a.Message.ID)), "the message is not stored")
		})
	}
}

// TestAcceptFillsIn: an acceptance without accepted_at is stamped with
// the store's clock, a recipient listed twice (in any case) or without an
// address gets no second status, and the sender verification is kept.
func TestAcceptFillsIn(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example", "carol@c.example")
	a.Message.AcceptedAt = time.Time{}
	a.Statuses = append(a.Statuses,
		gateway.RecipientStatus{Address: "BOB@B.example", Status: gateway.StateFailed},
		gateway.RecipientStatus{Address: "", Status: gateway.StateFailed})
	a.Message.Verification = &gateway.SenderVerification{Result: gateway.VerifiedSignature, Method: "domain-signature", Domain: "a.example", KeyID: "k1", Algorithm: "ed25519"}
	before := e.clock.Now()
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)
	after := e.clock.Now()

	m, err := s.GetMessage(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assert.False(t, m.AcceptedAt.Before(before) || m.AcceptedAt.After(after), "accepted at %v, not within [%v, %v]", m.AcceptedAt, before, after)
	assert.Equal(t, a.Message.Verification, m.Verification)

	st, err := s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, "bob@b.example", st[0].Address)
	assert.Equal(t, gateway.StateQueued, st[0].Status, "the first status of an address is the one kept")
	assert.Equal(t, "carol@c.example", st[1].Address)
}

// TestAcceptOfTasksWithoutStatuses: with no recipient item to show that
// its tasks are queued, Accept clears the record's marker itself, so a
// retry is a plain duplicate that queues nothing again.
func TestAcceptOfTasksWithoutStatuses(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	a.Statuses = nil
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)
	assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))

	rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))
	assert.NotContains(t, rec, aPending, "the owner's deadline is cleared")
	assert.NotContains(t, rec, aTasks, "and the tasks with it")

	e.clock.Advance(DefaultEnqueueGrace + time.Second)
	dup, err := s.Accept(ctx(t), retryOf(a))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, a.Message.ID, dup.MessageID)
	assert.Empty(t, e.receiveAll(t, 300*time.Millisecond), "nothing is queued again")
}

// TestAcceptWhenAFailedConditionComesWithoutTheItem: DynamoDB answers a
// failed condition without the item in the way when it was not asked for
// it (or the SDK's retry got the answer to its own earlier attempt). Accept
// then reads the item; an item that is gone by then is tried again, a
// bounded number of times.
func TestAcceptWhenAFailedConditionComesWithoutTheItem(t *testing.T) {
	e := newEnv(t)
	good := e.store(t)
	record := func(in *dynamodb.PutItemInput) bool { return putOf(pfxIdem, "")(in) }
	message := func(in *dynamodb.PutItemInput) bool { return putOf(pfxMessage, skMessage)(in) }
	cases := []struct {
		name  string
		fail  func(any) error
		prior bool // the acceptance is a retry of one stored before
		dup   bool
		err   string
	}{
		{"record in the way, read back", awstest.FailFirst(1, record, conditionFailed()), true, true, ""},
		{"record in the way gone every time", awstest.FailCalls(1, record, conditionFailed()), false, false, "the idempotency record kept changing"},
		{"record in the way unreadable", awstest.AnyOf(awstest.FailCalls(1, record, conditionFailed()), awstest.FailCalls(1, getOf(pfxIdem), errInjected)), false, false, "read idempotency record"},
		{"message in the way gone every time", awstest.FailCalls(1, message, conditionFailed()), false, false, "the item in the way kept disappearing"},
		{"message in the way unreadable", awstest.AnyOf(awstest.FailCalls(1, message, conditionFailed()), awstest.FailCalls(1, getOf(pfxMessage), errInjected)), false, false, "read the item in the way"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAcceptance("alice@a.example", "bob@b.example")
			if tc.prior {
				_, err := good.Accept(ctx(t), a)
				require.NoError(t, err)
				a = retryOf(a)
			}
			s := e.faultyStore(t, faults{fail: tc.fail})
			dup, err := s.Accept(ctx(t), a)
			if tc.dup {
				require.ErrorIs(t, err, gateway.ErrDuplicate)
				assert.NotEqual(t, a.Message.ID, dup.MessageID, "the first acceptance's")
				return
			}
			require.ErrorContains(t, err, tc.err)
			assert.NotErrorIs(t, err, gateway.ErrDuplicate)
			assert.Empty(t, e.rawItem(t, messageKey(a.Message.ID)), "the message is not stored")
			if rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key)); rec != nil {
				// A claimed key is handed to the next retry at once.
				pend, _ := getNum(rec, aPending)
				assert.LessOrEqual(t, pend, e.clock.Now().UnixMilli(), "the owner's deadline is expired")
			}
		})
	}
}

// TestAcceptWithoutKeyWhenTheMessageWriteFails: there is no record to
// hand over, and the failure is the answer.
func TestAcceptWithoutKeyWhenTheMessageWriteFails(t *testing.T) {
	e := newEnv(t)
	s := e.faultyStore(t, faults{fail: awstest.FailCalls(1, putOf(pfxMessage, skMessage), errInjected)})
	a := newAcceptance("alice@a.example", "bob@b.example")
	a.Idempotency = gateway.IdempotencyRecord{}
	_, err := s.Accept(ctx(t), a)
	require.ErrorIs(t, err, errInjected)
	assert.ErrorContains(t, err, "write message")
	assert.Empty(t, e.rawItem(t, messageKey(a.Message.ID)))
}

// withWorkflow makes a a coordination message: its workflow is stored with
// it, in one transaction.
func withWorkflow(a *gateway.Acceptance) *gateway.Acceptance {
	wf := gatewaytest.NewWorkflow(a.Message.ID)
	a.Workflow = &wf
	return a
}

// TestWorkflowAcceptanceConflicts: the transaction that stores a workflow
// with its message tells apart, from its cancellation reasons, a key that
// is taken (a duplicate), a message id that is taken, and anything else.
func TestWorkflowAcceptanceConflicts(t *testing.T) {
	e := newEnv(t)
	good := e.store(t)
	type tx = *dynamodb.TransactWriteItemsInput
	// stored is a workflow acceptance stored before; its retry is the one
	// the case accepts.
	stored := func(t *testing.T) (*gateway.Acceptance, *gateway.Acceptance) {
		t.Helper()
		a := withWorkflow(newAcceptance("alice@a.example", "bob@b.example"))
		_, err := good.Accept(ctx(t), a)
		require.NoError(t, err)
		return a, withWorkflow(retryOf(a))
	}
	// idTaken is an acceptance of an id another sender's message has.
	idTaken := func(t *testing.T) (*gateway.Acceptance, *gateway.Acceptance) {
		t.Helper()
		a := newAcceptance("alice@a.example", "bob@b.example")
		_, err := good.Accept(ctx(t), a)
		require.NoError(t, err)
		return a, withWorkflow(gatewaytest.NewAcceptance(a.Message.ID, "carol@c.example", []string{"dave@d.example"}, gatewaytest.Now()))
	}
	fresh := func(t *testing.T) (*gateway.Acceptance, *gateway.Acceptance) {
		return nil, withWorkflow(newAcceptance("alice@a.example", "bob@b.example"))
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) (first, a *gateway.Acceptance)
		fail  func(any) error
		want  error
		err   string
	}{
		{"retry of a stored one", stored, nil, gateway.ErrDuplicate, ""},
		{"retry, told without the record", stored, awstest.FailFirst[tx](1, nil, transactionCancelled("ConditionalCheckFailed", "None", "None")), gateway.ErrDuplicate, ""},
		{"record gone every time", fresh, awstest.FailCalls[tx](1, nil, transactionCancelled("ConditionalCheckFailed", "None", "None")), nil, "the idempotency record kept changing"},
		{"record unreadable", fresh, awstest.AnyOf(awstest.FailCalls[tx](1, nil, transactionCancelled("ConditionalCheckFailed", "None", "None")), awstest.FailCalls(1, getOf(pfxIdem), errInjected)), errInjected, "read idempotency record"},
		{"message id taken", idTaken, nil, gateway.ErrMessageIDTaken, ""},
		{"message id taken, told without the message", idTaken, awstest.FailFirst[tx](1, nil, transactionCancelled("None", "ConditionalCheckFailed", "None")), gateway.ErrMessageIDTaken, ""},
		{"message in the way unreadable", idTaken, awstest.AnyOf(awstest.FailFirst[tx](1, nil, transactionCancelled("None", "ConditionalCheckFailed", "None")), awstest.FailCalls(1, getOf(pfxMessage), errInjected)), errInjected, "read stored message"},
		{"another reason", fresh, awstest.FailFirst[tx](1, nil, transactionCancelled("None", "None", "ConditionalCheckFailed")), nil, "transaction cancelled: None, None, ConditionalCheckFailed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first, a := tc.setup(t)
			s := e.faultyStore(t, faults{fail: tc.fail})
			dup, err := s.Accept(ctx(t), a)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			assert.ErrorContains(t, err, tc.err)
			if errors.Is(err, gateway.ErrDuplicate) {
				assert.Equal(t, first.Message.ID, dup.MessageID)
			} else {
				assert.Nil(t, dup)
			}
			if first == nil || first.Message.ID != a.Message.ID {
				_, err = good.GetWorkflow(ctx(t), a.Message.ID)
				assert.ErrorIs(t, err, gateway.ErrNotFound, "the workflow is not stored")
			}
		})
	}
}

// TestWorkflowRetryTakesOverADeadKey: a retry that carries a workflow
// takes over the key of an acceptance that died before storing its
// message, then stores its message and workflow on the condition that the
// key is still its own.
func TestWorkflowRetryTakesOverADeadKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(any) error
		err  string
	}{
		{"stored", nil, ""},
		// The transaction after the take-over finds the key taken again.
		{"key taken again", awstest.FailCalls[*dynamodb.TransactWriteItemsInput](2, nil, transactionCancelled("ConditionalCheckFailed", "None", "None")), "took the key over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			crashing := e.store(t)
			crashing.afterClaim = func() error { return errors.New("simulated crash") }
			a := newAcceptance("alice@a.example", "bob@b.example")
			_, err := crashing.Accept(ctx(t), a)
			require.ErrorContains(t, err, "simulated crash")

			e.clock.Advance(DefaultEnqueueGrace + time.Second)
			retry := withWorkflow(retryOf(a))
			_, err = e.faultyStore(t, faults{fail: tc.fail}).Accept(ctx(t), retry)
			s := e.store(t)
			_, wfErr := s.GetWorkflow(ctx(t), retry.Message.ID)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.ErrorIs(t, wfErr, gateway.ErrNotFound)
				return
			}
			require.NoError(t, err)
			assert.NoError(t, wfErr)
			rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))
			assert.Equal(t, retry.Message.ID, getStr(rec, aMsgID))
			_, err = s.GetMessage(ctx(t), a.Message.ID)
			assert.ErrorIs(t, err, gateway.ErrNotFound, "the dead acceptance's id is void")
		})
	}
}
