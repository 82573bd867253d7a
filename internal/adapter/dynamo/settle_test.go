package dynamo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// crashed runs an Accept of a that dies right after it claimed the key
// (afterClaim) or right after it stored the message item (afterCommit).
func crashed(t *testing.T, e *env, a *gateway.Acceptance, afterCommit bool) {
	t.Helper()
	s := e.store(t)
	crash := func() error { return errors.New("simulated crash") }
	if afterCommit {
		s.afterCommit = crash
	} else {
		s.afterClaim = crash
	}
	_, err := s.Accept(ctx(t), a)
	require.ErrorContains(t, err, "simulated crash")
}

func recordOf(a *gateway.Acceptance) item { return idemKey(a.Idempotency.Sender, a.Idempotency.Key) }

// TestOlderRecordsAreSettled: idempotency records and message items
// written by earlier versions (without a token, or without an owner's
// deadline) and records older than the retention are still answered as
// duplicates, and whatever such an acceptance left unwritten is finished.
func TestOlderRecordsAreSettled(t *testing.T) {
	cases := []struct {
		name string
		// crashAfterCommit: the first Accept stored its message.
		crashAfterCommit bool
		age              func(t *testing.T, e *env, a *gateway.Acceptance)
		retention        time.Duration
		// tasks: the retry queues the first acceptance's tasks.
		tasks bool
	}{
		{"no token, no deadline, recipient items missing", true, func(t *testing.T, e *env, a *gateway.Acceptance) {
			e.mutate(t, recordOf(a), func(it item) { delete(it, aTok); delete(it, aPending) })
			e.mutate(t, messageKey(a.Message.ID), func(it item) { delete(it, aTok) })
		}, 0, false},
		{"no token, deadline passed, recipient items missing", true, func(t *testing.T, e *env, a *gateway.Acceptance) {
			e.mutate(t, recordOf(a), func(it item) { delete(it, aTok); it[aPending] = num(1) })
			e.mutate(t, messageKey(a.Message.ID), func(it item) { delete(it, aTok) })
		}, 0, true},
		{"no token, message gone", false, func(t *testing.T, e *env, a *gateway.Acceptance) {
			e.mutate(t, recordOf(a), func(it item) { delete(it, aTok) })
		}, 0, false},
		{"older than the retention", false, func(t *testing.T, e *env, a *gateway.Acceptance) {
			e.mutate(t, recordOf(a), func(it item) { it[aCreated] = timeAttr(e.clock.Now().Add(-72 * time.Hour)) })
		}, 48 * time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := toInbox(newAcceptance("alice@a.example", "bob@b.example", "carol@c.example"))
			crashed(t, e, a, tc.crashAfterCommit)
			tc.age(t, e, a)

			s := e.store(t, func(c *Config) { c.Retention = tc.retention })
			retry := retryOf(a)
			dup, err := s.Accept(ctx(t), retry)
			require.ErrorIs(t, err, gateway.ErrDuplicate)
			assert.Equal(t, a.Message.ID, dup.MessageID)
			assert.Empty(t, e.rawItem(t, messageKey(retry.Message.ID)), "the retry stores nothing of its own")
			if tc.crashAfterCommit {
				assert.Equal(t, len(a.Message.Recipients), countRecipientItems(t, e, a.Message.ID), "the missing recipient items are written")
				entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
				require.NoError(t, err)
				require.Len(t, entries, 1, "with the inbox entry")
			}
			if tc.tasks {
				assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
				rec := e.rawItem(t, recordOf(a))
				assert.NotContains(t, rec, aPending, "no recipient item can tell a tokenless record's tasks are queued: the marker is cleared")
				assert.NotContains(t, rec, aTasks)
			} else {
				assert.Empty(t, e.receiveAll(t, 300*time.Millisecond), "nothing is queued")
			}
		})
	}
}

// TestSettlingADuplicateFails: a retry that must wait for, finish or take
// over an earlier acceptance answers an error, never "duplicate" nor
// "accepted", when a step of that fails; where it can, it leaves the key to
// the next retry.
func TestSettlingADuplicateFails(t *testing.T) {
	e := newEnv(t)
	// dead: the first Accept died and its deadline has passed.
	dead := func(t *testing.T, a *gateway.Acceptance) {
		e.mutate(t, recordOf(a), func(it item) { it[aPending] = num(1) })
	}
	live := func(*testing.T, *gateway.Acceptance) {}
	record := func(in *dynamodb.UpdateItemInput) bool { return updateOf(pfxIdem)(in) }
	cases := []struct {
		name             string
		crashAfterCommit bool
		prepare          func(t *testing.T, a *gateway.Acceptance)
		fail             func(any) error
		err              string
		injected         bool
	}{
		{"record unreadable after a wait", false, live, awstest.FailCalls(1, getOf(pfxIdem), errInjected), "read idempotency record", true},
		{"message unreadable", false, live, failAll[*dynamodb.QueryInput](), "read message", true},
		{"record corrupt", false, func(t *testing.T, a *gateway.Acceptance) {
			e.mutate(t, recordOf(a), func(it item) { it[aCreated] = str("yesterday") })
		}, nil, "idempotency record: attribute cat", false},
		{"marker claim fails", true, dead, awstest.FailCalls(1, record, errInjected), "claim enqueue marker", true},
		{"stored tasks corrupt", true, func(t *testing.T, a *gateway.Acceptance) {
			dead(t, a)
			e.mutate(t, recordOf(a), func(it item) { it[aTasks] = str("[{") })
		}, nil, "stored tasks", false},
		{"message's tasks corrupt", true, func(t *testing.T, a *gateway.Acceptance) {
			dead(t, a)
			e.mutate(t, messageKey(a.Message.ID), func(it item) { it[aMsgTasks] = str("[{") })
		}, nil, "stored tasks", false},
		{"message corrupt", true, func(t *testing.T, a *gateway.Acceptance) {
			dead(t, a)
			e.mutate(t, messageKey(a.Message.ID), func(it item) { it[aAt] = str("yesterday") })
		}, nil, "attribute at", false},
		{"older message's specs corrupt", true, func(t *testing.T, a *gateway.Acceptance) {
			e.mutate(t, recordOf(a), func(it item) { delete(it, aTok); delete(it, aPending) })
			e.mutate(t, messageKey(a.Message.ID), func(it item) {
				delete(it, aTok)
				it[aSpecs] = &types.AttributeValueMemberL{Value: []types.AttributeValue{str("not a map")}}
			})
		}, nil, "finish the recipients", false},
		{"void fails", false, dead, awstest.FailCalls(1, updateOf(pfxMessage), errInjected), "void message", true},
		// The first put of the record is the claim, which finds the key held.
		{"record replace fails", false, dead, awstest.FailCalls(2, putOf(pfxIdem, ""), errInjected), "replace idempotency record", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAcceptance("alice@a.example", "bob@b.example")
			crashed(t, e, a, tc.crashAfterCommit)
			tc.prepare(t, a)
			s := e.faultyStore(t, faults{fail: tc.fail})
			dup, err := s.Accept(ctx(t), retryOf(a))
			require.ErrorContains(t, err, tc.err)
			assert.Nil(t, dup)
			assert.NotErrorIs(t, err, gateway.ErrDuplicate)
			if tc.injected {
				assert.ErrorIs(t, err, errInjected)
			}
			rec := e.rawItem(t, recordOf(a))
			assert.Equal(t, a.Message.ID, getStr(rec, aMsgID), "the key is still the first acceptance's")
		})
	}
}

// TestTakeOverRaces: a retry that takes over from a dead owner meets what
// others do meanwhile. Another retry claiming the owner's marker first
// makes it wait for that one; the owner's own message landing just before
// the void makes it finish the owner's acceptance instead; the owner
// releasing its key makes it start over as a new acceptance.
func TestTakeOverRaces(t *testing.T) {
	t.Run("marker claimed by another retry", func(t *testing.T) {
		e := newEnv(t)
		a := newAcceptance("alice@a.example", "bob@b.example")
		crashed(t, e, a, true)
		e.mutate(t, recordOf(a), func(it item) { it[aPending] = num(1) })
		s := e.faultyStore(t, faults{fail: awstest.FailFirst(1, updateOf(pfxIdem), conditionFailed())})
		dup, err := s.Accept(ctx(t), retryOf(a))
		require.ErrorIs(t, err, gateway.ErrDuplicate)
		assert.Equal(t, a.Message.ID, dup.MessageID)
		assert.Equal(t, len(a.Message.Recipients), countRecipientItems(t, e, a.Message.ID))
		assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
	})

	t.Run("owner's message lands before the void", func(t *testing.T) {
		e := newEnv(t)
		slow := e.store(t)
		a := newAcceptance("alice@a.example", "bob@b.example")
		release, first := pausedAccept(t, slow, &slow.afterClaim, a)
		e.mutate(t, recordOf(a), func(it item) { it[aPending] = num(1) })
		var ownerErr error
		s := e.faultyStore(t, faults{fail: func(in any) error {
			if u, ok := in.(*dynamodb.UpdateItemInput); ok && updateOf(pfxMessage)(u) && release != nil {
				// The owner wakes up and stores its message first.
				close(release)
				release = nil
				ownerErr = <-first
			}
			return nil
		}})
		dup, err := s.Accept(ctx(t), retryOf(a))
		require.NoError(t, ownerErr, "the owner's acceptance stands")
		require.ErrorIs(t, err, gateway.ErrDuplicate)
		assert.Equal(t, a.Message.ID, dup.MessageID)
		m, err := s.GetMessage(ctx(t), a.Message.ID)
		require.NoError(t, err, "not voided")
		assert.Equal(t, a.Message.ID, m.ID)
	})

	t.Run("owner releases its key", func(t *testing.T) {
		e := newEnv(t)
		a := newAcceptance("alice@a.example", "bob@b.example")
		crashed(t, e, a, false)
		deleted := false
		s := e.faultyStore(t, faults{fail: func(in any) error {
			if _, ok := in.(*dynamodb.QueryInput); ok && !deleted {
				deleted = true
				_, err := e.client.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(e.names.Table), Key: recordOf(a)})
				require.NoError(t, err)
			}
			return nil
		}})
		retry := retryOf(a)
		_, err := s.Accept(ctx(t), retry)
		require.NoError(t, err, "accepted as a new acceptance")
		assert.Equal(t, retry.Message.ID, getStr(e.rawItem(t, recordOf(a)), aMsgID))
		_, err = s.GetMessage(ctx(t), retry.Message.ID)
		assert.NoError(t, err)
	})
}
