// Package policytest holds the contract every policy.Limiter passes, so
// that the memory limiter and the DynamoDB one count the same way.
package policytest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/policy"
)

// t0 is a fixed, millisecond-aligned time: results must not depend on the
// wall clock, and a store keeping milliseconds must lose nothing.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// RunLimiter runs the Limiter contract. newLimiter is called once per
// subtest; it may return limiters sharing one store, since every subtest
// uses keys of its own, unique per run so that a persistent store (a
// DynamoDB table reused between runs) does not carry state over.
func RunLimiter(t *testing.T, newLimiter func(t *testing.T) policy.Limiter) {
	t.Helper()
	run := time.Now().UnixNano()
	key := func(t *testing.T, name string) string {
		return fmt.Sprintf("policytest/%d/%s/%s", run, t.Name(), name)
	}
	ctx := context.Background()

	t.Run("burst up to Rate then refused", func(t *testing.T) {
		lim, k := newLimiter(t), key(t, "a")
		l := policy.Limit{Rate: 5, Per: time.Minute}
		for i := range l.Rate {
			ok, ra, err := lim.Allow(ctx, k, l, t0)
			require.NoError(t, err)
			require.Truef(t, ok, "request %d of a burst of %d", i+1, l.Rate)
			assert.Zero(t, ra, "a granted request has no retryAfter")
		}
		ok, ra, err := lim.Allow(ctx, k, l, t0)
		require.NoError(t, err)
		require.False(t, ok, "request Rate+1 in the same instant")
		// One token comes back every Per/Rate = 12s; allow a store that
		// rounds times to whole seconds.
		assert.Greater(t, ra, time.Duration(0))
		assert.LessOrEqual(t, ra, l.Per/time.Duration(l.Rate)+time.Second)

		ok, _, err = lim.Allow(ctx, k, l, t0.Add(ra-time.Millisecond))
		require.NoError(t, err)
		assert.False(t, ok, "granted before retryAfter")
		ok, _, err = lim.Allow(ctx, k, l, t0.Add(ra))
		require.NoError(t, err)
		assert.True(t, ok, "refused at retryAfter")
	})

	t.Run("refill is continuous", func(t *testing.T) {
		lim, k := newLimiter(t), key(t, "a")
		l := policy.Limit{Rate: 2, Per: 10 * time.Second}
		allow := func(at time.Duration) (bool, time.Duration) {
			t.Helper()
			ok, ra, err := lim.Allow(ctx, k, l, t0.Add(at))
			require.NoError(t, err)
			return ok, ra
		}
		for range 2 {
			ok, _ := allow(0)
			require.True(t, ok)
		}
		ok, ra := allow(2500 * time.Millisecond) // half a token back
		require.False(t, ok)
		assert.InDelta(t, 2500*time.Millisecond, ra, float64(time.Second), "time to the missing half token")
		ok, _ = allow(5 * time.Second) // one whole token
		require.True(t, ok)
		ok, _ = allow(5 * time.Second)
		require.False(t, ok, "the refilled token was spent")
		ok, _ = allow(10 * time.Second)
		require.True(t, ok)
	})

	t.Run("capacity is Rate however long the idle", func(t *testing.T) {
		lim, k := newLimiter(t), key(t, "a")
		l := policy.Limit{Rate: 3, Per: time.Hour}
		ok, _, err := lim.Allow(ctx, k, l, t0)
		require.NoError(t, err)
		require.True(t, ok)
		later := t0.Add(100 * l.Per)
		granted := 0
		for range 2 * l.Rate {
			ok, _, err := lim.Allow(ctx, k, l, later)
			require.NoError(t, err)
			if ok {
				granted++
			}
		}
		assert.Equal(t, l.Rate, granted)
	})

	t.Run("keys are independent", func(t *testing.T) {
		lim := newLimiter(t)
		a, b := key(t, "a"), key(t, "b")
		l := policy.Limit{Rate: 2, Per: time.Minute}
		for range l.Rate {
			ok, _, err := lim.Allow(ctx, a, l, t0)
			require.NoError(t, err)
			require.True(t, ok)
		}
		ok, _, err := lim.Allow(ctx, a, l, t0)
		require.NoError(t, err)
		require.False(t, ok)
		for range l.Rate {
			ok, _, err := lim.Allow(ctx, b, l, t0)
			require.NoError(t, err)
			assert.True(t, ok, "key b pays for key a")
		}
	})

	t.Run("a late clock gains nothing", func(t *testing.T) {
		lim, k := newLimiter(t), key(t, "a")
		l := policy.Limit{Rate: 1, Per: time.Minute}
		now := t0.Add(time.Hour)
		ok, _, err := lim.Allow(ctx, k, l, now)
		require.NoError(t, err)
		require.True(t, ok)
		for _, at := range []time.Time{t0, now.Add(-time.Minute), now.Add(30 * time.Second)} {
			ok, _, err := lim.Allow(ctx, k, l, at)
			require.NoError(t, err)
			assert.Falsef(t, ok, "granted at %v after the bucket was emptied at %v", at, now)
		}
		ok, _, err = lim.Allow(ctx, k, l, now.Add(time.Minute))
		require.NoError(t, err)
		assert.True(t, ok)
	})

	t.Run("concurrent callers never exceed Rate", func(t *testing.T) {
		lim, k := newLimiter(t), key(t, "a")
		l := policy.Limit{Rate: 10, Per: time.Hour}
		const workers, each = 16, 4
		var granted, failed atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				for range each {
					ok, _, err := lim.Allow(ctx, k, l, t0)
					switch {
					case err != nil:
						failed.Add(1)
					case ok:
						granted.Add(1)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		assert.Zero(t, failed.Load(), "errors under contention")
		assert.LessOrEqual(t, granted.Load(), int64(l.Rate), "more grants than the bucket holds")
		assert.Positive(t, granted.Load())
	})

	t.Run("invalid input is an error", func(t *testing.T) {
		lim, k := newLimiter(t), key(t, "a")
		for _, l := range []policy.Limit{{Rate: 0, Per: time.Minute}, {Rate: 1, Per: 0}, {Rate: -1, Per: time.Second}} {
			ok, _, err := lim.Allow(ctx, k, l, t0)
			assert.Errorf(t, err, "limit %+v", l)
			assert.False(t, ok)
		}
		long := k + strings.Repeat("x", policy.MaxKeyLen)
		ok, _, err := lim.Allow(ctx, long, policy.Limit{Rate: 1, Per: time.Minute}, t0)
		assert.Error(t, err, "key over MaxKeyLen")
		assert.False(t, ok)

		canceled, cancel := context.WithCancel(ctx)
		cancel()
		ok, _, err = lim.Allow(canceled, k, policy.Limit{Rate: 1, Per: time.Minute}, t0)
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, ok)
	})
}
