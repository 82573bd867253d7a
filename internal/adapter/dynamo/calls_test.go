package dynamo

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

func TestForEach(t *testing.T) {
	t.Run("runs every index once", func(t *testing.T) {
		var seen [40]atomic.Int32
		require.NoError(t, forEach(t.Context(), len(seen), func(_ context.Context, i int) error {
			seen[i].Add(1)
			return nil
		}))
		for i := range seen {
			assert.Equal(t, int32(1), seen[i].Load(), "index %d", i)
		}
	})

	t.Run("the first error cancels the rest", func(t *testing.T) {
		boom := errors.New("boom")
		err := forEach(t.Context(), 4, func(ctx context.Context, i int) error {
			if i == 0 {
				return boom
			}
			// The others end only when the failure cancels them.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Second):
				return errors.New("not cancelled")
			}
		})
		assert.ErrorIs(t, err, boom)
	})

	t.Run("a cancelled parent stops handing out work", func(t *testing.T) {
		cause := errors.New("caller gave up")
		parent, cancel := context.WithCancelCause(t.Context())
		cancel(cause)
		var ran atomic.Int32
		err := forEach(parent, 1000, func(context.Context, int) error {
			ran.Add(1)
			return nil
		})
		assert.ErrorIs(t, err, cause)
		assert.Less(t, ran.Load(), int32(1000), "not every index was handed out")
	})
}

// transactionCancelled is DynamoDB's answer to a transaction that one of
// its items stopped, with one reason per item.
func transactionCancelled(codes ...string) error {
	reasons := make([]types.CancellationReason, len(codes))
	for i, c := range codes {
		reasons[i] = types.CancellationReason{Code: aws.String(c)}
	}
	msg := "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"
	return &types.TransactionCanceledException{Message: aws.String(msg), CancellationReasons: reasons}
}

// TestTransactRetries: a transaction cancelled by a conflict with another
// one, or by throttling, is tried again (the SDK does not retry it), up to
// transactAttempts; other cancellations are answered at once.
func TestTransactRetries(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name     string
		fail     func(any) error
		attempts int64
		stored   bool
		err      string
	}{
		{"conflicts, then through", awstest.FailFirst[*dynamodb.TransactWriteItemsInput](2, nil, transactionCancelled("TransactionConflict", "None")), 3, true, ""},
		{"throttled, then through", awstest.FailFirst[*dynamodb.TransactWriteItemsInput](1, nil, transactionCancelled("None", "ThrottlingError")), 2, true, ""},
		{"over capacity, then through", awstest.FailFirst[*dynamodb.TransactWriteItemsInput](1, nil, transactionCancelled("ProvisionedThroughputExceeded")), 2, true, ""},
		{"a failure that is no cancellation", failAll[*dynamodb.TransactWriteItemsInput](), 1, false, "injected"},
		{"conflict every time", awstest.FailCalls[*dynamodb.TransactWriteItemsInput](1, nil, transactionCancelled("TransactionConflict", "None")), transactAttempts, false, "TransactionConflict"},
		{"another reason", awstest.FailFirst[*dynamodb.TransactWriteItemsInput](1, nil, transactionCancelled("ValidationError", "None")), 1, false, "ValidationError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := &awstest.Counted[*dynamodb.TransactWriteItemsInput]{Rule: tc.fail}
			s := e.faultyStore(t, faults{fail: calls.Fail})
			a := newAgent("tx")
			err := s.PutAgent(ctx(t), a)
			assert.Equal(t, tc.attempts, calls.Calls(), "transactions sent")
			_, getErr := e.store(t).GetAgent(ctx(t), a.Address)
			if tc.stored {
				require.NoError(t, err)
				assert.NoError(t, getErr)
				return
			}
			require.ErrorContains(t, err, tc.err)
			assert.ErrorIs(t, getErr, gateway.ErrNotFound, "nothing was written")
		})
	}
}

func TestTransactBackoffHonoursContext(t *testing.T) {
	e := newEnv(t)
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	s := e.faultyStore(t, faults{fail: func(in any) error {
		if _, ok := in.(*dynamodb.TransactWriteItemsInput); ok {
			cancel() // the caller gives up while the transaction conflicts
			return transactionCancelled("TransactionConflict")
		}
		return nil
	}})
	err := s.PutAgent(c, newAgent("tx"))
	assert.ErrorIs(t, err, context.Canceled)
}

// unprocess moves all but keep of a BatchGetItem answer's items to its
// UnprocessedKeys, as DynamoDB does when a batch exceeds what it reads at
// once.
func unprocess(keep int) func(in, out any) {
	return func(in, out any) {
		res, ok := out.(*dynamodb.BatchGetItemOutput)
		if !ok {
			return
		}
		asked := in.(*dynamodb.BatchGetItemInput).RequestItems
		for table, items := range res.Responses {
			if len(items) <= keep {
				continue
			}
			left := asked[table] // a copy, with the consistency and projection asked for
			left.Keys = nil
			for _, it := range items[keep:] {
				left.Keys = append(left.Keys, key(getStr(it, aPK), getStr(it, aSK)))
			}
			if res.UnprocessedKeys == nil {
				res.UnprocessedKeys = map[string]types.KeysAndAttributes{}
			}
			res.UnprocessedKeys[table] = left
			res.Responses[table] = items[:keep]
		}
	}
}

// TestBatchGetUnprocessedKeys: keys DynamoDB leaves unprocessed are read
// again until every one is, within batchGetAttempts.
func TestBatchGetUnprocessedKeys(t *testing.T) {
	e := newEnv(t)
	good := e.store(t)
	var keys []item
	for range 3 {
		a := newAcceptance("alice@a.example", "bob@b.example")
		_, err := good.Accept(ctx(t), a)
		require.NoError(t, err)
		keys = append(keys, messageKey(a.Message.ID))
	}

	t.Run("read again", func(t *testing.T) {
		calls := &awstest.Counted[*dynamodb.BatchGetItemInput]{}
		var edits atomic.Int32
		edit := unprocess(1)
		s := e.faultyStore(t, faults{fail: calls.Fail, edit: func(in, out any) {
			if edits.Add(1) <= 2 {
				edit(in, out)
			}
		}})
		got, err := s.batchGet(ctx(t), keys, true, nil)
		require.NoError(t, err)
		assert.Len(t, got, len(keys))
		for _, k := range keys {
			assert.Contains(t, got, itemID(k))
		}
		assert.Equal(t, int64(3), calls.Calls(), "one read per item, two left unprocessed in turn")
	})

	t.Run("given up", func(t *testing.T) {
		calls := &awstest.Counted[*dynamodb.BatchGetItemInput]{}
		s := e.faultyStore(t, faults{fail: calls.Fail, edit: unprocess(0)})
		_, err := s.batchGet(ctx(t), keys, true, nil)
		require.ErrorContains(t, err, "3 keys still unprocessed")
		assert.Equal(t, int64(batchGetAttempts), calls.Calls())
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		s := e.faultyStore(t, faults{edit: func(in, out any) {
			unprocess(0)(in, out)
			cancel()
		}})
		_, err := s.batchGet(c, keys, true, nil)
		assert.ErrorIs(t, err, context.Canceled)
	})

	t.Run("projected", func(t *testing.T) {
		got, err := good.batchGet(ctx(t), keys, true, project(aPK, aSK, aFrom))
		require.NoError(t, err)
		require.Len(t, got, len(keys))
		for _, it := range got {
			assert.Len(t, it, 3, "only the projected attributes")
			assert.Equal(t, "alice@a.example", getStr(it, aFrom))
		}
	})
}
