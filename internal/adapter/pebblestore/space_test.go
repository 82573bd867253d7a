package pebblestore

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpaceGuardHasHysteresis: a guard that found the file system full
// refuses writes until there is half a reserve more than the reserve, so
// that the few megabytes a compaction frees do not let writes through
// while the disk is still full.
func TestSpaceGuardHasHysteresis(t *testing.T) {
	free, err := freeBytes(t.TempDir())
	require.NoError(t, err)
	// A reserve just above what is free: full.
	g := spaceGuard{dir: t.TempDir(), reserve: free + 1<<30}
	require.ErrorIs(t, g.check(0), ErrFull)
	// Free space now a quarter reserve above the reserve: still full.
	g.reserve = (free - 1<<20) * 4 / 5
	assert.ErrorIs(t, g.check(0), ErrFull, "within the hysteresis")
	// Well above reserve and a half: writes resume.
	g.reserve = free / 4
	assert.NoError(t, g.check(0))
}
