package localgw

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	t.Setenv("GOGC", "")
	assert.Equal(t, GCPercent, TuneGC(), "no GOGC: the gateway's default")
	assert.Equal(t, GCPercent, debug.SetGCPercent(100))

	// An operator's GOGC wins: what the runtime took from it stays.
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // as the runtime would have at start
	assert.Equal(t, 50, TuneGC())
	assert.Equal(t, 50, debug.SetGCPercent(100))
}

func TestLimitMemory(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	assert.Equal(t, int64(MemoryLimitBase+4*(32<<20)), LimitMemory(32<<20))
	assert.Equal(t, int64(MemoryLimitBase+4*(32<<20)), debug.SetMemoryLimit(-1))

	// An operator's GOMEMLIMIT wins.
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30) // as the runtime would have at start
	assert.Equal(t, int64(1<<30), LimitMemory(64<<20))
	assert.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1))
}
