package dynamo

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Listings are written to shards. A partition key value sustains about
// 1,000 write units a second, and one whose sort keys grow with time is
// never split for heat, so a listing that every message (DAY#), every
// message of one busy sender (FROM#) or to one busy recipient (TO#,
// INBOX#) writes to would cap the gateway there. Each entry goes to shard
// hash(message id) mod N of its listing, and a listing is read by merging
// its N walks by sort key (list.go, inbox.go). docs/dynamodb.md
// ("Sharded listings") has the figures behind the defaults.
//
// Shard 0 is the unsharded key itself (`DAY#<day>`, `FROM#<sender>`…) and
// shard n > 0 is `<key>#<n>`: entries written before sharding existed are
// in shard 0 and stay listed, and N may grow at any time (every entry
// stays in a shard below the new N). It must not shrink: entries in the
// shards beyond the new N would vanish from listings, though not from the
// table, until they expire.
const (
	// DefaultListingShards shards DAY#, FROM# and TO#: at 10,000 messages
	// a second the day's 10,000 index writes spread over 16 keys are 63 %
	// of one key's limit, and a sender fanning out 1,000 messages a second
	// loads each of its FROM# keys (and each recipient's TO#) to 6 %.
	DefaultListingShards = 16
	// DefaultInboxShards shards INBOX#: a message filed and acknowledged
	// costs its inbox 2 write units, so 4 keys take 2,000 messages a
	// second into one inbox at half their limit, and reading a page costs
	// 4 queries.
	DefaultInboxShards = 4
	// MaxShards bounds N: a Party listing walks 3N partitions (FROM#, and
	// TO# in the base table and in gsi1), each at least one query, within
	// one call's query budget (maxListQueries).
	MaxShards = maxListQueries / 4
)

// shards is the table's sharding of listings.
type shards struct {
	listings, inbox int
}

func newShards(listings, inbox int) (shards, error) {
	if listings <= 0 {
		listings = DefaultListingShards
	}
	if inbox <= 0 {
		inbox = DefaultInboxShards
	}
	if listings > MaxShards || inbox > MaxShards {
		return shards{}, fmt.Errorf("dynamo: at most %d shards per listing (have %d listing, %d inbox)", MaxShards, listings, inbox)
	}
	return shards{listings: listings, inbox: inbox}, nil
}

// shardOf is the shard of a message's entries in a listing of n shards.
func shardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// sharded is the partition key of shard i of a listing keyed base.
func sharded(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "#" + strconv.Itoa(i)
}

// all lists the partition keys of every shard of a listing.
func all(base string, n int) []string {
	out := make([]string, max(n, 1))
	for i := range out {
		out[i] = sharded(base, i)
	}
	return out
}

func fromBase(sender string) string     { return pfxFrom + strings.ToLower(sender) }
func toBase(recipient string) string    { return pfxTo + strings.ToLower(recipient) }
func inboxBase(recipient string) string { return pfxInbox + strings.ToLower(recipient) }
func dayBase(day time.Time) string      { return pfxDay + day.UTC().Format(dayLayout) }

// The partition a message's entry goes to in each listing.
func (sh shards) from(sender, id string) string {
	return sharded(fromBase(sender), shardOf(id, sh.listings))
}
func (sh shards) to(recipient, id string) string {
	return sharded(toBase(recipient), shardOf(id, sh.listings))
}
func (sh shards) day(at time.Time, id string) string {
	return sharded(dayBase(at), shardOf(id, sh.listings))
}
func (sh shards) inboxOf(recipient, id string) string {
	return sharded(inboxBase(recipient), shardOf(id, sh.inbox))
}
