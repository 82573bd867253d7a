package discovery

import (
	"container/heap"
	"container/list"
	"time"
)

// cache is a size-bounded TTL map. It is not safe for concurrent use; the
// Resolver guards it with the same mutex as its in-flight table so that a
// finished query is visible in the cache before its flight disappears.
//
// When full, it evicts an expired entry if there is one (found through a
// min-heap on expiry) and otherwise the oldest insertion. Both are O(log n),
// so a cache full of long-lived entries does not make inserts scan.
type cache struct {
	max     int
	entries map[string]*cacheEntry
	order   *list.List // *cacheEntry, oldest insertion at the front
	expiry  expiryHeap
}

type cacheEntry struct {
	key     string
	value   any
	err     error
	expires time.Time
	elem    *list.Element
	index   int // position in expiryHeap
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[string]*cacheEntry), order: list.New()}
}

func (c *cache) len() int { return len(c.entries) }

// get returns the live entry for key; an expired one is dropped on the spot
// so stale answers never leak out between evictions.
func (c *cache) get(key string, now time.Time) (*cacheEntry, bool) {
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		c.remove(e)
		return nil, false
	}
	return e, true
}

func (c *cache) put(key string, value any, err error, expires, now time.Time) {
	if !now.Before(expires) || c.max <= 0 {
		return
	}
	if old, ok := c.entries[key]; ok {
		c.remove(old)
	}
	for len(c.entries) >= c.max {
		c.evictOne(now)
	}
	e := &cacheEntry{key: key, value: value, err: err, expires: expires}
	e.elem = c.order.PushBack(e)
	heap.Push(&c.expiry, e)
	c.entries[key] = e
}

func (c *cache) evictOne(now time.Time) {
	if len(c.expiry) > 0 && !now.Before(c.expiry[0].expires) {
		c.remove(c.expiry[0])
		return
	}
	if front := c.order.Front(); front != nil {
		c.remove(front.Value.(*cacheEntry))
	}
}

func (c *cache) remove(e *cacheEntry) {
	delete(c.entries, e.key)
	c.order.Remove(e.elem)
	heap.Remove(&c.expiry, e.index)
}

type expiryHeap []*cacheEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*cacheEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil // let the entry be collected once evicted
	*h = old[:n-1]
	return e
}
