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
