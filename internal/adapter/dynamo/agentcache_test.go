package dynamo

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awscost"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// TestAgentReadsAreReused: GetAgent reads an agent's item once per
// AgentCacheTTL in a process, so that a hot agent's item is not read on
// every message; this Store's own changes are seen at once, another
// process's within the TTL, and an agent not found is asked for again.
func TestAgentReadsAreReused(t *testing.T) {
	e := newEnv(t)
	counter := awscost.New(awstest.Config(t))
	s, err := New(dynamodb.NewFromConfig(counter.Instrument(awstest.Config(t))), Config{Table: e.names.Table, Queue: e.queue, Now: e.clock.Now})
	require.NoError(t, err)
	other := e.store(t) // another process
	reads := func() float64 {
		t.Helper()
		u, _, err := counter.Take()
		require.NoError(t, err)
		return u.Calls["dynamodb:GetItem"]
	}
	addr := strings.ToLower(gatewaytest.NewID("hot")) + "@a.example"
	agent := func(hook string) *gateway.Agent {
		return &gateway.Agent{Address: addr, DeliveryMode: gateway.ModePush, WebhookURL: hook, APIKeyHash: gatewaytest.NewID("h"), CreatedAt: gatewaytest.Now()}
	}

	_, err = s.GetAgent(ctx(t), addr)
	require.ErrorIs(t, err, gateway.ErrNotFound)
	require.NoError(t, other.PutAgent(ctx(t), agent("https://one.example/hook")))
	got, err := s.GetAgent(ctx(t), addr)
	require.NoError(t, err, "an agent not found is not remembered as missing")
	assert.Equal(t, "https://one.example/hook", got.WebhookURL)
	reads()

	for range 5 {
		got, err = s.GetAgent(ctx(t), addr)
		require.NoError(t, err)
		assert.Equal(t, "https://one.example/hook", got.WebhookURL)
	}
	assert.Zero(t, reads(), "reused within the TTL")

	got.SupportedSchemas = append(got.SupportedSchemas, "changed-by-the-caller")
	again, err := s.GetAgent(ctx(t), addr)
	require.NoError(t, err)
	assert.Empty(t, again.SupportedSchemas, "every caller gets its own copy")

	require.NoError(t, other.PutAgent(ctx(t), agent("https://two.example/hook")))
	e.clock.Advance(DefaultAgentCacheTTL)
	got, err = s.GetAgent(ctx(t), addr)
	require.NoError(t, err)
	assert.Equal(t, "https://two.example/hook", got.WebhookURL, "another process's change is seen after the TTL")
	assert.Equal(t, 1.0, reads())

	require.NoError(t, s.PutAgent(ctx(t), agent("https://three.example/hook")))
	got, err = s.GetAgent(ctx(t), addr)
	require.NoError(t, err)
	assert.Equal(t, "https://three.example/hook", got.WebhookURL, "this Store's change is seen at once")
	require.NoError(t, s.DeleteAgent(ctx(t), addr))
	_, err = s.GetAgent(ctx(t), addr)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "this Store's deletion is seen at once")

	off := e.store(t, func(c *Config) { c.AgentCacheTTL = -1 })
	require.NoError(t, other.PutAgent(ctx(t), agent("https://four.example/hook")))
	_, err = off.GetAgent(ctx(t), addr)
	require.NoError(t, err)
	require.NoError(t, other.DeleteAgent(ctx(t), addr))
	_, err = off.GetAgent(ctx(t), addr)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "a negative TTL turns the cache off")
}
