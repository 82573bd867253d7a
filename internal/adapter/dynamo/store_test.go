package dynamo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// rawItem reads an item as stored, bypassing the adapter.
func (e *env) rawItem(t *testing.T, k item) item {
	t.Helper()
	out, err := e.client.GetItem(ctx(t), &dynamodb.GetItemInput{TableName: aws.String(e.names.Table), Key: k, ConsistentRead: aws.Bool(true)})
	require.NoError(t, err)
	return out.Item
}

// receiveAll takes every task due within wait and acks it, so that a
// later enqueue of the same id would show up again.
func (e *env) receiveAll(t *testing.T, wait time.Duration) []gateway.Task {
	t.Helper()
	var out []gateway.Task
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		tasks, err := e.queue.Receive(ctx(t), 100, min(left, 200*time.Millisecond))
		require.NoError(t, err)
		for _, tk := range tasks {
			require.NoError(t, e.queue.Ack(ctx(t), tk))
			tk.Lease = ""
			out = append(out, tk)
		}
	}
}

// receiveAtLeast receives until n tasks came (or within passed), then a
// little longer to catch any extra copy: robust on a loaded machine where
// moto answers slowly.
func (e *env) receiveAtLeast(t *testing.T, n int, within time.Duration) []gateway.Task {
	t.Helper()
	var out []gateway.Task
	deadline := time.Now().Add(within)
	for len(out) < n && time.Now().Before(deadline) {
		out = append(out, e.receiveAll(t, 200*time.Millisecond)...)
	}
	return append(out, e.receiveAll(t, 300*time.Millisecond)...)
}

func taskIDs(ts []gateway.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func assertSameTasks(t *testing.T, want, got []gateway.Task) {
	t.Helper()
	require.ElementsMatch(t, taskIDs(want), taskIDs(got))
	by := map[string]gateway.Task{}
	for _, g := range got {
		by[g.ID] = g
	}
	for _, w := range want {
		g := by[w.ID]
		assert.Equal(t, w.MessageID, g.MessageID)
		assert.Equal(t, w.Recipients, g.Recipients)
		assert.Equal(t, w.Kind, g.Kind)
		assert.True(t, w.CreatedAt.Equal(g.CreatedAt), "created_at %v, want %v", g.CreatedAt, w.CreatedAt)
		assert.True(t, w.NotBefore.Equal(g.NotBefore))
	}
}

func newAcceptance(sender string, recipients ...string) *gateway.Acceptance {
	return gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), sender, recipients, gatewaytest.Now())
}

// retryOf is a client's retry of a: same sender and key, but a new
// acceptance (a new generated id, new tasks), as the service builds it.
func retryOf(a *gateway.Acceptance) *gateway.Acceptance {
	r := newAcceptance(a.Message.Sender, a.Message.Recipients...)
	r.Idempotency.Key = a.Idempotency.Key
	return r
}

// toInbox makes the first recipient a pull recipient delivered by Accept.
func toInbox(a *gateway.Acceptance) *gateway.Acceptance {
	at := a.Message.AcceptedAt
	a.Statuses[0] = gateway.RecipientStatus{Address: a.Statuses[0].Address, Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "inbox"}
	a.Tasks = a.Tasks[1:]
	a.Inbox = []string{strings.ToLower(a.Message.Recipients[0])}
	return a
}

func TestLargeBodyGoesThroughS3(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := toInbox(newAcceptance("alice@a.example", "bob@b.example"))
	a.Message.Raw = []byte(`{"payload":"` + strings.Repeat("x", 500<<10) + `"}`)
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)

	stored := e.rawItem(t, messageKey(a.Message.ID))
	assert.NotContains(t, stored, aRaw, "the body is not inline")
	assert.True(t, s3blob.IsRef(getStr(stored, aBlob)), "the item holds an S3 reference: %q", getStr(stored, aBlob))
	assert.Less(t, itemSize(stored), 2<<10, "the item stays small")

	m, err := s.GetMessage(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, len(a.Message.Raw), len(m.Raw))
	assert.Equal(t, string(a.Message.Raw), string(m.Raw))

	entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, string(a.Message.Raw), string(entries[0].Raw), "inbox reads the body from S3 too")
}

func TestBodyAtInlineLimitStaysInline(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	// Random bytes do not deflate: the body is stored as it is.
	a.Message.Raw = make([]byte, awsres.MaxItemBytes)
	_, err := rand.Read(a.Message.Raw)
	require.NoError(t, err)
	_, err = s.Accept(ctx(t), a)
	require.NoError(t, err)
	stored := e.rawItem(t, messageKey(a.Message.ID))
	assert.Len(t, getBin(stored, aRaw), awsres.MaxItemBytes)
	assert.NotContains(t, stored, aRawZ)
	assert.NotContains(t, stored, aBlob)
	m, err := s.GetMessage(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, a.Message.Raw, m.Raw)
}

// TestBodyIsStoredDeflated: a body that deflates is stored so, smaller
// (fewer write units), and every reader gets the original bytes back.
func TestBodyIsStoredDeflated(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := toInbox(newAcceptance("alice@a.example", "bob@b.example"))
	a.Message.Raw = []byte(`{"version":"1.0","message_id":"` + a.Message.ID + `","payload":{"items":[` +
		strings.Repeat(`{"sku":"A-1","qty":1,"note":"deliver to the loading bay"},`, 12) + `{}]}}`)
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)

	stored := e.rawItem(t, messageKey(a.Message.ID))
	assert.NotContains(t, stored, aRaw)
	z := getBin(stored, aRawZ)
	require.NotNil(t, z)
	assert.Less(t, len(z), len(a.Message.Raw)/2, "JSON deflates to half or less")

	m, err := s.GetMessage(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, string(a.Message.Raw), string(m.Raw))
	entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, string(a.Message.Raw), string(entries[0].Raw))
}

func TestLargeBodyWithoutBlobStoreIsRefused(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, func(c *Config) { c.Blobs = nil })
	a := newAcceptance("alice@a.example", "bob@b.example")
	a.Message.Raw = []byte(strings.Repeat("z", awsres.MaxItemBytes+1))
	_, err := s.Accept(ctx(t), a)
	require.ErrorIs(t, err, ErrBodyTooLarge)
	_, err = s.GetMessage(ctx(t), a.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "nothing was stored")
	assert.Empty(t, e.receiveAll(t, 200*time.Millisecond))
}

func TestCrashBetweenMessageAndEnqueue(t *testing.T) {
	e := newEnv(t)
	crashing := e.store(t)
	crashing.afterCommit = func() error { return errors.New("simulated crash") }
	a := newAcceptance("alice@a.example", "bob@b.example", "carol@c.example", "dave@d.example")
	toInbox(a) // one recipient needs no task: the stored tasks are exactly a.Tasks
	_, err := crashing.Accept(ctx(t), a)
	require.ErrorContains(t, err, "simulated crash")
	assert.Empty(t, e.receiveAll(t, 200*time.Millisecond), "the crash came before the enqueue")

	rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))
	pend, ok := getNum(rec, aPending)
	require.True(t, ok, "the record carries the owner's deadline")
	assert.Greater(t, pend, e.clock.Now().UnixMilli())
	assert.NotContains(t, rec, aTasks, "the tasks are not on the record")
	stored, err := decodeTasks(a.Message.ID, e.rawItem(t, messageKey(a.Message.ID)))
	require.NoError(t, err)
	assertSameTasks(t, a.Tasks, stored)

	// Another process gets the client's retry.
	s := e.store(t)
	retry := retryOf(a)

	// Before the owner's deadline the first Accept might still enqueue: the
	// retry waits rather than answering "duplicate" for tasks nobody queued.
	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	_, err = s.Accept(short, retry)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, gateway.ErrDuplicate)
	assert.Empty(t, e.receiveAll(t, 100*time.Millisecond))

	// Past the grace period the retry takes the enqueue over.
	e.clock.Advance(DefaultEnqueueGrace + time.Second)
	got, err := s.Accept(ctx(t), retry)
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	require.NotNil(t, got)
	assert.Equal(t, a.Message.ID, got.MessageID)
	assert.Equal(t, a.Idempotency.Digest, got.Digest)
	assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))

	// The recipient items, written after the enqueue, are what tells later
	// retries that the tasks are queued.
	assert.Equal(t, len(a.Message.Recipients), countRecipientItems(t, e, a.Message.ID))
	_, err = s.GetMessage(ctx(t), retry.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "the retry's own message is not stored")

	// Further retries are plain duplicates: nothing is queued again.
	_, err = s.Accept(ctx(t), retryOf(a))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Empty(t, e.receiveAll(t, 300*time.Millisecond))
}

// failingQueue fails Enqueue while fail is set.
type failingQueue struct {
	fail  atomic.Bool
	inner Enqueuer
}

func (q *failingQueue) Enqueue(ctx context.Context, tasks ...gateway.Task) error {
	if q.fail.Load() {
		return errors.New("queue unavailable")
	}
	return q.inner.Enqueue(ctx, tasks...)
}

func TestEnqueueFailureIsTakenOverByTheRetry(t *testing.T) {
	e := newEnv(t)
	q := &failingQueue{inner: e.queue}
	q.fail.Store(true)
	s := e.store(t, func(c *Config) { c.Queue = q })
	a := newAcceptance("alice@a.example", "bob@b.example", "carol@c.example")
	_, err := s.Accept(ctx(t), a)
	require.ErrorContains(t, err, "queue unavailable")

	// The failed Accept expired its deadline on the way out, so the retry
	// needs no grace period.
	rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))
	pend, ok := getNum(rec, aPending)
	require.True(t, ok)
	assert.LessOrEqual(t, pend, e.clock.Now().UnixMilli())

	// The queue is still down: the retry fails too, and says so.
	_, err = s.Accept(ctx(t), retryOf(a))
	require.ErrorContains(t, err, "queue unavailable")
	assert.NotErrorIs(t, err, gateway.ErrDuplicate)

	q.fail.Store(false)
	got, err := s.Accept(ctx(t), retryOf(a))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, a.Message.ID, got.MessageID)
	assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
}

func TestDuplicateWaitsForTheFirstEnqueue(t *testing.T) {
	e := newEnv(t)
	slow := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	release, first := pausedAccept(t, slow, &slow.afterCommit, a)

	type answer struct {
		rec *gateway.IdempotencyRecord
		err error
	}
	second := make(chan answer, 1)
	go func() {
		rec, err := e.store(t).Accept(ctx(t), retryOf(a))
		second <- answer{rec, err}
	}()
	select {
	case ans := <-second:
		t.Fatalf("the retry answered before the first Accept enqueued: %v", ans.err)
	case <-time.After(400 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-first)
	ans := <-second
	require.ErrorIs(t, ans.err, gateway.ErrDuplicate)
	assert.Equal(t, a.Message.ID, ans.rec.MessageID)
	assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
}

func TestConcurrentAcceptsOfOneKey(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	const n = 10
	key := "key-" + gatewaytest.NewID("shared")
	accs := make([]*gateway.Acceptance, n)
	for i := range accs {
		accs[i] = toInbox(newAcceptance("alice@a.example", "bob@b.example", "carol@c.example"))
		accs[i].Idempotency.Key = key
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range accs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Accept(ctx(t), accs[i])
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two winners")
			winner = i
			continue
		}
		require.ErrorIs(t, err, gateway.ErrDuplicate)
	}
	require.NotEqual(t, -1, winner)

	// Exactly one message, one inbox entry, one set of tasks.
	sent, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Sender: "alice@a.example"})
	require.NoError(t, err)
	require.Len(t, sent, 1)
	assert.Equal(t, accs[winner].Message.ID, sent[0].MessageID)
	entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, accs[winner].Message.ID, entries[0].MessageID)
	assertSameTasks(t, accs[winner].Tasks, e.receiveAtLeast(t, len(accs[winner].Tasks), 20*time.Second))
}

func TestTTLAttributes(t *testing.T) {
	e := newEnv(t)
	const retention = 48 * time.Hour
	s := e.store(t, func(c *Config) { c.Retention = retention })
	a := toInbox(newAcceptance("alice@a.example", "bob@b.example", "carol@c.example"))
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)

	exp := func(it item) int64 {
		t.Helper()
		v, ok := getNum(it, awsres.AttrTTL)
		require.True(t, ok, "item %s/%s has no TTL", getStr(it, aPK), getStr(it, aSK))
		return v
	}
	at := a.Message.AcceptedAt
	assert.Equal(t, ttl(a.Idempotency.CreatedAt.Add(gateway.IdempotencyWindow)), exp(e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))), "idempotency record: 7 days")
	assert.Equal(t, ttl(at.Add(retention)), exp(e.rawItem(t, messageKey(a.Message.ID))), "message: retention")
	for _, r := range a.Message.Recipients {
		assert.Equal(t, ttl(at.Add(retention)), exp(e.rawItem(t, e.recipientItemKey(t, a.Message.ID, r))), "recipient %s: retention", r)
	}

	ag := &gateway.Agent{Address: "bob@b.example", DeliveryMode: gateway.ModePull, APIKeyHash: "abc", CreatedAt: gatewaytest.Now()}
	require.NoError(t, s.PutAgent(ctx(t), ag))
	assert.NotContains(t, e.rawItem(t, agentKey(ag.Address)), awsres.AttrTTL, "agents do not expire")
	assert.NotContains(t, e.rawItem(t, apiKeyKey(ag.APIKeyHash)), awsres.AttrTTL)

	// Past its retention a message is gone for every reader, even before
	// DynamoDB's TTL (which lags) deletes it.
	old := toInbox(gatewaytest.NewAcceptance(gatewaytest.NewID("old"), "alice@a.example", []string{"bob@b.example"}, gatewaytest.Now().Add(-retention-time.Minute)))
	_, err = s.Accept(ctx(t), old)
	require.NoError(t, err)
	_, err = s.GetMessage(ctx(t), old.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = s.GetStatuses(ctx(t), old.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, a.Message.ID, entries[0].MessageID)
	list, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Sender: "alice@a.example"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, a.Message.ID, list[0].MessageID)
}

func TestManyRecipientsAfterACrash(t *testing.T) {
	e := newEnv(t)
	crashing := e.store(t)
	crashing.afterCommit = func() error { return errors.New("simulated crash") }
	var rcpts []string
	for i := range 120 {
		rcpts = append(rcpts, fmt.Sprintf("r%03d@b.example", i))
	}
	a := newAcceptance("alice@a.example", rcpts...)
	// More than a transaction could hold (100 items). The last recipient is
	// a pull recipient, so its inbox entry is one of the items the crash
	// leaves unwritten.
	last := len(rcpts) - 1
	at := a.Message.AcceptedAt
	a.Statuses[last] = gateway.RecipientStatus{Address: rcpts[last], Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "inbox"}
	a.Tasks = a.Tasks[:last]
	a.Inbox = []string{rcpts[last]}
	_, err := crashing.Accept(ctx(t), a)
	require.ErrorContains(t, err, "simulated crash")

	// No recipient item exists, yet every status reads back, in order,
	// from the message item.
	s := e.store(t)
	st, err := s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, len(rcpts))
	for i := range rcpts {
		assert.Equal(t, rcpts[i], st[i].Address)
	}
	assert.Equal(t, gateway.StateDelivered, st[last].Status)
	assert.Less(t, countRecipientItems(t, e, a.Message.ID), len(rcpts))

	// A worker's update of a recipient whose item is not written yet works.
	now := gatewaytest.Now()
	require.NoError(t, s.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{{Address: rcpts[110], Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now}}))
	st, err = s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, len(rcpts))
	assert.Equal(t, rcpts[110], st[110].Address, "it keeps its place")
	assert.Equal(t, gateway.StateDelivered, st[110].Status)

	// The retry's take-over writes the rest and queues the tasks.
	e.clock.Advance(DefaultEnqueueGrace + time.Second)
	_, err = s.Accept(ctx(t), retryOf(a))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, len(rcpts), countRecipientItems(t, e, a.Message.ID))
	assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
	st, err = s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[110].Status, "the take-over did not overwrite the worker's update")

	entries, _, err := s.ListInbox(ctx(t), rcpts[last], 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	list, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Recipient: rcpts[last]})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Len(t, list[0].Statuses, len(rcpts))
}

func TestManyRecipients(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	var rcpts []string
	for i := range 101 {
		rcpts = append(rcpts, fmt.Sprintf("r%03d@b.example", i))
	}
	a := newAcceptance("alice@a.example", rcpts...)
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)
	assert.Equal(t, len(rcpts), countRecipientItems(t, e, a.Message.ID))
	assertSameTasks(t, a.Tasks, e.receiveAtLeast(t, len(a.Tasks), 20*time.Second))
}

func countRecipientItems(t *testing.T, e *env, id string) int {
	t.Helper()
	out, err := e.client.Query(ctx(t), &dynamodb.QueryInput{
		TableName:                 aws.String(e.names.Table),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :r)"),
		ExpressionAttributeValues: item{":pk": str(pfxMessage + id), ":r": str(pfxRecipient)},
		ConsistentRead:            aws.Bool(true),
		Select:                    "COUNT",
	})
	require.NoError(t, err)
	n := int(out.Count)
	// The items that are their own TO# entries.
	ref := e.ref(t, id)
	seen := map[string]bool{}
	for _, r := range ref.to {
		k := ref.recipientKey(r)
		if id := itemID(k); !seen[id] && getStr(k, aSK) != pfxRecipient+strings.ToLower(r) {
			seen[id] = true
			if len(e.rawItem(t, k)) > 0 {
				n++
			}
		}
	}
	return n
}

// ref is what locates the recipient items of the stored message id.
func (e *env) ref(t *testing.T, id string) messageRef {
	t.Helper()
	msg := e.rawItem(t, messageKey(id))
	require.NotEmpty(t, msg, "message %s", id)
	ref, err := refOf(id, msg)
	require.NoError(t, err)
	return ref
}

// recipientItemKey is the key of the item of id's recipient addr.
func (e *env) recipientItemKey(t *testing.T, id, addr string) item {
	t.Helper()
	return e.ref(t, id).recipientKey(addr)
}

func TestStatusOfAnAddedRecipient(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example", "carol@c.example")
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)
	now := gatewaytest.Now()
	require.NoError(t, s.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{
		{Address: "Zed@Z.example", Status: gateway.StateFailed, Attempts: 1, UpdatedAt: now},
		{Address: "bob@b.example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now},
	}))
	st, err := s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 3)
	assert.Equal(t, []string{"bob@b.example", "carol@c.example", "Zed@Z.example"}, []string{st[0].Address, st[1].Address, st[2].Address})
	assert.Equal(t, gateway.StateFailed, st[2].Status)

	// An added status is not a recipient: it does not list the message.
	list, next, err := s.ListMessages(ctx(t), gateway.MessageQuery{Recipient: "zed@z.example"})
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.Empty(t, next)
}

func TestListAcrossDayBuckets(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, func(c *Config) { c.Retention = 10 * 24 * time.Hour })
	now := gatewaytest.Now()
	ages := []time.Duration{9 * 24 * time.Hour, 4*24*time.Hour + time.Hour, 2 * 24 * time.Hour, 25 * time.Hour, time.Minute}
	var want []string
	for _, age := range ages {
		a := gatewaytest.NewAcceptance(gatewaytest.NewID("day"), "alice@a.example", []string{"bob@b.example"}, now.Add(-age))
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
		want = append([]string{a.Message.ID}, want...)
	}
	// Beyond retention: never listed.
	gone := gatewaytest.NewAcceptance(gatewaytest.NewID("day"), "alice@a.example", []string{"bob@b.example"}, now.Add(-11*24*time.Hour))
	_, err := s.Accept(ctx(t), gone)
	require.NoError(t, err)

	for _, limit := range []int{1, 2, 10} {
		assert.Equal(t, want, listIDs(t, s, gateway.MessageQuery{Limit: limit}), "limit %d", limit)
	}
	assert.Equal(t, want[:3], listIDs(t, s, gateway.MessageQuery{Limit: 1, Since: now.Add(-3 * 24 * time.Hour)}))
	assert.Equal(t, want, listIDs(t, s, gateway.MessageQuery{Limit: 2, Party: "bob@b.example"}))
}

func listIDs(t *testing.T, s *Store, q gateway.MessageQuery) []string {
	t.Helper()
	var ids []string
	for range 100 {
		page, next, err := s.ListMessages(ctx(t), q)
		require.NoError(t, err)
		for _, m := range page {
			ids = append(ids, m.MessageID)
		}
		if next == "" {
			return ids
		}
		require.NotEqual(t, q.Cursor, next)
		q.Cursor = next
	}
	t.Fatal("listing never ends")
	return nil
}

func TestPartyListsSelfSentOnce(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	self := newAcceptance("alice@a.example", "Alice@A.example", "bob@b.example")
	other := newAcceptance("bob@b.example", "alice@a.example")
	for _, a := range []*gateway.Acceptance{self, other} {
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
	}
	for _, limit := range []int{1, 10} {
		assert.Equal(t, []string{other.Message.ID, self.Message.ID}, listIDs(t, s, gateway.MessageQuery{Party: "alice@a.example", Limit: limit}))
	}
}

func TestCursorsAreNotInterchangeable(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	for range 3 {
		a := toInbox(newAcceptance("alice@a.example", "bob@b.example"))
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
	}
	_, inboxCursor, err := s.ListInbox(ctx(t), "bob@b.example", 1, "")
	require.NoError(t, err)
	require.NotEmpty(t, inboxCursor)
	_, listCursor, err := s.ListMessages(ctx(t), gateway.MessageQuery{Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, listCursor)

	_, _, err = s.ListMessages(ctx(t), gateway.MessageQuery{Cursor: inboxCursor})
	assert.ErrorIs(t, err, gateway.ErrBadCursor)
	_, _, err = s.ListInbox(ctx(t), "bob@b.example", 1, listCursor)
	assert.ErrorIs(t, err, gateway.ErrBadCursor)
}

func TestAgentKeyTakenOverByAnotherAgent(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	now := gatewaytest.Now()
	a := &gateway.Agent{Address: "a@x.example", DeliveryMode: gateway.ModePull, APIKeyHash: "shared", CreatedAt: now}
	b := &gateway.Agent{Address: "b@x.example", DeliveryMode: gateway.ModePull, APIKeyHash: "shared", CreatedAt: now}
	require.NoError(t, s.PutAgent(ctx(t), a))
	require.NoError(t, s.PutAgent(ctx(t), b))
	// a moves to a new key: the old key-hash item is b's now and stays.
	a2 := *a
	a2.APIKeyHash = "fresh"
	require.NoError(t, s.PutAgent(ctx(t), &a2))
	got, err := s.AgentByKeyHash(ctx(t), "shared")
	require.NoError(t, err)
	assert.Equal(t, "b@x.example", got.Address)
	got, err = s.AgentByKeyHash(ctx(t), "fresh")
	require.NoError(t, err)
	assert.Equal(t, "a@x.example", got.Address)
	// Deleting a leaves b's key working.
	require.NoError(t, s.DeleteAgent(ctx(t), "a@x.example"))
	got, err = s.AgentByKeyHash(ctx(t), "shared")
	require.NoError(t, err)
	assert.Equal(t, "b@x.example", got.Address)
	_, err = s.AgentByKeyHash(ctx(t), "fresh")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	_, err := New(nil, Config{Table: "t", Queue: e.queue})
	assert.Error(t, err)
	_, err = New(e.client, Config{Queue: e.queue})
	assert.Error(t, err)
	_, err = New(e.client, Config{Table: "t"})
	assert.Error(t, err)
	_, err = New(e.client, Config{Table: "t", Queue: e.queue, Blobs: e.blobs, Retention: (awsres.BodyLifecycleDays + 1) * 24 * time.Hour})
	assert.ErrorContains(t, err, "lifecycle")
}

func TestPing(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.store(t).Ping(ctx(t)))
	missing := e.store(t, func(c *Config) { c.Table = "no-such-table" })
	assert.Error(t, missing.Ping(ctx(t)))
}

func TestCallsHonourContext(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetMessage(c, "x")
	assert.ErrorIs(t, err, context.Canceled)
	_, _, err = s.ListMessages(c, gateway.MessageQuery{})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Accept(c, newAcceptance("alice@a.example", "bob@b.example"))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestMessageIDAlreadyStored(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	first := newAcceptance("alice@a.example", "bob@b.example")
	_, err := s.Accept(ctx(t), first)
	require.NoError(t, err)
	e.receiveAll(t, time.Second)

	// Another gateway resends the same message id under another key.
	again := gatewaytest.NewAcceptance(first.Message.ID, "carol@c.example", []string{"dave@d.example"}, gatewaytest.Now())
	again.Idempotency.Key = "another-key"
	rec, err := s.Accept(ctx(t), again)
	require.ErrorIs(t, err, gateway.ErrMessageIDTaken)
	assert.Nil(t, rec, "nothing of alice's message is answered")
	assert.NotContains(t, err.Error(), "alice")

	// Nothing of it was written: not its key, statuses or tasks.
	assert.Empty(t, e.rawItem(t, idemKey("carol@c.example", "another-key")))
	st, err := s.GetStatuses(ctx(t), first.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"bob@b.example"}, []string{st[0].Address})
	assert.Len(t, st, 1)
	assert.Empty(t, e.receiveAll(t, 300*time.Millisecond))
}
