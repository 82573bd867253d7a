package dynamo

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// shardedEpoch is when shardedPages' messages are accepted: an hour ahead
// of every other test's, so that the admin listing from it holds only them.
var shardedEpoch = gatewaytest.Now().Add(time.Hour)

func TestShardKeys(t *testing.T) {
	for _, tc := range []struct {
		base string
		i    int
		want string
	}{
		{"DAY#2026-12-07", 0, "DAY#2026-12-07"},
		{"DAY#2026-12-07", 3, "DAY#2026-12-07#3"},
		{"FROM#alice@a.example", 15, "FROM#alice@a.example#15"},
	} {
		assert.Equal(t, tc.want, sharded(tc.base, tc.i))
	}
	assert.Equal(t, []string{"TO#b", "TO#b#1", "TO#b#2"}, all("TO#b", 3))
	assert.Equal(t, 0, shardOf("any", 1), "one shard is the unsharded key")
	seen := map[int]bool{}
	for i := range 200 {
		n := shardOf(fmt.Sprintf("id-%d", i), 16)
		require.True(t, n >= 0 && n < 16)
		seen[n] = true
	}
	assert.Len(t, seen, 16, "ids spread over every shard")
	_, err := newShards(MaxShards+1, 0)
	assert.Error(t, err)
}

// shardedPages accepts messages from one sender to one pull recipient (so
// that they are in every listing and in the inbox), each a millisecond
// apart, on a store writing 4 shards per listing; it returns the store,
// the addresses and the ids in acceptance order.
func shardedPages(t *testing.T, e *env, n int) (*Store, string, string, []string) {
	t.Helper()
	s := e.store(t, func(c *Config) { c.ListingShards, c.InboxShards = 4, 4 })
	sender := strings.ToLower(gatewaytest.NewID("alice")) + "@a.example"
	rcpt := strings.ToLower(gatewaytest.NewID("bob")) + "@b.example"
	at := shardedEpoch
	var ids []string
	for i := range n {
		a := toInbox(gatewaytest.NewAcceptance(gatewaytest.NewID("m"), sender, []string{rcpt}, at.Add(time.Duration(i)*time.Millisecond)))
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
		ids = append(ids, a.Message.ID)
	}
	return s, sender, rcpt, ids
}

// TestShardedPaging: a listing merged from shards, read in pages of every
// size, yields each message exactly once and in order, wherever a page
// boundary falls inside the merged walk — newest first for messages,
// oldest first for the inbox.
func TestShardedPaging(t *testing.T) {
	e := newEnv(t)
	const n = 11
	s, sender, rcpt, ids := shardedPages(t, e, n)

	shardsUsed := map[string]bool{}
	for _, id := range ids {
		shardsUsed[getStr(e.rawItem(t, messageKey(id)), aG1P)] = true
	}
	require.Greater(t, len(shardsUsed), 1, "the messages are spread over several FROM# shards")

	newest := slices.Clone(ids)
	slices.Reverse(newest)
	for _, limit := range []int{1, 2, 3, 4, 5, n, n + 1} {
		for name, q := range map[string]gateway.MessageQuery{
			"sender":             {Sender: sender},
			"recipient":          {Recipient: rcpt},
			"party":              {Party: sender},
			"party, a recipient": {Party: rcpt},
		} {
			t.Run(fmt.Sprintf("%s in pages of %d", name, limit), func(t *testing.T) {
				q.Limit = limit
				assert.Equal(t, newest, listIDs(t, s, q))
			})
		}
		t.Run(fmt.Sprintf("admin in pages of %d", limit), func(t *testing.T) {
			got := listIDs(t, s, gateway.MessageQuery{Limit: limit, Since: shardedEpoch})
			assert.Equal(t, newest, got)
		})
		t.Run(fmt.Sprintf("inbox in pages of %d", limit), func(t *testing.T) {
			assert.Equal(t, ids, inboxIDs(t, s, rcpt, limit))
		})
	}
}

// inboxIDs reads a whole inbox in pages of limit.
func inboxIDs(t *testing.T, s *Store, rcpt string, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		page, next, err := s.ListInbox(ctx(t), rcpt, limit, cursor)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), limit)
		for _, m := range page {
			ids = append(ids, m.MessageID)
		}
		if next == "" {
			return ids
		}
		require.NotEqual(t, cursor, next)
		cursor = next
	}
	t.Fatal("the inbox did not end within 100 pages")
	return nil
}

// TestUnshardedEntriesStayListed: entries written before sharding (one
// shard: the plain keys) are shard 0 of a sharded store, so they stay in
// every listing and in the inbox, merged with newer sharded ones; and
// the number of shards may grow.
func TestUnshardedEntriesStayListed(t *testing.T) {
	e := newEnv(t)
	old := e.store(t, func(c *Config) { c.ListingShards, c.InboxShards = 1, 1 })
	sender := strings.ToLower(gatewaytest.NewID("alice")) + "@a.example"
	rcpt := strings.ToLower(gatewaytest.NewID("bob")) + "@b.example"
	at := gatewaytest.Now()
	var ids []string
	accept := func(s *Store, i int) {
		a := toInbox(gatewaytest.NewAcceptance(gatewaytest.NewID("m"), sender, []string{rcpt}, at.Add(time.Duration(i)*time.Millisecond)))
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
		ids = append(ids, a.Message.ID)
	}
	for i := range 3 {
		accept(old, i)
	}
	assert.Equal(t, "FROM#"+sender, getStr(e.rawItem(t, messageKey(ids[0])), aG1P), "one shard writes the plain key")
	grown := e.store(t, func(c *Config) { c.ListingShards, c.InboxShards = 4, 2 })
	for i := 3; i < 8; i++ {
		accept(grown, i)
	}
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	for _, limit := range []int{1, 3, 10} {
		assert.Equal(t, newest, listIDs(t, grown, gateway.MessageQuery{Sender: sender, Limit: limit}))
		assert.Equal(t, newest, listIDs(t, grown, gateway.MessageQuery{Recipient: rcpt, Limit: limit}))
		assert.Equal(t, ids, inboxIDs(t, grown, rcpt, limit))
	}
	// Acknowledging and purging reach entries in every shard.
	require.NoError(t, grown.AckInbox(ctx(t), rcpt, ids[0]))
	require.NoError(t, grown.AckInbox(ctx(t), rcpt, ids[5]))
	assert.Equal(t, append(slices.Clone(ids[1:5]), ids[6:]...), inboxIDs(t, grown, rcpt, 2))
	require.NoError(t, grown.purgeInbox(ctx(t), rcpt))
	assert.Empty(t, inboxIDs(t, grown, rcpt, 10))
}
