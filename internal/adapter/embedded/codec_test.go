package embedded

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

func TestTaskCodec(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 27, 11, 493_000_123, time.UTC)
	cases := []gateway.Task{
		{ID: gateway.TaskID("01a20b60-ee05-77c5-9a6d-d47ccc0f043e", "hook@localhost"), MessageID: "01a20b60-ee05-77c5-9a6d-d47ccc0f043e", Kind: gateway.TaskKind("local"), Recipients: []string{"hook@localhost"}, Attempt: 2, CreatedAt: at, NotBefore: at.Add(6 * time.Second)},
		{ID: "wf-7|step-3", MessageID: "another-message", Kind: gateway.TaskKind("workflow_step"), Token: "token\x00with bytes", Round: 4, CreatedAt: at},
		{ID: "m|b.example", MessageID: "m", Kind: gateway.TaskKind("remote"), Recipients: []string{"a@b.example", "c@b.example"}, Domain: "b.example", CreatedAt: time.Unix(0, -5).UTC()},
		{ID: "bare"},
	}
	for _, task := range cases {
		v := encodeTask(task)
		got, err := decodeTask([]byte(task.ID), v)
		require.NoError(t, err, task.ID)
		assert.Equal(t, task, got)

		legacy, err := json.Marshal(task)
		require.NoError(t, err)
		got, err = decodeTask([]byte(task.ID), legacy)
		require.NoError(t, err, "JSON of earlier versions is still read")
		assert.Equal(t, task.ID, got.ID)
		assert.True(t, task.CreatedAt.Equal(got.CreatedAt))

		for n := range len(v) { // every truncation is an error, never a panic
			_, err := decodeTask([]byte(task.ID), v[:n])
			assert.Error(t, err, "%s truncated to %d bytes", task.ID, n)
		}
	}
	_, err := decodeTask([]byte("x"), append(encodeTask(cases[0]), 0))
	assert.Error(t, err, "trailing bytes")
	_, err = decodeTask([]byte("x"), []byte{codecV1, 0, 0, 0xff, 0xff, 0xff, 0x0f})
	assert.Error(t, err, "a recipient count beyond the value")
}

func TestIdempotencyCodec(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 27, 11, 493_000_000, time.UTC)
	digest := "7def3ca859b8de3c746aee214aee7f33ff18d46c362f07dc9068444a287cda00"
	cases := []gateway.IdempotencyRecord{
		{Sender: "alice@localhost", Key: "55540fdc-fa86-4d65-b545-8eea19fe95a9", MessageID: "01a20b60-ee05-77c5-9a6d-d47ccc0f043e", Digest: digest, CreatedAt: at},
		{Sender: "Alice@Localhost", Key: "K", MessageID: "m", Digest: "7DEF" + digest[4:], CreatedAt: at},
		{Sender: "bob@b.example", Key: "k2", MessageID: "m2", Digest: "not-hex", CreatedAt: at},
	}
	for _, rec := range cases {
		key := idemKey(rec.Sender, rec.Key)
		v := encodeIdem(rec)
		got, err := decodeIdem(key, v)
		require.NoError(t, err)
		assert.Equal(t, rec, got)

		legacy, err := json.Marshal(rec)
		require.NoError(t, err)
		got, err = decodeIdem(key, legacy)
		require.NoError(t, err)
		assert.Equal(t, rec, got, "JSON of earlier versions is still read")

		for n := range len(v) {
			_, err := decodeIdem(key, v[:n])
			assert.Error(t, err, "truncated to %d bytes", n)
		}
	}
	assert.Less(t, len(encodeIdem(cases[0])), 100, "the compact form is the point")
}

func TestStatusesCodec(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 27, 12, 398_106_151, time.UTC)
	later := at.Add(2 * time.Second)
	cases := [][]gateway.RecipientStatus{
		{{Address: "hook@localhost", Status: gateway.StateRetrying, Attempts: 2, UpdatedAt: at, NextRetry: &later, ErrorCode: "RECIPIENT_UNAVAILABLE", ErrorMessage: "webhook not reachable"}},
		{
			{Address: "a@b.example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "webhook", Response: json.RawMessage(`{"ok":true}`)},
			{Address: "C@b.example", Status: gateway.StateQueued, UpdatedAt: at},
		},
		{},
	}
	for _, rs := range cases {
		v := encodeStatuses(rs)
		got, err := decodeStatuses(v)
		require.NoError(t, err)
		assert.Equal(t, rs, got)

		legacy, err := json.Marshal(rs)
		require.NoError(t, err)
		got, err = decodeStatuses(legacy)
		require.NoError(t, err)
		require.Len(t, got, len(rs), "JSON of earlier versions is still read")

		for n := range len(v) {
			_, err := decodeStatuses(v[:n])
			assert.Error(t, err, "truncated to %d bytes", n)
		}
	}
}

func TestMetaCodec(t *testing.T) {
	m := messageMeta{Sender: "alice@a.example", Recipients: []string{"bob@b.example", "carol@b.example"}, Subject: "hi", Origin: gateway.Origin("local"), AcceptedAt: time.Date(2026, 11, 24, 2, 27, 11, 493_000_000, time.UTC)}
	v := encodeMeta(m)
	got, err := decodeMeta(v)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	legacy, err := json.Marshal(m)
	require.NoError(t, err)
	got, err = decodeMeta(legacy)
	require.NoError(t, err)
	assert.Equal(t, m, got, "JSON of earlier versions is still read")
	for n := range len(v) {
		_, err := decodeMeta(v[:n])
		assert.Error(t, err, "truncated to %d bytes", n)
	}
}

// TestReadsRecordsOfEarlierVersions: a data directory written before the
// compact records (every value JSON) keeps working — statuses, listings,
// duplicate detection and the queue read it.
func TestReadsRecordsOfEarlierVersions(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, Options{Dir: t.TempDir()})
	at := time.Now().UTC().Truncate(time.Millisecond)
	a := gatewaytest.NewAcceptance(gatewaytest.NewID("old"), "alice@a.example", []string{"bob@b.example"}, at)
	_, err := db.Accept(ctx, a)
	require.NoError(t, err)

	// Rewrite every record the way earlier versions stored it.
	require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
		id := []byte(a.Message.ID)
		meta, err := json.Marshal(messageMeta{Sender: a.Message.Sender, Recipients: a.Message.Recipients, Subject: a.Message.Subject, Origin: a.Message.Origin, AcceptedAt: at})
		require.NoError(t, err)
		v := binary.AppendUvarint(nil, uint64(len(meta)))
		v = append(append(v, meta...), a.Message.Raw...)
		require.NoError(t, tx.Bucket(bucketMessages).Put(id, v))
		st, err := json.Marshal(a.Statuses)
		require.NoError(t, err)
		require.NoError(t, tx.Bucket(bucketStatuses).Put(id, st))
		rec, err := json.Marshal(a.Idempotency)
		require.NoError(t, err)
		require.NoError(t, tx.Bucket(bucketIdem).Put(idemKey(a.Idempotency.Sender, a.Idempotency.Key), rec))
		tasks := tx.Bucket(bucketTasks)
		n := 0
		require.NoError(t, tasks.ForEach(func(k, v []byte) error {
			task, err := decodeTask(k, v[timeLen:])
			require.NoError(t, err)
			body, err := json.Marshal(task)
			require.NoError(t, err)
			n++
			return tasks.Put(k, append(clone(v[:timeLen]), body...))
		}))
		require.Equal(t, len(a.Tasks), n)
		return nil
	}))

	rs, err := db.GetStatuses(ctx, a.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, a.Statuses[0].Address, rs[0].Address)
	list, _, err := db.ListMessages(ctx, gateway.MessageQuery{Sender: "alice@a.example"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, a.Message.Subject, list[0].Subject)
	again := gatewaytest.NewAcceptance(gatewaytest.NewID("again"), "alice@a.example", []string{"bob@b.example"}, at)
	again.Idempotency = a.Idempotency
	earlier, err := db.Accept(ctx, again)
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, a.Message.ID, earlier.MessageID)
	got, err := db.Receive(ctx, 10, 0)
	require.NoError(t, err)
	require.Len(t, got, len(a.Tasks))
	assert.Equal(t, a.Tasks[0].ID, got[0].ID)
	assert.Equal(t, a.Tasks[0].Recipients, got[0].Recipients)
}

// TestSettleInOneCommit: UpdateAndAck and UpdateAndRetry have the effect of
// UpdateStatuses followed by Ack or Retry, in one commit, and touch
// nothing when the message is gone.
func TestSettleInOneCommit(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, Options{Dir: t.TempDir(), LeaseTimeout: testLease})
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := gatewaytest.NewAcceptance(gatewaytest.NewID("settle"), "alice@a.example", []string{"bob@b.example", "carol@b.example"}, now)
	_, err := db.Accept(ctx, a)
	require.NoError(t, err)
	tasks, err := db.Receive(ctx, 10, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 2)

	commits := db.CommitStats().Commits
	delivered := gateway.RecipientStatus{Address: tasks[0].Recipients[0], Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "webhook"}
	require.NoError(t, db.UpdateAndAck(ctx, a.Message.ID, []gateway.RecipientStatus{delivered}, tasks[0]))
	next := now.Add(time.Hour)
	retrying := gateway.RecipientStatus{Address: tasks[1].Recipients[0], Status: gateway.StateRetrying, Attempts: 1, UpdatedAt: now, NextRetry: &next}
	tasks[1].Attempt = 1
	require.NoError(t, db.UpdateAndRetry(ctx, a.Message.ID, []gateway.RecipientStatus{retrying}, tasks[1], next))
	assert.Equal(t, commits+2, db.CommitStats().Commits, "one commit each")

	rs, err := db.GetStatuses(ctx, a.Message.ID)
	require.NoError(t, err)
	byAddr := map[string]gateway.RecipientStatus{}
	for _, r := range rs {
		byAddr[r.Address] = r
	}
	assert.Equal(t, gateway.StateDelivered, byAddr[delivered.Address].Status)
	assert.Equal(t, gateway.StateRetrying, byAddr[retrying.Address].Status)
	assert.Equal(t, 1, countKeys(t, db, bucketTasks), "the acked task is gone, the retried one stays")
	require.NoError(t, db.commit.checkpointNow())
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTasks).Get([]byte(tasks[1].ID))
		require.NotNil(t, v)
		assert.Equal(t, putTime(nil, next), v[:timeLen], "due at the retry time")
		got, err := decodeTask([]byte(tasks[1].ID), v[timeLen:])
		require.NoError(t, err)
		assert.Equal(t, 1, got.Attempt)
		return nil
	}))

	// A message that is gone: nothing is written, the task stays.
	err = db.UpdateAndAck(ctx, "no-such-message", []gateway.RecipientStatus{delivered}, tasks[1])
	require.ErrorIs(t, err, gateway.ErrNotFound)
	assert.Equal(t, 1, countKeys(t, db, bucketTasks))
}
