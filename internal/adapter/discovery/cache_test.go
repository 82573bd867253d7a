package discovery

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCacheEviction(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		ttls    []time.Duration // inserted in order as k0, k1, ...
		advance time.Duration   // before inserting the extra entry
		evicted string
	}{
		{"oldest when nothing expired", []time.Duration{time.Hour, time.Minute, time.Hour}, 0, "k0"},
		{"expired before oldest", []time.Duration{time.Hour, time.Minute, time.Hour}, 2 * time.Minute, "k1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(len(tc.ttls))
			for i, ttl := range tc.ttls {
				c.put(fmt.Sprintf("k%d", i), i, nil, t0.Add(ttl), t0)
			}
			now := t0.Add(tc.advance)
			c.put("extra", -1, nil, now.Add(time.Hour), now)
			assert.Equal(t, len(tc.ttls), c.len())
			assert.Len(t, c.expiry, c.len(), "heap tracks every entry")
			assert.Equal(t, c.len(), c.order.Len(), "list tracks every entry")
			_, ok := c.entries[tc.evicted]
			assert.False(t, ok, "%s should have been evicted", tc.evicted)
			_, ok = c.get("extra", now)
			assert.True(t, ok)
		})
	}
}

func TestCacheGetDropsExpiredAndPutReplaces(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCache(10)
	c.put("a", 1, nil, t0.Add(time.Minute), t0)
	c.put("a", 2, nil, t0.Add(2*time.Minute), t0)
	require.Equal(t, 1, c.len())
	e, ok := c.get("a", t0.Add(90*time.Second))
	require.True(t, ok)
	assert.Equal(t, 2, e.value)

	_, ok = c.get("a", t0.Add(2*time.Minute))
	assert.False(t, ok, "an entry is dead at its expiry instant")
	assert.Equal(t, 0, c.len())
	assert.Empty(t, c.expiry)

	c.put("b", 1, nil, t0, t0)
	assert.Equal(t, 0, c.len(), "already-expired entries are not stored")
}

func TestCollectFollowsCNAME(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		require.NoError(t, err)
		return r
	}
	answer := []dns.RR{
		rr(`_amtp.example.com. 300 IN CNAME _amtp.provider.net.`),
		rr(`_amtp.provider.net. 120 IN TXT "v=amtp1;gateway=https://gw.provider.net"`),
		rr(`unrelated.example.com. 5 IN TXT "noise"`),
	}
	got, ttl := collect(answer, "_AMTP.example.com.", dns.TypeTXT)
	require.Len(t, got, 1)
	assert.Equal(t, []string{"v=amtp1;gateway=https://gw.provider.net"}, got[0].(*dns.TXT).Txt)
	assert.Equal(t, uint32(120), ttl)

	loop := []dns.RR{rr(`a.example. 60 IN CNAME b.example.`), rr(`b.example. 60 IN CNAME a.example.`)}
	got, _ = collect(loop, "a.example.", dns.TypeTXT)
	assert.Empty(t, got, "a CNAME loop ends without records")
}
