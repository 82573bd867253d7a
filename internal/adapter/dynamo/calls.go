package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Cancellation reason codes (TransactWriteItems API reference).
const (
	reasonNone        = "None"
	reasonCondition   = "ConditionalCheckFailed"
	reasonConflict    = "TransactionConflict"
	reasonThrottled   = "ThrottlingError"
	reasonCapacity    = "ProvisionedThroughputExceeded"
	maxTransactItems  = 100
	maxBatchGetKeys   = 100
	transactAttempts  = 8
	batchGetAttempts  = 8
	parallelism       = 16
	initialRetryDelay = 10 * time.Millisecond
)

// transact runs a write transaction. It returns the cancellation reasons,
// aligned with items, when a condition failed; conflicts with another
// transaction on the same items, and throttling, are retried here, since
// the SDK does not retry a cancelled transaction.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) ([]types.CancellationReason, error) {
	delay := initialRetryDelay
	for attempt := 1; ; attempt++ {
		// Each attempt gets a fresh client token from the SDK; the SDK's own
		// retries of one attempt reuse it, so a commit whose answer was lost
		// is answered as a success rather than as a failed condition.
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return nil, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, err
		}
		var condition, conflict bool // conflict: worth trying again
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case reasonNone, "":
			case reasonCondition:
				condition = true
			case reasonConflict, reasonThrottled, reasonCapacity:
				conflict = true
			default:
				return nil, err
			}
		}
		switch {
		case condition:
			return tce.CancellationReasons, nil
		case conflict && attempt < transactAttempts:
			if err := sleep(ctx, jitter(delay)); err != nil {
				return nil, err
			}
			delay *= 2
		default:
			return nil, err
		}
	}
}

// reasonFailed reports whether the i-th item of a cancelled transaction
// failed its condition.
func reasonFailed(reasons []types.CancellationReason, i int) bool {
	return i >= 0 && i < len(reasons) && aws.ToString(reasons[i].Code) == reasonCondition
}

// batchGet reads items by key, in chunks of what BatchGetItem takes,
// retrying the keys DynamoDB leaves unprocessed. Missing items are absent
// from the answer, which is indexed by pk+"\x00"+sk.
func (s *Store) batchGet(ctx context.Context, keys []item, consistent bool, proj *projection) (map[string]item, error) {
	out := make(map[string]item, len(keys))
	for start := 0; start < len(keys); start += maxBatchGetKeys {
		pending := keys[start:min(start+maxBatchGetKeys, len(keys))]
		delay := initialRetryDelay
		for attempt := 1; len(pending) > 0; attempt++ {
			ka := types.KeysAndAttributes{Keys: pending, ConsistentRead: aws.Bool(consistent)}
			if proj != nil {
				ka.ProjectionExpression = aws.String(proj.expr)
				ka.ExpressionAttributeNames = proj.names
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{s.table: ka}})
			if err != nil {
				return nil, err
			}
			for _, it := range res.Responses[s.table] {
				out[itemID(it)] = it
			}
			pending = res.UnprocessedKeys[s.table].Keys
			if len(pending) == 0 {
				break
			}
			if attempt == batchGetAttempts {
				return nil, fmt.Errorf("%d keys still unprocessed after %d attempts", len(pending), attempt)
			}
			if err := sleep(ctx, jitter(delay)); err != nil {
				return nil, err
			}
			delay *= 2
		}
	}
	return out, nil
}

func itemID(it item) string { return getStr(it, aPK) + "\x00" + getStr(it, aSK) }

// forEach runs fn for 0 ≤ i < n on up to parallelism goroutines and returns
// the first error; the others see their context cancelled.
func forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range min(n, parallelism) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		// The parent was cancelled before every index was handed out.
		first = context.Cause(ctx)
	}
	return first
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jitter spreads retries of callers that collided, so that they do not
// collide again in step.
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }
