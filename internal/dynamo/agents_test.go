package dynamo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/gateway"
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
			if tc.want == gateway.ErrNotFound {
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
