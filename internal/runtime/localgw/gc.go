package localgw

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target for `agentry serve` when the
// operator has not set GOGC: collect when the heap has grown by 300 % of
// what was live, not 100 %. The gateway's live heap is small (agents,
// leases, requests in flight) and what it allocates per request is
// garbage at once, so the default collected every few megabytes: in make
// bench that was about a tenth of the gateway's CPU. Paired runs, 100 →
// 200 → 300: accept 0.39 → 0.41 → 0.44 × the floor, push 0.22 → 0.22 →
// 0.24 ×, p99 a little lower. The cost is heap kept between collections
// (the memory scenario's heap-and-stacks growth per 10k queued moved
// within 0.4–3.2 MB). GOMEMLIMIT caps the heap where memory is tight.
const GCPercent = 300

// TuneGC applies GCPercent unless GOGC is set, and returns the percentage
// in force. Processes call it once at start; it is not for libraries.
func TuneGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent
}

// MemoryLimitBase is the part of the default soft memory limit that is not
// request bodies: the live heap of an idle gateway is a few megabytes.
const MemoryLimitBase = 64 << 20

// LimitMemory sets the runtime's soft memory limit to MemoryLimitBase plus
// four times the request bodies the gateway may hold at once (bodyBudget)
// unless GOMEMLIMIT is set, and returns the limit in force. Without it,
// GCPercent lets garbage grow to four times the live heap, and when the
// live heap holds megabyte bodies that is hundreds of megabytes (make
// bench, flood: 611 MB peak RSS before, 169 MB with a limit). A body costs
// the heap about three times its size while it is accepted (the body, the
// stored form, the store's record), so four times leaves the collector
// room: at twice, a flood kept the heap at the limit and the collector
// running, and the health probe's p99 went from 9 to 50 ms. The limit is
// soft: a gateway that truly needs more gets it, collecting more often.
func LimitMemory(bodyBudget int64) int64 {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := MemoryLimitBase + 4*bodyBudget
	debug.SetMemoryLimit(limit)
	return limit
}
