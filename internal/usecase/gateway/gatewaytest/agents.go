package gatewaytest

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// RunAgentStore checks a gateway.AgentStore.
func RunAgentStore(t *testing.T, f Factory) {
	t.Run("NotFound", func(t *testing.T) { testAgentNotFound(t, f(t)) })
	t.Run("PutGetList", func(t *testing.T) { testAgentPutGet(t, f(t)) })
	t.Run("AddressCaseInsensitive", func(t *testing.T) { testAgentCase(t, f(t)) })
	t.Run("ReplaceMovesKeyHash", func(t *testing.T) { testAgentReplaceKey(t, f(t)) })
	t.Run("DeleteRemovesKeyHash", func(t *testing.T) { testAgentDelete(t, f(t)) })
	t.Run("ReplaceAgentKey", func(t *testing.T) { testAgentReplaceAgentKey(t, f(t)) })
	t.Run("SurvivesReopen", func(t *testing.T) { testAgentsReopen(t, f(t)) })
	t.Run("ReplaceKeepsCreatedAt", func(t *testing.T) { testAgentReplaceKeepsCreatedAt(t, f(t)) })
	t.Run("KeylessAgent", func(t *testing.T) { testKeylessAgent(t, f(t)) })
}

// testKeylessAgent: an agent whose key was removed (ReplaceAgentKey to "")
// is still an agent: it can be registered again and deleted.
func testKeylessAgent(t *testing.T, b Backend) {
	a := newAgent("keyless@a.example", gateway.ModePull)
	require.NoError(t, b.Agents.PutAgent(ctx(t), a))
	_, err := b.Agents.ReplaceAgentKey(ctx(t), a.Address, a.APIKeyHash, "")
	require.NoError(t, err)

	again := *a
	again.APIKeyHash = ""
	again.SupportedSchemas = []string{"agntcy:other.*"}
	require.NoError(t, b.Agents.PutAgent(ctx(t), &again), "registered again, still without a key")
	got, err := b.Agents.GetAgent(ctx(t), a.Address)
	require.NoError(t, err)
	assertAgent(t, &again, got)

	require.NoError(t, b.Agents.DeleteAgent(ctx(t), a.Address))
	_, err = b.Agents.GetAgent(ctx(t), a.Address)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	assert.ErrorIs(t, b.Agents.DeleteAgent(ctx(t), a.Address), gateway.ErrNotFound, "second delete")
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func newAgent(addr string, mode gateway.DeliveryMode) *gateway.Agent {
	a := &gateway.Agent{
		Address:          addr,
		DeliveryMode:     mode,
		SupportedSchemas: []string{"agntcy:commerce.*"},
		APIKeyHash:       keyHash("key of " + addr),
		CreatedAt:        Now(),
	}
	if mode == gateway.ModePush {
		a.WebhookURL = "https://agents.example/" + addr
		a.WebhookSecret = "whsec_" + addr
		a.Headers = map[string]string{"Authorization": "Bearer token of " + addr, "X-Tenant": "t-1"}
	}
	return a
}

func assertAgent(t *testing.T, want, got *gateway.Agent) {
	t.Helper()
	require.NotNil(t, got)
	assert.Equal(t, want.Address, got.Address)
	assert.Equal(t, want.DeliveryMode, got.DeliveryMode)
	assert.Equal(t, want.WebhookURL, got.WebhookURL)
	assert.Equal(t, want.WebhookSecret, got.WebhookSecret, "the store keeps the secret; hiding it is the API's job")
	assert.Equal(t, want.SupportedSchemas, got.SupportedSchemas)
	assert.Equal(t, want.APIKeyHash, got.APIKeyHash)
	assert.Equal(t, want.Headers, got.Headers, "custom webhook headers are kept")
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt), "created_at %v, want %v", got.CreatedAt, want.CreatedAt)
}

func testAgentNotFound(t *testing.T, b Backend) {
	_, err := b.Agents.GetAgent(ctx(t), "nobody@a.example")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = b.Agents.AgentByKeyHash(ctx(t), keyHash("unknown key"))
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	err = b.Agents.DeleteAgent(ctx(t), "nobody@a.example")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	list, err := b.Agents.ListAgents(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, list)
}

func testAgentPutGet(t *testing.T, b Backend) {
	push := newAgent("shop@a.example", gateway.ModePush)
	pull := newAgent("bot@a.example", gateway.ModePull)
	for _, a := range []*gateway.Agent{push, pull} {
		require.NoError(t, b.Agents.PutAgent(ctx(t), a))
	}
	for _, a := range []*gateway.Agent{push, pull} {
		got, err := b.Agents.GetAgent(ctx(t), a.Address)
		require.NoError(t, err)
		assertAgent(t, a, got)
		got, err = b.Agents.AgentByKeyHash(ctx(t), a.APIKeyHash)
		require.NoError(t, err)
		assertAgent(t, a, got)
	}
	list, err := b.Agents.ListAgents(ctx(t))
	require.NoError(t, err)
	var addrs []string
	for _, a := range list {
		addrs = append(addrs, a.Address)
	}
	assert.ElementsMatch(t, []string{push.Address, pull.Address}, addrs)
}

func testAgentCase(t *testing.T, b Backend) {
	a := newAgent("Shop@A.example", gateway.ModePull)
	require.NoError(t, b.Agents.PutAgent(ctx(t), a))
	got, err := b.Agents.GetAgent(ctx(t), "shop@a.example")
	require.NoError(t, err)
	assertAgent(t, a, got)

	// Putting the same address in another case replaces, not adds.
	again := newAgent("shop@a.example", gateway.ModePush)
	require.NoError(t, b.Agents.PutAgent(ctx(t), again))
	list, err := b.Agents.ListAgents(ctx(t))
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, gateway.ModePush, list[0].DeliveryMode)

	require.NoError(t, b.Agents.DeleteAgent(ctx(t), "SHOP@a.example"))
	_, err = b.Agents.GetAgent(ctx(t), "shop@a.example")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
}

func testAgentReplaceKey(t *testing.T, b Backend) {
	a := newAgent("shop@a.example", gateway.ModePull)
	require.NoError(t, b.Agents.PutAgent(ctx(t), a))
	oldHash := a.APIKeyHash

	rotated := *a
	rotated.APIKeyHash = keyHash("rotated key")
	rotated.DeliveryMode = gateway.ModePush
	rotated.WebhookURL = "https://agents.example/new"
	require.NoError(t, b.Agents.PutAgent(ctx(t), &rotated))

	_, err := b.Agents.AgentByKeyHash(ctx(t), oldHash)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "the old key no longer authenticates")
	got, err := b.Agents.AgentByKeyHash(ctx(t), rotated.APIKeyHash)
	require.NoError(t, err)
	assertAgent(t, &rotated, got)
	got, err = b.Agents.GetAgent(ctx(t), a.Address)
	require.NoError(t, err)
	assertAgent(t, &rotated, got)
}

func testAgentReplaceAgentKey(t *testing.T, b Backend) {
	a := newAgent("Shop@a.example", gateway.ModePush)
	other := newAgent("other@a.example", gateway.ModePull)
	require.NoError(t, b.Agents.PutAgent(ctx(t), a))
	require.NoError(t, b.Agents.PutAgent(ctx(t), other))
	oldHash := a.APIKeyHash
	newHash := keyHash("rotated key")

	got, err := b.Agents.ReplaceAgentKey(ctx(t), "shop@A.example", oldHash, newHash)
	require.NoError(t, err)
	want := *a
	want.APIKeyHash = newHash
	assertAgent(t, &want, got)

	_, err = b.Agents.AgentByKeyHash(ctx(t), oldHash)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "the old key no longer authenticates")
	got, err = b.Agents.AgentByKeyHash(ctx(t), newHash)
	require.NoError(t, err)
	assertAgent(t, &want, got)
	got, err = b.Agents.GetAgent(ctx(t), a.Address)
	require.NoError(t, err)
	assertAgent(t, &want, got)
	got, err = b.Agents.AgentByKeyHash(ctx(t), other.APIKeyHash)
	require.NoError(t, err)
	assertAgent(t, other, got)

	// A stale expectation changes nothing.
	_, err = b.Agents.ReplaceAgentKey(ctx(t), a.Address, oldHash, keyHash("third key"))
	assert.ErrorIs(t, err, gateway.ErrConflict)
	_, err = b.Agents.AgentByKeyHash(ctx(t), keyHash("third key"))
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	got, err = b.Agents.AgentByKeyHash(ctx(t), newHash)
	require.NoError(t, err)
	assertAgent(t, &want, got)

	// No agent, or no longer: never brought back to life.
	_, err = b.Agents.ReplaceAgentKey(ctx(t), "nobody@a.example", oldHash, keyHash("fourth key"))
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	require.NoError(t, b.Agents.DeleteAgent(ctx(t), a.Address))
	_, err = b.Agents.ReplaceAgentKey(ctx(t), a.Address, newHash, keyHash("fifth key"))
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = b.Agents.GetAgent(ctx(t), a.Address)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	for _, h := range []string{newHash, keyHash("fourth key"), keyHash("fifth key")} {
		_, err = b.Agents.AgentByKeyHash(ctx(t), h)
		assert.ErrorIs(t, err, gateway.ErrNotFound)
	}
	list, err := b.Agents.ListAgents(ctx(t))
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, other.Address, list[0].Address)
}

func testAgentDelete(t *testing.T, b Backend) {
	keep := newAgent("keep@a.example", gateway.ModePull)
	gone := newAgent("gone@a.example", gateway.ModePush)
	require.NoError(t, b.Agents.PutAgent(ctx(t), keep))
	require.NoError(t, b.Agents.PutAgent(ctx(t), gone))

	require.NoError(t, b.Agents.DeleteAgent(ctx(t), gone.Address))
	_, err := b.Agents.GetAgent(ctx(t), gone.Address)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = b.Agents.AgentByKeyHash(ctx(t), gone.APIKeyHash)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "a deleted agent's key no longer authenticates")
	assert.ErrorIs(t, b.Agents.DeleteAgent(ctx(t), gone.Address), gateway.ErrNotFound, "second delete")

	got, err := b.Agents.AgentByKeyHash(ctx(t), keep.APIKeyHash)
	require.NoError(t, err)
	assertAgent(t, keep, got)
	list, err := b.Agents.ListAgents(ctx(t))
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, keep.Address, list[0].Address)
}

func testAgentsReopen(t *testing.T, b Backend) {
	requireReopenable(t, b)
	a := newAgent("shop@a.example", gateway.ModePush)
	require.NoError(t, b.Agents.PutAgent(ctx(t), a))
	b = b.Reopen(t)
	got, err := b.Agents.GetAgent(ctx(t), a.Address)
	require.NoError(t, err)
	assertAgent(t, a, got)
	got, err = b.Agents.AgentByKeyHash(ctx(t), a.APIKeyHash)
	require.NoError(t, err)
	assertAgent(t, a, got)
}

// testAgentReplaceKeepsCreatedAt: an agent's CreatedAt is its identity's
// generation (the gateway shows it only mail accepted since). Replacing
// the agent keeps it, to the nanosecond, and tells the caller; only
// deleting the agent ends it, and a registration after that starts anew.
func testAgentReplaceKeepsCreatedAt(t *testing.T, b Backend) {
	first := newAgent("shop@a.example", gateway.ModePull)
	first.CreatedAt = Now().Add(-time.Hour).Add(123456 * time.Nanosecond)
	born := first.CreatedAt
	require.NoError(t, b.Agents.PutAgent(ctx(t), first))
	got, err := b.Agents.GetAgent(ctx(t), first.Address)
	require.NoError(t, err)
	assertAgent(t, first, got)

	again := newAgent("shop@a.example", gateway.ModePush)
	again.APIKeyHash = keyHash("second key")
	require.NoError(t, b.Agents.PutAgent(ctx(t), again))
	assert.True(t, born.Equal(again.CreatedAt), "PutAgent reports the creation time it kept: %v, want %v", again.CreatedAt, born)
	for name, read := range map[string]func() (*gateway.Agent, error){
		"by address":  func() (*gateway.Agent, error) { return b.Agents.GetAgent(ctx(t), "shop@a.example") },
		"by key hash": func() (*gateway.Agent, error) { return b.Agents.AgentByKeyHash(ctx(t), again.APIKeyHash) },
	} {
		got, err := read()
		require.NoError(t, err, name)
		assert.Equal(t, gateway.ModePush, got.DeliveryMode, "%s: the rest is replaced", name)
		assert.True(t, born.Equal(got.CreatedAt), "%s: created_at %v, want %v", name, got.CreatedAt, born)
	}

	require.NoError(t, b.Agents.DeleteAgent(ctx(t), "shop@a.example"))
	fresh := newAgent("shop@a.example", gateway.ModePull)
	fresh.CreatedAt = Now().Add(987 * time.Nanosecond)
	want := fresh.CreatedAt
	require.NoError(t, b.Agents.PutAgent(ctx(t), fresh))
	got, err = b.Agents.GetAgent(ctx(t), "shop@a.example")
	require.NoError(t, err)
	assert.True(t, want.Equal(got.CreatedAt), "registered after a delete: created_at %v, want %v", got.CreatedAt, want)
}
