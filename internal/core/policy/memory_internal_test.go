package policy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var base = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestMemoryLimiterEvictsFullBuckets(t *testing.T) {
	m := NewMemoryLimiter()
	ctx := context.Background()
	l := Limit{Rate: 2, Per: time.Minute}
	for i := range 100 {
		ok, _, err := m.Allow(ctx, fmt.Sprint("k", i), l, base)
		require.NoError(t, err)
		require.True(t, ok)
	}
	assert.Equal(t, 100, m.len())
	// One token spent of two: full again after 30s. The call that sees
	// that time drops every one of them and keeps only its own.
	ok, _, err := m.Allow(ctx, "other", l, base.Add(30*time.Second))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 1, m.len())
}

func TestMemoryLimiterCap(t *testing.T) {
	m := newMemoryLimiter(3)
	ctx := context.Background()
	l := Limit{Rate: 1, Per: time.Hour}
	allow := func(key string, at time.Duration) bool {
		t.Helper()
		ok, _, err := m.Allow(ctx, key, l, base.Add(at))
		require.NoError(t, err)
		return ok
	}
	require.True(t, allow("a", 0))
	require.True(t, allow("b", time.Minute))
	require.True(t, allow("c", 2*time.Minute))
	require.False(t, allow("a", 3*time.Minute))
	// A fourth key evicts the bucket that would be full soonest, "a",
	// and nobody else.
	require.True(t, allow("d", 3*time.Minute))
	assert.Equal(t, 3, m.len())
	assert.False(t, allow("b", 3*time.Minute), "b kept its state")
	assert.False(t, allow("c", 3*time.Minute), "c kept its state")
	assert.True(t, allow("a", 3*time.Minute), "a was forgotten: the one leniency of the cap")
}

func TestMemoryLimiterConcurrentExact(t *testing.T) {
	m := NewMemoryLimiter()
	l := Limit{Rate: 25, Per: time.Hour}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range 20 {
				// Other keys interleave to exercise the heap under the lock.
				_, _, _ = m.Allow(context.Background(), fmt.Sprint("noise", w, i), l, base)
				if ok, _, err := m.Allow(context.Background(), "hot", l, base); err == nil && ok {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(l.Rate), granted.Load())
}

func TestMemoryLimiterHeapConsistent(t *testing.T) {
	// Random-ish traffic over few keys and moving time; after each call the
	// heap index of every entry must point back at it.
	m := newMemoryLimiter(8)
	ctx := context.Background()
	now := base
	for i := range 2000 {
		l := Limit{Rate: 1 + i%5, Per: time.Duration(1+i%3) * time.Second}
		now = now.Add(time.Duration(i%7) * 100 * time.Millisecond)
		_, _, err := m.Allow(ctx, fmt.Sprint("k", i*7919%13), l, now)
		require.NoError(t, err)
		m.mu.Lock()
		require.Equal(t, len(m.buckets), len(m.byFull))
		for j, e := range m.byFull {
			require.Equal(t, j, e.index)
			require.Same(t, e, m.buckets[e.key])
			require.True(t, e.fullAt.After(now), "a full bucket survived a call")
		}
		m.mu.Unlock()
	}
}
