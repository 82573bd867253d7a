package dynamo

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// The keys of an idempotency record in each layout, spelled out rather
// than built by the code under test.
func spreadRecordKey(sender, k string) item { return key("IDK#"+k, "FROM#"+strings.ToLower(sender)) }
func senderRecordKey(sender, k string) item {
	return key("IDEM#"+strings.ToLower(sender), "KEY#"+k)
}

// TestIdempotencyRecordsAreSpread: a sender's records are not in one
// partition of its own (every submission of a busy sender would write it)
// but each in the partition of its key, and they carry no tasks (the
// message item does); the semantics stay per (sender, key).
func TestIdempotencyRecordsAreSpread(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	sender := strings.ToLower(gatewaytest.NewID("alice")) + "@a.example"
	var first []*gateway.Acceptance
	for range 3 {
		a := newAcceptance(sender, "bob@b.example", "carol@c.example")
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
		first = append(first, a)
	}
	assertSameTasks(t, append(first[0].Tasks, append(first[1].Tasks, first[2].Tasks...)...), e.receiveAtLeast(t, 6, 20*time.Second))

	out, err := e.client.Query(ctx(t), &dynamodb.QueryInput{
		TableName:                 aws.String(e.names.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: item{":pk": str("IDEM#" + sender)},
		ConsistentRead:            aws.Bool(true),
	})
	require.NoError(t, err)
	assert.Zero(t, out.Count, "nothing in a partition of the sender's")
	for _, a := range first {
		rec := e.rawItem(t, spreadRecordKey(sender, a.Idempotency.Key))
		require.NotEmpty(t, rec, "the record is in its key's partition")
		assert.Equal(t, a.Message.ID, getStr(rec, aMsgID))
		assert.NotContains(t, rec, "tasks", "the tasks are not on the record")
	}

	// A repeat by the same sender finds the first record; the same key
	// from another sender is another submission.
	dup, err := s.Accept(ctx(t), retryOf(first[1]))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, first[1].Message.ID, dup.MessageID)
	other := newAcceptance("carol@c.example", "bob@b.example")
	other.Idempotency.Key = first[1].Idempotency.Key
	dup, err = s.Accept(ctx(t), other)
	require.NoError(t, err)
	assert.Nil(t, dup)
	assert.Equal(t, other.Message.ID, getStr(e.rawItem(t, spreadRecordKey("carol@c.example", other.Idempotency.Key)), aMsgID))
	assert.Equal(t, first[1].Message.ID, getStr(e.rawItem(t, spreadRecordKey(sender, first[1].Idempotency.Key)), aMsgID))
	e.receiveAll(t, 300*time.Millisecond)
}

// asOldRecord moves a's idempotency record to where the layout before
// records were spread kept it (the sender's partition), with its tasks on
// it as that layout wrote them.
func asOldRecord(t *testing.T, e *env, a *gateway.Acceptance) {
	t.Helper()
	sender, k := a.Idempotency.Sender, a.Idempotency.Key
	rec := e.rawItem(t, spreadRecordKey(sender, k))
	if len(rec) == 0 {
		rec = e.rawItem(t, senderRecordKey(sender, k))
	}
	require.NotEmpty(t, rec, "a's record")
	_, err := e.client.DeleteItem(ctx(t), &dynamodb.DeleteItemInput{TableName: &e.names.Table, Key: spreadRecordKey(sender, k)})
	require.NoError(t, err)
	for name, v := range senderRecordKey(sender, k) {
		rec[name] = v
	}
	if len(a.Tasks) > 0 {
		tasks, err := json.Marshal(a.Tasks)
		require.NoError(t, err)
		rec["tasks"] = str(string(tasks))
	}
	e.putRaw(t, rec)
}

// TestIdempotencyRecordsOfTheOldLayout: a record written before records
// were spread (in the sender's partition, carrying the tasks) still
// answers a repeated submission with the first message, is finished or
// taken over as a record of the new layout would be, and holds no other
// sender's key.
func TestIdempotencyRecordsOfTheOldLayout(t *testing.T) {
	cases := []struct {
		name string
		// crash: how the first Accept ended ("" for completed, else
		// "claim" or "commit": it died right after that step, and its
		// deadline passed).
		crash string
		// stored: the retry is answered with the first message (else the
		// retry's own message is accepted).
		stored bool
		// queued: the retry queues the first acceptance's tasks.
		queued bool
	}{
		{"completed", "", true, false},
		{"owner died after storing its message", "commit", true, true},
		{"owner died before storing its message", "claim", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := newAcceptance(strings.ToLower(gatewaytest.NewID("alice"))+"@a.example", "bob@b.example", "carol@c.example")
			if tc.crash == "" {
				_, err := e.store(t).Accept(ctx(t), a)
				require.NoError(t, err)
			} else {
				crashed(t, e, a, tc.crash == "commit")
			}
			e.receiveAll(t, 300*time.Millisecond)
			asOldRecord(t, e, a)
			if tc.crash != "" {
				e.mutate(t, senderRecordKey(a.Idempotency.Sender, a.Idempotency.Key), func(it item) { it[aPending] = num(1) })
			}

			s := e.store(t)
			retry := retryOf(a)
			dup, err := s.Accept(ctx(t), retry)
			if tc.stored {
				require.ErrorIs(t, err, gateway.ErrDuplicate)
				assert.Equal(t, a.Message.ID, dup.MessageID, "the first message's id")
				assert.Empty(t, e.rawItem(t, messageKey(retry.Message.ID)), "the retry stores nothing of its own")
				assert.Equal(t, len(a.Message.Recipients), countRecipientItems(t, e, a.Message.ID))
			} else {
				require.NoError(t, err)
				assert.Nil(t, dup)
				_, err = s.GetMessage(ctx(t), a.Message.ID)
				assert.ErrorIs(t, err, gateway.ErrNotFound, "the dead owner's message id is void")
				again, err := s.Accept(ctx(t), retryOf(a))
				require.ErrorIs(t, err, gateway.ErrDuplicate)
				assert.Equal(t, retry.Message.ID, again.MessageID, "the key is the retry's now")
			}
			if tc.queued {
				assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
			} else if tc.stored {
				assert.Empty(t, e.receiveAll(t, 300*time.Millisecond), "nothing is queued again")
			}

			// The same key from another sender is another submission.
			other := newAcceptance("dave@d.example", "bob@b.example")
			other.Idempotency.Key = a.Idempotency.Key
			dup, err = s.Accept(ctx(t), other)
			require.NoError(t, err)
			assert.Nil(t, dup)
			e.receiveAll(t, 300*time.Millisecond)
		})
	}
}

// TestIdempotencyRecordsOfTheOldLayoutAfterTheirWindow: once no record of
// the old layout can be live (the table's marker is older than a window),
// Accept no longer reads the sender's partition; before, an expired record
// there holds nothing.
func TestIdempotencyRecordsOfTheOldLayoutAfterTheirWindow(t *testing.T) {
	e := newEnv(t)
	a := newAcceptance(strings.ToLower(gatewaytest.NewID("alice"))+"@a.example", "bob@b.example")
	_, err := e.store(t).Accept(ctx(t), a)
	require.NoError(t, err)
	e.receiveAll(t, 300*time.Millisecond)
	asOldRecord(t, e, a)
	e.mutate(t, senderRecordKey(a.Idempotency.Sender, a.Idempotency.Key), func(it item) { it[aTTL] = num(e.clock.Now().Unix()) })

	retry := retryOf(a)
	dup, err := e.store(t).Accept(ctx(t), retry)
	require.NoError(t, err, "an expired record of the old layout holds no key")
	assert.Nil(t, dup)

	// The marker as a table that changed layout more than a window ago has it.
	e.mutate(t, layoutMarker, func(it item) {
		it[aSince] = num(e.clock.Now().Add(-gateway.IdempotencyWindow - legacyOverlap - time.Second).Unix())
	})
	oldPlace := func(in any) error {
		if g, ok := in.(*dynamodb.GetItemInput); ok && pkHas(g.Key, "IDEM#") {
			return errInjected
		}
		return nil
	}
	s := e.faultyStore(t, faults{fail: oldPlace})
	fresh := newAcceptance(a.Idempotency.Sender, "bob@b.example")
	_, err = s.Accept(ctx(t), fresh)
	require.NoError(t, err, "the old place is not read")
	_, err = s.Accept(ctx(t), retryOf(fresh))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	e.receiveAll(t, 300*time.Millisecond)
}

// TestMarkTableNew: a table that says it never held the old layout is not
// read for it, and saying so again changes nothing.
func TestMarkTableNew(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, MarkTableNew(ctx(t), e.client, e.names.Table))
	marker := e.rawItem(t, layoutMarker)
	since, ok := getNum(marker, aSince)
	require.True(t, ok)
	assert.Zero(t, since, "no old item is live")

	oldPlace := func(in any) error {
		if g, ok := in.(*dynamodb.GetItemInput); ok && pkHas(g.Key, "IDEM#") {
			return errInjected
		}
		return nil
	}
	a := newAcceptance("alice@a.example", "bob@b.example")
	_, err := e.faultyStore(t, faults{fail: oldPlace}).Accept(ctx(t), a)
	require.NoError(t, err, "the old place is not read")
	e.receiveAll(t, 300*time.Millisecond)

	require.NoError(t, MarkTableNew(ctx(t), e.client, e.names.Table))
	assert.Equal(t, marker, e.rawItem(t, layoutMarker), "an existing marker stays")
}
