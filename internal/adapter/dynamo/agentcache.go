package dynamo

import (
	"strings"
	"sync"
	"time"
)

// agentCache keeps the agent items GetAgent read, for a short time. Every
// submission reads its recipients' agents and every delivery its
// recipient's again, each a strongly consistent read of the one AGENT#
// item: an agent receiving 1,500 messages a second reaches that item's
// 3,000 read units (docs/scaling.md). An agent changes rarely, so a
// second's reuse within one process takes that ceiling away.
//
// What it costs: an agent changed or deleted through another process (the
// api function's instances and the deliver function's are many) may be
// seen as it was for up to the TTL. Changes through this Store drop its
// entry at once, and only agents found are kept, so an agent registered
// a moment ago is never reported missing because of the cache.
type agentCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]agentEntry
}

type agentEntry struct {
	it      item
	expires time.Time
}

// maxCachedAgents bounds the cache; beyond it, expired entries go first,
// then everything (a process serving that many distinct agents a second
// gains little from the cache anyway).
const maxCachedAgents = 4096

// DefaultAgentCacheTTL is Config.AgentCacheTTL's default.
const DefaultAgentCacheTTL = time.Second

func newAgentCache(ttl time.Duration, now func() time.Time) *agentCache {
	return &agentCache{ttl: ttl, now: now, entries: map[string]agentEntry{}}
}

func (c *agentCache) get(addr string) item {
	if c.ttl <= 0 {
		return nil
	}
	k := strings.ToLower(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, k)
		return nil
	}
	return e.it
}

func (c *agentCache) put(addr string, it item) {
	if c.ttl <= 0 || it == nil {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedAgents {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedAgents {
			clear(c.entries)
		}
	}
	c.entries[strings.ToLower(addr)] = agentEntry{it: it, expires: now.Add(c.ttl)}
}

// drop forgets an agent this Store is changing.
func (c *agentCache) drop(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, strings.ToLower(addr))
}
