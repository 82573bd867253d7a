package pebblestore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// Pebble takes the memory of its memtables out of the block cache's
// budget (Cache.Reserve). A store whose cache is not larger than its
// memtables has no block cache at all, and every lookup reads and
// decompresses index and filter blocks from the file again: on the
// accept path that was the largest cost of all.
func TestBlockCacheHoldsBlocks(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"small memtables", Options{MemTableBytes: 1 << 20, CacheBytes: 1 << 20}},
		{"large memtables", Options{MemTableBytes: 16 << 20, CacheBytes: 2 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dir = t.TempDir()
			db := openDB(t, tc.opts)
			ctx := context.Background()
			at := gatewaytest.Now()
			var ids []string
			for i := 0; i < 200; i++ {
				id := gatewaytest.NewID("cache")
				_, err := db.Accept(ctx, gatewaytest.NewAcceptance(id, "alice@example.com", []string{"bob@example.com"}, at))
				require.NoError(t, err)
				ids = append(ids, id)
			}
			// Into tables, so that reads go through the block cache.
			require.NoError(t, db.pdb.Flush())
			for round := 0; round < 2; round++ {
				for _, id := range ids {
					_, err := db.GetMessage(ctx, id)
					require.NoError(t, err)
				}
				_, err := db.GetMessage(ctx, "absent-"+time.Now().String())
				require.ErrorIs(t, err, gateway.ErrNotFound)
			}
			m := db.pdb.Metrics()
			require.Positive(t, m.BlockCache.Size, "no block is cached")
			require.Greater(t, m.BlockCache.Hits, m.BlockCache.Misses, "the second round must read from the cache")
		})
	}
}
