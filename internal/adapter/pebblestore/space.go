package pebblestore

import (
	"fmt"
	"sync"
	"time"
)

// spaceGuard refuses writes while the data directory's file system has
// less than reserve bytes free (and, once full, until it has half as much
// again). Pebble cannot survive a failed write of
// its log (it treats it as fatal, doc.go), so the store stops short of a
// full disk instead of running into it. It asks the file system at most
// every spaceRecheck, or sooner once a quarter of the reserve has been
// written since, so that writes between two looks never eat the reserve.
type spaceGuard struct {
	dir     string
	reserve uint64

	mu      sync.Mutex
	checked time.Time
	written uint64
	full    bool
}

const spaceRecheck = 100 * time.Millisecond

// check accounts for a write of n bytes and returns ErrFull (wrapped) if
// it must be refused.
func (g *spaceGuard) check(n uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.written += n
	if g.full || time.Since(g.checked) >= spaceRecheck || g.written >= g.reserve/4 {
		free, err := freeBytes(g.dir)
		if err != nil {
			return fmt.Errorf("free space of %s: %w", g.dir, err)
		}
		g.checked, g.written = time.Now(), 0
		need := g.reserve + n
		if g.full {
			// Hysteresis: Pebble's compactions free and take space by the
			// megabyte; a store that was full resumes only with half the
			// reserve more, so that it does not flap around the line.
			need += g.reserve / 2
		}
		g.full = free < need
	}
	if g.full {
		return fmt.Errorf("less than %d bytes free for the store: %w", g.reserve, ErrFull)
	}
	return nil
}
