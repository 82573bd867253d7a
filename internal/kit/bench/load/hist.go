package load

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear: values below subCount nanoseconds get a
// bucket each, and every power-of-two range above is cut into subCount
// equal buckets. A bucket is at most 1/subCount (1.6 %) of its value wide,
// and the whole table is a fixed ~30 KB whatever the number of samples.
const (
	subBits  = 6
	subCount = 1 << subBits
	// Durations are non-negative int64 nanoseconds: at most 63 significant
	// bits, so shifts run from 0 to 63-subBits.
	numBuckets = (64 - subBits) * subCount
)

// Histogram records durations in bounded memory. The zero value is ready
// to use; it is not safe for concurrent use (give each goroutine its own
// and Merge them).
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [subCount, 2*subCount)
	return (shift+1)*subCount + int(v>>uint(shift)) - subCount
}

// bucketRange is the smallest and largest value bucket i holds.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := uint(i/subCount - 1)
	lo = uint64(i%subCount+subCount) << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds every sample of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Min is the smallest sample, exactly.
func (h *Histogram) Min() time.Duration { return h.min }

// Mean is the exact average.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) by the nearest-rank method:
// the midpoint of the bucket holding the sample of rank ⌈q·n⌉, kept within
// [Min, Max]; Quantile(0) is Min and Quantile(1) is Max exactly. Zero
// without samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := time.Duration(lo + (hi-lo)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
