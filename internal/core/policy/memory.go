package policy

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the memory limiter: a few hundred bytes per bucket
// with the keys Decide makes, so tens of MB at worst.
const DefaultMaxKeys = 100_000

// MemoryLimiter is the in-process Limiter: exact for one process, and so
// right for the local gateway, not for several Lambda instances sharing
// senders.
//
// Memory stays bounded without a background sweeper: every call first drops
// the buckets that have refilled completely by its now (dropping a full
// bucket changes nothing, a missing bucket is a full one), and when MaxKeys
// live buckets remain, the one that will be full soonest is dropped to make
// room. Only that last case forgives anything, and the least possible.
type MemoryLimiter struct {
	mu      sync.Mutex
	maxKeys int
	buckets map[string]*memEntry
	byFull  fullHeap // every entry, earliest FullAt first
}

type memEntry struct {
	key    string
	b      Bucket
	fullAt time.Time
	index  int // in byFull
}

// NewMemoryLimiter returns an empty limiter holding at most DefaultMaxKeys
// buckets.
func NewMemoryLimiter() *MemoryLimiter { return newMemoryLimiter(DefaultMaxKeys) }

func newMemoryLimiter(maxKeys int) *MemoryLimiter {
	return &MemoryLimiter{maxKeys: max(maxKeys, 1), buckets: make(map[string]*memEntry)}
}

var errInvalidLimit = errors.New("policy: invalid rate limit")

// Allow implements Limiter.
func (m *MemoryLimiter) Allow(ctx context.Context, key string, l Limit, now time.Time) (bool, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("policy: rate limit %q: %w", clip(key), err)
	}
	if !l.Valid() {
		return false, 0, fmt.Errorf("%w: %d per %v", errInvalidLimit, l.Rate, l.Per)
	}
	if len(key) > MaxKeyLen {
		return false, 0, fmt.Errorf("policy: rate limit key is %d bytes, more than %d", len(key), MaxKeyLen)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evictFull(now)
	e := m.buckets[key]
	var b Bucket
	if e != nil {
		b = e.b
	}
	next, ok, retryAfter := Step(b, l, now)
	if !ok {
		return false, retryAfter, nil
	}
	if e == nil {
		if len(m.buckets) >= m.maxKeys {
			m.drop(m.byFull[0])
		}
		// A clone, so that a key cut from a large buffer does not keep
		// the whole buffer alive as long as the bucket.
		e = &memEntry{key: strings.Clone(key)}
		m.buckets[key] = e
		e.b, e.fullAt = next, next.FullAt(l)
		heap.Push(&m.byFull, e)
		return true, 0, nil
	}
	e.b, e.fullAt = next, next.FullAt(l)
	heap.Fix(&m.byFull, e.index)
	return true, 0, nil
}

// evictFull drops every bucket full by now. Each bucket is pushed once and
// popped once, so this costs O(log n) per call amortised.
func (m *MemoryLimiter) evictFull(now time.Time) {
	for len(m.byFull) > 0 && !m.byFull[0].fullAt.After(now) {
		m.drop(m.byFull[0])
	}
}

func (m *MemoryLimiter) drop(e *memEntry) {
	heap.Remove(&m.byFull, e.index)
	delete(m.buckets, e.key)
}

// len is the number of live buckets, for tests.
func (m *MemoryLimiter) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buckets)
}

type fullHeap []*memEntry

func (h fullHeap) Len() int           { return len(h) }
func (h fullHeap) Less(i, j int) bool { return h[i].fullAt.Before(h[j].fullAt) }
func (h fullHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *fullHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *fullHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
