package dynamo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

func testKeyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// TestReplaceAgentKeyAfterConcurrentWrite: another write lands between
// ReplaceAgentKey's read and its transaction. The transaction's condition
// catches it: a deleted agent is not brought back, a re-registered one
// keeps its own key, and the key that lost the race authenticates nobody.
func TestReplaceAgentKeyAfterConcurrentWrite(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name      string
		interfere func(t *testing.T, s *Store, a *gateway.Agent)
		want      error
	}{
		{"deleted", func(t *testing.T, s *Store, a *gateway.Agent) {
			require.NoError(t, s.DeleteAgent(ctx(t), a.Address))
		}, gateway.ErrNotFound},
		{"re-registered", func(t *testing.T, s *Store, a *gateway.Agent) {
			b := *a
			b.APIKeyHash = testKeyHash("registered again " + a.Address)
			b.WebhookURL = "https://agents.example/new"
			require.NoError(t, s.PutAgent(ctx(t), &b))
		}, gateway.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.store(t)
			a := &gateway.Agent{
				Address: tc.name + "-" + time.Now().Format("150405.000000") + "@a.example", DeliveryMode: gateway.ModePush,
				WebhookURL: "https://agents.example/old", WebhookSecret: "whsec_x", APIKeyHash: testKeyHash("first " + tc.name),
				Headers: map[string]string{"X-Tenant": "t"}, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
			}
			require.NoError(t, s.PutAgent(ctx(t), a))
			transact := s.db.TransactWriteItems
			once := false
			s.db.TransactWriteItems = func(c context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
				if !once {
					once = true
					tc.interfere(t, e.store(t), a)
				}
				return transact(c, in, o...)
			}
			newHash := testKeyHash("rotated " + tc.name)
			_, err := s.ReplaceAgentKey(ctx(t), a.Address, a.APIKeyHash, newHash)
			require.ErrorIs(t, err, tc.want)
			require.True(t, once, "the interfering write ran")

			_, err = s.AgentByKeyHash(ctx(t), newHash)
			assert.ErrorIs(t, err, gateway.ErrNotFound, "the losing key authenticates nobody")
			_, err = s.AgentByKeyHash(ctx(t), a.APIKeyHash)
			assert.ErrorIs(t, err, gateway.ErrNotFound, "the replaced key is gone either way")
			got, err := s.GetAgent(ctx(t), a.Address)
			if errors.Is(tc.want, gateway.ErrNotFound) {
				assert.ErrorIs(t, err, gateway.ErrNotFound, "not brought back")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "https://agents.example/new", got.WebhookURL)
			assert.Equal(t, testKeyHash("registered again "+a.Address), got.APIKeyHash)
			byKey, err := s.AgentByKeyHash(ctx(t), got.APIKeyHash)
			require.NoError(t, err)
			assert.Equal(t, got.Address, byKey.Address)
		})
	}
}

// TestAgentHeadersItem: the headers are one map attribute, on the agent
// item and on its key-hash copy; an agent without headers has none.
func TestAgentHeadersItem(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	with := &gateway.Agent{Address: "hdr@a.example", DeliveryMode: gateway.ModePush, WebhookURL: "https://agents.example/h",
		APIKeyHash: testKeyHash("hdr"), Headers: map[string]string{"Authorization": "Bearer t", "X-Empty": ""}, CreatedAt: time.Now().UTC()}
	without := &gateway.Agent{Address: "nohdr@a.example", DeliveryMode: gateway.ModePull, APIKeyHash: testKeyHash("nohdr"), CreatedAt: time.Now().UTC()}
	require.NoError(t, s.PutAgent(ctx(t), with))
	require.NoError(t, s.PutAgent(ctx(t), without))
	for _, k := range []item{agentKey(with.Address), apiKeyKey(with.APIKeyHash)} {
		it := e.rawItem(t, k)
		require.NotNil(t, it)
		assert.Equal(t, with.Headers, getHeaders(it))
	}
	for _, k := range []item{agentKey(without.Address), apiKeyKey(without.APIKeyHash)} {
		it := e.rawItem(t, k)
		require.NotNil(t, it)
		assert.NotContains(t, it, agHeaders)
	}
	list, err := s.ListAgents(ctx(t))
	require.NoError(t, err)
	for _, a := range list {
		switch a.Address {
		case with.Address:
			assert.Equal(t, with.Headers, a.Headers)
		case without.Address:
			assert.Nil(t, a.Headers)
		}
	}
}

// TestAgentKeyOwnedByAnotherAgentIsLeftAlone: when two agents registered
// the same key, the key-hash item is the later one's; replacing or
// deleting the earlier agent's key must not take it from the other.
func TestAgentKeyOwnedByAnotherAgentIsLeftAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, s *Store, first *gateway.Agent)
	}{
		{"replace", func(t *testing.T, s *Store, first *gateway.Agent) {
			got, err := s.ReplaceAgentKey(ctx(t), first.Address, first.APIKeyHash, testKeyHash("fresh "+first.Address))
			require.NoError(t, err)
			assert.Equal(t, testKeyHash("fresh "+first.Address), got.APIKeyHash)
			byKey, err := s.AgentByKeyHash(ctx(t), got.APIKeyHash)
			require.NoError(t, err)
			assert.Equal(t, first.Address, byKey.Address)
		}},
		{"delete", func(t *testing.T, s *Store, first *gateway.Agent) {
			require.NoError(t, s.DeleteAgent(ctx(t), first.Address))
			_, err := s.GetAgent(ctx(t), first.Address)
			assert.ErrorIs(t, err, gateway.ErrNotFound)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.store(t)
			first, second := newAgent("first"), newAgent("second")
			second.APIKeyHash = first.APIKeyHash
			require.NoError(t, s.PutAgent(ctx(t), first))
			require.NoError(t, s.PutAgent(ctx(t), second))

			tc.act(t, s, first)

			byKey, err := s.AgentByKeyHash(ctx(t), second.APIKeyHash)
			require.NoError(t, err)
			assert.Equal(t, second.Address, byKey.Address, "the shared key still authenticates the agent that owns it")
		})
	}
}

// TestReplaceAgentKeyToAndFromNone: an agent without a key can be given
// one, and a key can be removed.
func TestReplaceAgentKeyToAndFromNone(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAgent("keyless")
	a.APIKeyHash = ""
	require.NoError(t, s.PutAgent(ctx(t), a))

	k := testKeyHash("given " + a.Address)
	got, err := s.ReplaceAgentKey(ctx(t), a.Address, "", k)
	require.NoError(t, err)
	assert.Equal(t, k, got.APIKeyHash)
	byKey, err := s.AgentByKeyHash(ctx(t), k)
	require.NoError(t, err)
	assert.Equal(t, a.Address, byKey.Address)

	got, err = s.ReplaceAgentKey(ctx(t), a.Address, k, "")
	require.NoError(t, err)
	assert.Empty(t, got.APIKeyHash)
	_, err = s.AgentByKeyHash(ctx(t), k)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "the removed key authenticates nobody")
	stored, err := s.GetAgent(ctx(t), a.Address)
	require.NoError(t, err)
	assert.Empty(t, stored.APIKeyHash)
	assert.NotContains(t, e.rawItem(t, agentKey(a.Address)), agKeyHash)

	_, err = s.ReplaceAgentKey(ctx(t), a.Address, k, "other")
	assert.ErrorIs(t, err, gateway.ErrConflict, "the old key must be the current one")
}

// TestPutAgentOverAnOlderItem: an agent item written without a key hash
// or a creation time (by an older version) is replaced all the same, on
// the condition that it is still without them.
func TestPutAgentOverAnOlderItem(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	for _, tc := range []struct {
		name    string
		created bool
	}{{"no key", true}, {"no key, no creation time", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent("old")
			old := agentAttrs(agentKey(a.Address), &gateway.Agent{Address: a.Address, DeliveryMode: gateway.ModePull, CreatedAt: a.CreatedAt})
			old[aG1P], old[aG1S] = str(pkAgents), str(a.Address)
			if !tc.created {
				delete(old, agCreated)
			}
			e.putRaw(t, old)

			require.NoError(t, s.PutAgent(ctx(t), a))
			got, err := s.GetAgent(ctx(t), a.Address)
			require.NoError(t, err)
			assert.Equal(t, a.APIKeyHash, got.APIKeyHash)
			if tc.created {
				assert.True(t, a.CreatedAt.Equal(got.CreatedAt), "the stored creation time is kept")
			} else {
				assert.True(t, got.CreatedAt.IsZero(), "none to keep")
			}
		})
	}
}

// TestAgentWritesGiveUpOnEndlessChanges: a read-then-transact loop whose
// transaction keeps finding the agent changed gives up after
// agentWriteAttempts rather than spinning.
func TestAgentWritesGiveUpOnEndlessChanges(t *testing.T) {
	e := newEnv(t)
	good := e.store(t)
	for _, tc := range []struct {
		name string
		call func(t *testing.T, s *Store, a *gateway.Agent) error
	}{
		{"PutAgent", func(t *testing.T, s *Store, a *gateway.Agent) error { return s.PutAgent(ctx(t), a) }},
		{"ReplaceAgentKey", func(t *testing.T, s *Store, a *gateway.Agent) error {
			_, err := s.ReplaceAgentKey(ctx(t), a.Address, a.APIKeyHash, "new")
			return err
		}},
		{"DeleteAgent", func(t *testing.T, s *Store, a *gateway.Agent) error { return s.DeleteAgent(ctx(t), a.Address) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent("busy")
			require.NoError(t, good.PutAgent(ctx(t), a))
			calls := &awstest.Counted[*dynamodb.TransactWriteItemsInput]{Rule: awstest.FailCalls[*dynamodb.TransactWriteItemsInput](1, nil, transactionCancelled("ConditionalCheckFailed", "None", "None"))}
			s := e.faultyStore(t, faults{fail: calls.Fail})
			err := tc.call(t, s, a)
			require.ErrorContains(t, err, "changed concurrently 5 times")
			assert.Equal(t, int64(agentWriteAttempts), calls.Calls())
			got, err := good.GetAgent(ctx(t), a.Address)
			require.NoError(t, err)
			assert.Equal(t, a.APIKeyHash, got.APIKeyHash, "the agent is as it was")
		})
	}
}

func TestAgentArgumentsRefused(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	assert.ErrorContains(t, s.PutAgent(ctx(t), nil), "no address")
	assert.ErrorContains(t, s.PutAgent(ctx(t), &gateway.Agent{DeliveryMode: gateway.ModePull}), "no address")
	_, err := s.AgentByKeyHash(ctx(t), "")
	assert.ErrorIs(t, err, gateway.ErrNotFound, "no key authenticates nobody")
}
