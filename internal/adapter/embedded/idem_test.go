package embedded

import (
	"hash/maphash"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// collide makes every scope hash alike, so that all but one record of the
// index live in its clash map.
func collide(db *DB) {
	db.recent.hash = func(maphash.Seed, []byte) uint64 { return 42 }
	// Open built the index with the real hash; nothing has run in the
	// committer yet, so rebuilding here races with nothing.
	_ = db.bolt.View(func(tx *bolt.Tx) error { db.recent.build(tx); return nil })
}

func acceptFrom(t *testing.T, db *DB, key string, at time.Time) (*gateway.Acceptance, *gateway.IdempotencyRecord, error) {
	t.Helper()
	a := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, at)
	a.Idempotency.Key = key
	rec, err := db.Accept(t.Context(), a)
	return a, rec, err
}

// acceptKeys accepts n messages under new keys and returns key → id.
func acceptKeys(t *testing.T, db *DB, n int) map[string]string {
	t.Helper()
	first := map[string]string{}
	for range n {
		key := gatewaytest.NewID("key")
		a, _, err := acceptFrom(t, db, key, time.Now().UTC())
		require.NoError(t, err)
		first[key] = a.Message.ID
	}
	return first
}

// requireIndexed checks that the index holds exactly the records in
// idem_log (read in the committer, the index's only user).
func requireIndexed(t *testing.T, db *DB) {
	t.Helper()
	var n int
	require.NoError(t, db.commit.do(func(*wtx) error { n = db.recent.len(); return nil }))
	require.Equal(t, countKeys(t, db, bucketIdemLog), n, "index entries against idem_log's records")
}

// requireKept checks that every key in first is taken by its message.
func requireKept(t *testing.T, db *DB, first map[string]string) {
	t.Helper()
	for key, id := range first {
		_, rec, err := acceptFrom(t, db, key, time.Now().UTC())
		require.ErrorIs(t, err, gateway.ErrDuplicate, "key %s", key)
		require.NotNil(t, rec)
		assert.Equal(t, id, rec.MessageID, "key %s answers with its first message", key)
	}
}

// TestIdempotencyWithCollidingHashes: with every scope under one hash the
// index must still find each record, forget the ones deleted and take
// the key's new record after an expired one, and be rebuilt the same on
// reopening.
func TestIdempotencyWithCollidingHashes(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir})
	collide(db)
	now := time.Now().UTC()
	first := map[string]string{}
	for i := range 30 {
		at := now
		if i%3 == 0 {
			at = now.Add(-gateway.IdempotencyWindow - time.Minute) // expired
		}
		key := gatewaytest.NewID("key")
		a, _, err := acceptFrom(t, db, key, at)
		require.NoError(t, err)
		if i%3 != 0 {
			first[key] = a.Message.ID
		} else if i%2 == 0 {
			// The expired key is used again: a new record replaces it.
			a, _, err := acceptFrom(t, db, key, now)
			require.NoError(t, err, "an expired key is free")
			first[key] = a.Message.ID
		}
	}
	requireKept(t, db, first)
	n, err := db.sweepRecent(100)
	require.NoError(t, err)
	assert.Equal(t, 5, n, "the 5 expired records never reused are swept")
	requireKept(t, db, first)
	_, _, err = acceptFrom(t, db, gatewaytest.NewID("key"), now)
	require.NoError(t, err, "an unknown key is free under a taken hash")
	assert.Equal(t, len(first)+1, countKeys(t, db, bucketIdemLog))
	requireIndexed(t, db)

	require.NoError(t, db.Close())
	db = openDB(t, Options{Dir: dir})
	collide(db)
	requireKept(t, db, first)
	requireIndexed(t, db)
}

// TestIdempotencyAfterACrash: records only in the log when the process
// died are indexed again by the recovery that replays them.
func TestIdempotencyAfterACrash(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir, CheckpointInterval: noCheckpoint})
	first := acceptKeys(t, db, 20)
	crashed := copyStore(t, dir)
	db = openDB(t, Options{Dir: crashed})
	requireKept(t, db, first)
	requireIndexed(t, db)
}

// TestIdempotencyAfterARebuild: when a write fails after writing, the
// committer rebuilds its transaction from the log; the index must follow
// it, keeping the records of the group's other writes and dropping the
// failed one's.
func TestIdempotencyAfterARebuild(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir(), CheckpointInterval: noCheckpoint})
	first := acceptKeys(t, db, 5)
	// A write that adds a record, as Accept does, and then fails.
	spoiled := append(putTime(nil, time.Now()), idemKey("alice@a.example", "spoiled")...)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := db.commit.do(func(w *wtx) error {
			if err := w.Bucket(bucketIdemLog).Put(spoiled, encodeIdem(gateway.IdempotencyRecord{Sender: "alice@a.example", Key: "spoiled", MessageID: "x", CreatedAt: time.Now()})); err != nil {
				return err
			}
			db.recent.add(spoiled)
			panic("broken after writing")
		})
		assert.Error(t, err)
	})
	var mu sync.Mutex
	for range 5 {
		wg.Go(func() {
			key := gatewaytest.NewID("key")
			a, _, err := acceptFrom(t, db, key, time.Now().UTC())
			assert.NoError(t, err)
			if err == nil {
				mu.Lock()
				first[key] = a.Message.ID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	requireKept(t, db, first)
	_, _, err := acceptFrom(t, db, "spoiled", time.Now().UTC())
	require.NoError(t, err, "the failed write's record is gone, from the index too")
	assert.Equal(t, len(first)+1, countKeys(t, db, bucketIdemLog))
	requireIndexed(t, db)
}

// TestIdempotencyRecordsMoveBeyondTheBound: past maxRecent the oldest
// records move to the idem bucket (expired ones are dropped), and they
// still take their keys, also after reopening.
func TestIdempotencyRecordsMoveBeyondTheBound(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, Options{Dir: dir, maxRecent: 16})
	now := time.Now().UTC()
	first := map[string]string{}
	for i := range 60 {
		at := now.Add(time.Duration(i-60) * time.Second)
		if i < 4 {
			at = now.Add(-gateway.IdempotencyWindow - time.Minute)
		}
		key := gatewaytest.NewID("key")
		a, _, err := acceptFrom(t, db, key, at)
		require.NoError(t, err)
		if i >= 4 {
			first[key] = a.Message.ID
		}
	}
	require.Eventually(t, func() bool { return countKeys(t, db, bucketIdemLog) <= 16 }, 5*time.Second, 10*time.Millisecond,
		"the sweeper moves records out of idem_log")
	inLog, inIdem := countKeys(t, db, bucketIdemLog), countKeys(t, db, bucketIdem)
	assert.Equal(t, 16, inLog, "it moves down to the bound, not further")
	assert.Equal(t, len(first), inLog+inIdem, "expired records are dropped, not moved")
	requireKept(t, db, first)
	requireIndexed(t, db)

	require.NoError(t, db.Close())
	db = openDB(t, Options{Dir: dir, maxRecent: 16})
	requireKept(t, db, first)
	requireIndexed(t, db)
}

// TestRecordsOfEarlierVersions: a live record in the idem bucket takes its
// key; an expired one is replaced by a record in idem_log and deleted, and
// its entry in the time index of versions before is swept.
func TestRecordsOfEarlierVersions(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	now := time.Now().UTC()
	live := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	old := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now.Add(-gateway.IdempotencyWindow-time.Minute))
	putIdem(t, db, live)
	putIdem(t, db, old)
	// Earlier still, versions indexed records by time too.
	require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
		rec := old.Idempotency.Filled(&old.Message, old.Message.AcceptedAt)
		return tx.Bucket(bucketIdemTime).Put(append(putTime(nil, rec.CreatedAt), idemKey(rec.Sender, rec.Key)...), nil)
	}))
	requireKept(t, db, map[string]string{live.Idempotency.Key: live.Message.ID})
	a, _, err := acceptFrom(t, db, old.Idempotency.Key, now)
	require.NoError(t, err, "the expired key is free")
	requireKept(t, db, map[string]string{live.Idempotency.Key: live.Message.ID, old.Idempotency.Key: a.Message.ID})
	assert.Equal(t, 1, countKeys(t, db, bucketIdem), "the expired record is deleted")
	assert.Equal(t, 1, countKeys(t, db, bucketIdemLog))

	// The sweeper drops the old time index entry and nothing else.
	require.NoError(t, db.sweepTick())
	assert.Zero(t, countKeys(t, db, bucketIdemTime))
	requireKept(t, db, map[string]string{live.Idempotency.Key: live.Message.ID, old.Idempotency.Key: a.Message.ID})
}

// TestConcurrentUsesOfAKey: writers racing with the same keys, in the
// same groups, under one hash: each key is taken by exactly one message,
// and every other use is answered with that message.
func TestConcurrentUsesOfAKey(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	collide(db)
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = gatewaytest.NewID("key")
	}
	const writers = 6
	type use struct {
		id, answer string
		err        error
	}
	uses := make([][]use, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for _, key := range keys {
				a, rec, err := acceptFrom(t, db, key, time.Now().UTC())
				u := use{id: a.Message.ID, err: err}
				if rec != nil {
					u.answer = rec.MessageID
				}
				uses[w] = append(uses[w], u)
			}
		})
	}
	wg.Wait()
	for i, key := range keys {
		var winners []string
		for w := range writers {
			if uses[w][i].err == nil {
				winners = append(winners, uses[w][i].id)
			}
		}
		require.Len(t, winners, 1, "key %s", key)
		for w := range writers {
			if u := uses[w][i]; u.err != nil {
				require.ErrorIs(t, u.err, gateway.ErrDuplicate)
				assert.Equal(t, winners[0], u.answer, "key %s", key)
			}
		}
	}
	requireIndexed(t, db)
	assert.Equal(t, len(keys), countKeys(t, db, bucketIdemLog))
}
