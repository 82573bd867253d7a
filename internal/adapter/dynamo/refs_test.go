package dynamo

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefCache: entries live refCacheTTL, the cache never holds more than
// maxCachedRefs, and a message whose items are found by address alone is
// kept without its recipients.
func TestRefCache(t *testing.T) {
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	var c refCache
	c.put(messageRef{id: "one", shards: 16, to: []string{"bob@b.example"}}, now)
	c.put(messageRef{id: "many", to: []string{"a@a.example", "b@b.example"}}, now)

	got, ok := c.get("one", now.Add(refCacheTTL-time.Nanosecond))
	require.True(t, ok)
	assert.Equal(t, []string{"bob@b.example"}, got.to)
	got, ok = c.get("many", now)
	require.True(t, ok)
	assert.Nil(t, got.to, "not needed to find its items")
	_, ok = c.get("one", now.Add(refCacheTTL))
	assert.False(t, ok, "expired")
	_, ok = c.get("none", now)
	assert.False(t, ok)

	for i := range 2 * maxCachedRefs {
		c.put(messageRef{id: fmt.Sprint(i)}, now.Add(time.Duration(i)*time.Millisecond))
		require.LessOrEqual(t, len(c.entries), maxCachedRefs)
	}
	_, ok = c.get(fmt.Sprint(2*maxCachedRefs-1), now)
	assert.True(t, ok, "the newest is kept")
}
