package pebblestore

import (
	"maps"
	"slices"
	"sync"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// agentCacheMax bounds the decoded agents kept in memory; past it the
// cache starts over (registries that large are rare, and a miss costs
// one read).
const agentCacheMax = 4096

// agentCache keeps decoded agents by address and by key hash, because
// every request authenticates one agent and every accept looks up each
// local recipient: a store read plus a JSON decode apiece, about 5 % of an
// accept. It is exact, not eventually right: this process is the store's
// only writer (Pebble's lock), every agent write clears it after its
// commit, and a read that overlapped a write is not cached (gen).
type agentCache struct {
	mu     sync.Mutex
	gen    uint64
	byAddr map[string]*gateway.Agent // lower(address) →
	byHash map[string]*gateway.Agent // lower(key hash) →
}

// generation is read before the store is; put only keeps what it was
// given if no write has finished since.
func (c *agentCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *agentCache) byAddress(addr string) *gateway.Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneAgent(c.byAddr[addr])
}

func (c *agentCache) byKeyHash(h string) *gateway.Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneAgent(c.byHash[h])
}

// put caches a (lower-cased) address's or key hash's agent as read at
// generation gen; hash is empty for a lookup by address.
func (c *agentCache) put(gen uint64, addr, hash string, a *gateway.Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || a == nil {
		return
	}
	if len(c.byAddr)+len(c.byHash) >= agentCacheMax || c.byAddr == nil {
		c.byAddr, c.byHash = map[string]*gateway.Agent{}, map[string]*gateway.Agent{}
	}
	a = cloneAgent(a)
	if addr != "" {
		c.byAddr[addr] = a
	}
	if hash != "" {
		c.byHash[hash] = a
	}
}

// invalidate is called after every committed agent write.
func (c *agentCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byAddr, c.byHash = nil, nil
}

// cloneAgent keeps callers from changing the cached copy.
func cloneAgent(a *gateway.Agent) *gateway.Agent {
	if a == nil {
		return nil
	}
	b := *a
	b.SupportedSchemas = slices.Clone(a.SupportedSchemas)
	b.Headers = maps.Clone(a.Headers)
	return &b
}
