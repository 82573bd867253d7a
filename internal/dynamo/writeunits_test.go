package dynamo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/awstest"
	"github.com/agentry/agentry/internal/gateway"
	"github.com/agentry/agentry/internal/gateway/gatewaytest"
)

// meter prices every DynamoDB write a Store makes as AWS bills it in
// write units, from the item as stored before and after the write (moto
// reports no consumed capacity for transactions, and a flat 1.0 for other
// writes): 1 unit per KB of the larger of the two (2 inside a
// transaction), also when a condition fails; and 1 per index entry
// written or removed (2 when its key changes), both indexes projecting
// keys only.
type meter struct {
	raw   *dynamodb.Client // reads items around writes, unmetered
	table string
	mu    sync.Mutex
	log   []meteredWrite
}

type meteredWrite struct {
	op     string // PutItem, UpdateItem, DeleteItem, TransactWriteItems
	kind   string // the item's kind, from its key
	units  int
	index  int
	failed bool // the condition failed
}

func (w meteredWrite) String() string {
	s := fmt.Sprintf("%s %s %d", w.op, w.kind, w.units)
	if w.index > 0 {
		s += fmt.Sprintf("+%di", w.index)
	}
	if w.failed {
		s += " (failed)"
	}
	return s
}

// client returns a DynamoDB client whose writes the meter records.
func (m *meter) client(t *testing.T) *dynamodb.Client {
	return dynamodb.NewFromConfig(awstest.Config(t), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("meter", m.handle), middleware.After)
		})
	})
}

func (m *meter) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	type target struct {
		key  item
		put  item // the new item of a put
		mult int
	}
	var (
		op      string
		targets []target
	)
	switch v := in.Parameters.(type) {
	case *dynamodb.PutItemInput:
		op, targets = "PutItem", []target{{key(getStr(v.Item, aPK), getStr(v.Item, aSK)), v.Item, 1}}
	case *dynamodb.UpdateItemInput:
		op, targets = "UpdateItem", []target{{v.Key, nil, 1}}
	case *dynamodb.DeleteItemInput:
		op, targets = "DeleteItem", []target{{v.Key, nil, 1}}
	case *dynamodb.TransactWriteItemsInput:
		op = "TransactWriteItems"
		for _, ti := range v.TransactItems {
			switch {
			case ti.Put != nil:
				targets = append(targets, target{key(getStr(ti.Put.Item, aPK), getStr(ti.Put.Item, aSK)), ti.Put.Item, 2})
			case ti.Update != nil:
				targets = append(targets, target{ti.Update.Key, nil, 2})
			case ti.Delete != nil:
				targets = append(targets, target{ti.Delete.Key, nil, 2})
			case ti.ConditionCheck != nil:
				targets = append(targets, target{ti.ConditionCheck.Key, nil, 2})
			}
		}
	default:
		return next.HandleInitialize(ctx, in)
	}
	before := make([]item, len(targets))
	for i, tg := range targets {
		before[i] = m.read(ctx, tg.key)
	}
	out, md, err := next.HandleInitialize(ctx, in)
	failed := err != nil
	for i, tg := range targets {
		after := m.read(ctx, tg.key)
		size := max(itemSize(before[i]), itemSize(after))
		if failed && tg.put != nil {
			size = max(size, itemSize(tg.put))
		}
		w := meteredWrite{op: op, kind: kindOf(tg.key), units: tg.mult * writeUnits(size), failed: failed}
		for _, k := range [][2]string{{aG1P, aG1S}, {aG2P, aG2S}} {
			w.index += indexWrites(before[i], after, k[0], k[1])
		}
		m.mu.Lock()
		m.log = append(m.log, w)
		m.mu.Unlock()
	}
	return out, md, err
}

func (m *meter) read(ctx context.Context, k item) item {
	out, err := m.raw.GetItem(context.WithoutCancel(ctx), &dynamodb.GetItemInput{TableName: aws.String(m.table), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		panic(fmt.Sprintf("meter: read %v: %v", k, err))
	}
	return out.Item
}

// indexWrites is what one item write costs in one keys-only index.
func indexWrites(before, after item, pkAttr, skAttr string) int {
	b := getStr(before, pkAttr) + "\x00" + getStr(before, skAttr)
	a := getStr(after, pkAttr) + "\x00" + getStr(after, skAttr)
	hadB, hasA := getStr(before, pkAttr) != "", getStr(after, pkAttr) != ""
	switch {
	case hadB && hasA && a != b:
		return 2
	case hadB != hasA:
		return 1
	}
	return 0
}

func kindOf(k item) string {
	pk, sk := getStr(k, aPK), getStr(k, aSK)
	switch {
	case strings.HasPrefix(pk, pfxIdem):
		return "record"
	case strings.HasPrefix(pk, pfxMessage) && sk == skMessage:
		return "message"
	case strings.HasPrefix(pk, pfxMessage):
		return "recipient"
	case strings.HasPrefix(pk, pfxWorkflow):
		return "workflow"
	}
	return pk
}

// take returns the writes since the last take and their total.
func (m *meter) take() ([]meteredWrite, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	log := m.log
	m.log = nil
	total := 0
	for _, w := range log {
		total += w.units + w.index
	}
	return log, total
}

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
	m := &meter{raw: e.client, table: e.names.Table}
	q := &countingQueue{inner: e.queue}
	s, err := New(m.client(t), Config{Table: e.names.Table, Blobs: e.blobs, Queue: q, Now: e.clock.Now})
	require.NoError(t, err)

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
		acc, accept := m.take()
		var push []string
		for _, tk := range a.Tasks {
			push = append(push, tk.Recipients...)
		}
		if len(push) > 0 {
			deliver(a.Message.ID, push...)
		}
		del, delivery := m.take()
		size := itemSize(e.rawItem(t, messageKey(a.Message.ID)))
		t.Logf("%-38s accept %2d WU %v; delivery %d WU %v; %d SQS send(s); message item %d bytes", name, accept, acc, delivery, del, q.sends.Load(), size)
		return accept, delivery, q.sends.Load()
	}

	pushAcc, pushDel, sends := cost("1 push recipient", newAcceptance("alice@a.example", "bob@b.example"))
	assert.Equal(t, 6, pushAcc, "accept of 1 push recipient")
	assert.Equal(t, 1, pushDel, "its delivery")
	assert.Equal(t, int64(1), sends)

	pullAcc, pullDel, sends := cost("1 pull recipient, delivered at accept", toInbox(newAcceptance("alice@a.example", "bob@b.example")))
	assert.Equal(t, 7, pullAcc, "accept of 1 pull recipient")
	assert.Zero(t, pullDel)
	assert.Zero(t, sends)

	threeAcc, threeDel, _ := cost("3 push recipients", newAcceptance("alice@a.example", "bob@b.example", "carol@c.example", "dave@d.example"))
	assert.Equal(t, 2*2, threeAcc-pushAcc, "each further recipient at accept")
	assert.Equal(t, 2*1, threeDel-pushDel, "each further delivery")

	big := newAcceptance("alice@a.example", "bob@b.example")
	big.Message.Raw = []byte(`{"payload":"` + strings.Repeat("b", 3000) + `"}`)
	bigAcc, _, _ := cost("1 push recipient, 3 KB body", big)
	bigUnits := writeUnits(itemSize(e.rawItem(t, messageKey(big.Message.ID))))
	assert.Equal(t, bigUnits-1, bigAcc-pushAcc, "a larger body costs its KB once")

	// A retry of the same key is a failed conditional put of the record
	// (billed like a write) and reads.
	_, err = s.Accept(ctx(t), retryOf(big))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	dup, dupUnits := m.take()
	t.Logf("%-38s %d WU %v", "duplicate", dupUnits, dup)
	assert.Equal(t, 1, dupUnits)

	require.NoError(t, s.AckInbox(ctx(t), "bob@b.example", getInboxID(t, s)))
	ack, ackUnits := m.take()
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
