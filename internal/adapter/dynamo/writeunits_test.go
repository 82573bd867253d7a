package dynamo

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awscost"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// countingQueue counts Enqueue calls: each is one SQS send for the tasks
// of one acceptance (up to ten per batch).
type countingQueue struct {
	sends atomic.Int64
	inner Enqueuer
}

func (q *countingQueue) Enqueue(ctx context.Context, tasks ...gateway.Task) error {
	q.sends.Add(1)
	return q.inner.Enqueue(ctx, tasks...)
}

// TestWriteUnits measures what a message costs in write units, and guards
// the figures docs/dynamodb.md gives, so that the design cannot grow
// costlier unnoticed.
func TestWriteUnits(t *testing.T) {
	e := newEnv(t)
	// awscost meters each write as AWS bills it, from the item before and
	// after (moto reports no consumed capacity for transactions and a
	// flat 1.0 for other writes); the bench's cost scenario uses it too.
	counter := awscost.New(awstest.Config(t))
	q := &countingQueue{inner: e.queue}
	s, err := New(dynamodb.NewFromConfig(counter.Instrument(awstest.Config(t))), Config{Table: e.names.Table, Blobs: e.blobs, Queue: q, Now: e.clock.Now})
	require.NoError(t, err)
	// take returns the write units since the last take, and the calls.
	take := func() (string, int) {
		t.Helper()
		u, _, err := counter.Take()
		require.NoError(t, err)
		require.Equal(t, u.WriteUnits, math.Trunc(u.WriteUnits), "whole write units")
		return fmt.Sprintf("%s (index %s)", u.CallList(), awscost.Num(u.IndexWriteUnits)), int(u.WriteUnits)
	}
	// The table's layout marker is written once in its life, not per
	// message (legacy.go).
	require.NoError(t, s.markLayout(ctx(t), e.clock.Now()))
	take()

	deliver := func(id string, recipients ...string) {
		now := gatewaytest.Now()
		var ups []gateway.RecipientStatus
		for _, r := range recipients {
			ups = append(ups, gateway.RecipientStatus{Address: r, Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "webhook"})
		}
		require.NoError(t, s.UpdateStatuses(ctx(t), id, ups))
	}
	// cost accepts a and delivers its push recipients; it returns the
	// write units of each phase and the SQS sends.
	cost := func(name string, a *gateway.Acceptance) (accept, delivery int, sends int64) {
		t.Helper()
		q.sends.Store(0)
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
		acc, accept := take()
		var push []string
		for _, tk := range a.Tasks {
			push = append(push, tk.Recipients...)
		}
		if len(push) > 0 {
			deliver(a.Message.ID, push...)
		}
		del, delivery := take()
		size := itemSize(e.rawItem(t, messageKey(a.Message.ID)))
		t.Logf("%-38s accept %2d WU %v; delivery %d WU %v; %d SQS send(s); message item %d bytes", name, accept, acc, delivery, del, q.sends.Load(), size)
		return accept, delivery, q.sends.Load()
	}

	pushAcc, pushDel, sends := cost("1 push recipient", newAcceptance("alice@a.example", "bob@b.example"))
	assert.Equal(t, 5, pushAcc, "accept of 1 push recipient")
	assert.Equal(t, 1, pushDel, "its delivery")
	assert.Equal(t, int64(1), sends)

	pullAcc, pullDel, sends := cost("1 pull recipient, delivered at accept", toInbox(newAcceptance("alice@a.example", "bob@b.example")))
	assert.Equal(t, 6, pullAcc, "accept of 1 pull recipient")
	assert.Zero(t, pullDel)
	assert.Zero(t, sends)

	threeAcc, threeDel, _ := cost("3 push recipients", newAcceptance("alice@a.example", "bob@b.example", "carol@c.example", "dave@d.example"))
	// With one recipient its item is its TO# entry; with several each item
	// has a gsi1 TO# entry (docs/dynamodb.md).
	assert.Equal(t, 1+2*2, threeAcc-pushAcc, "3 push recipients: each item and its TO# entry")
	assert.Equal(t, 2*1, threeDel-pushDel, "each further delivery")

	// Bytes that do not deflate (already compressed data, say) are paid by
	// the KB, once.
	big := newAcceptance("alice@a.example", "bob@b.example")
	big.Message.Raw = randomBytes(3000)
	bigAcc, _, _ := cost("1 push recipient, 3 KB dense body", big)
	bigUnits := int(awscost.WriteUnits(itemSize(e.rawItem(t, messageKey(big.Message.ID)))))
	assert.Equal(t, 4, bigUnits)
	assert.Equal(t, bigUnits-1, bigAcc-pushAcc, "a larger body costs its KB once")

	// JSON is stored deflated: 3 KB of it that repeats itself costs what
	// a small message does.
	wordy := newAcceptance("alice@a.example", "bob@b.example")
	wordy.Message.Raw = []byte(`{"payload":{"lines":[` + strings.Repeat(`{"sku":"A-1","qty":1,"note":"to the loading bay"},`, 60) + `{}]}}`)
	require.Greater(t, len(wordy.Message.Raw), 3000)
	wordyAcc, _, _ := cost("1 push recipient, 3 KB of JSON", wordy)
	assert.Equal(t, pushAcc, wordyAcc, "deflated, it fits the first KB")

	// A retry of the same key is a failed conditional put of the record
	// (billed like a write) and reads.
	_, err = s.Accept(ctx(t), retryOf(big))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	dup, dupUnits := take()
	t.Logf("%-38s %d WU %v", "duplicate", dupUnits, dup)
	assert.Equal(t, 1, dupUnits)

	require.NoError(t, s.AckInbox(ctx(t), "bob@b.example", getInboxID(t, s)))
	ack, ackUnits := take()
	t.Logf("%-38s %d WU %v", "ack of an inbox entry", ackUnits, ack)
	assert.Equal(t, 2, ackUnits)
	e.receiveAll(t, 200*time.Millisecond)
}

func getInboxID(t *testing.T, s *Store) string {
	t.Helper()
	entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 1, "")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	return entries[0].MessageID
}
