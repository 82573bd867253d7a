package embedded

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestAgentCacheFollowsWrites: lookups are served from memory after the
// first read, and every write is visible to the very next lookup.
func TestAgentCacheFollowsWrites(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, Options{Dir: t.TempDir()})
	a := &gateway.Agent{Address: "Bob@b.example", DeliveryMode: gateway.ModePull, APIKeyHash: "AA11", SupportedSchemas: []string{"x:a.b.v1"}}
	require.NoError(t, db.PutAgent(ctx, a))

	for range 2 { // the second round is served by the cache
		got, err := db.AgentByKeyHash(ctx, "aa11")
		require.NoError(t, err)
		assert.Equal(t, "Bob@b.example", got.Address)
		got, err = db.GetAgent(ctx, "bob@B.EXAMPLE")
		require.NoError(t, err)
		assert.Equal(t, []string{"x:a.b.v1"}, got.SupportedSchemas)
		got.SupportedSchemas[0] = "changed by a caller"
		got.WebhookURL = "changed by a caller"
	}
	got, err := db.GetAgent(ctx, "bob@b.example")
	require.NoError(t, err)
	assert.Equal(t, []string{"x:a.b.v1"}, got.SupportedSchemas, "a caller's change reached the cache")
	assert.Empty(t, got.WebhookURL)

	// A new key works at once and the old one stops at once.
	a.APIKeyHash = "bb22"
	a.DeliveryMode = gateway.ModePush
	a.WebhookURL = "https://hook.example/x"
	require.NoError(t, db.PutAgent(ctx, a))
	_, err = db.AgentByKeyHash(ctx, "aa11")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	got, err = db.AgentByKeyHash(ctx, "bb22")
	require.NoError(t, err)
	assert.Equal(t, gateway.ModePush, got.DeliveryMode)
	got, err = db.GetAgent(ctx, "bob@b.example")
	require.NoError(t, err)
	assert.Equal(t, "https://hook.example/x", got.WebhookURL)

	require.NoError(t, db.DeleteAgent(ctx, "bob@b.example"))
	_, err = db.GetAgent(ctx, "bob@b.example")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = db.AgentByKeyHash(ctx, "bb22")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
}

// TestAgentCacheUnderConcurrentKeyChanges: readers racing a writer that
// rotates keys never see a key the writer has already replaced once the
// writer is done, whatever they cached meanwhile.
func TestAgentCacheUnderConcurrentKeyChanges(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, Options{Dir: t.TempDir()})
	const rounds = 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = db.AgentByKeyHash(ctx, fmt.Sprintf("k%d", (i+r)%rounds))
				_, _ = db.GetAgent(ctx, "bob@b.example")
			}
		}()
	}
	for i := range rounds {
		require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@b.example", DeliveryMode: gateway.ModePull, APIKeyHash: fmt.Sprintf("k%d", i)}))
	}
	close(stop)
	wg.Wait()
	for i := range rounds - 1 {
		_, err := db.AgentByKeyHash(ctx, fmt.Sprintf("k%d", i))
		require.ErrorIs(t, err, gateway.ErrNotFound, "old key k%d still authenticates", i)
	}
	got, err := db.AgentByKeyHash(ctx, fmt.Sprintf("k%d", rounds-1))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("k%d", rounds-1), got.APIKeyHash)
}
