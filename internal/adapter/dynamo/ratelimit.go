package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/agentry/agentry/internal/core/policy"
)

// Rate-limit buckets: pk RL#<key>, sk RL. Every Lambda instance counts in
// the same item, so a sender cannot multiply its allowance by the number
// of warm instances. The item is read strongly, stepped with policy.Step,
// and written back on the condition that nobody wrote it in between (its
// version attribute); a lost race reads again. The TTL is the moment the
// bucket is full again, after which a missing item means the same thing.
const (
	pfxRate = "RL#"
	skRate  = "RL"

	aTokens = "tok" // N: tokens left (a decimal)
	aLast   = "lst" // N: time of the last grant, Unix nanoseconds
	// aVer (as for workflows) is bumped by every write: the condition of
	// the next.

	// maxRateAttempts bounds the read-step-write loop. Every lost race
	// means another caller's write won, so the loop makes progress; the
	// bound only matters under pathological contention, which is then
	// answered 503 (retry) rather than held open.
	maxRateAttempts = 40
)

var _ policy.Limiter = (*Store)(nil)

// Allow takes one token from key's bucket under l at now.
func (s *Store) Allow(ctx context.Context, name string, l policy.Limit, now time.Time) (bool, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("dynamo: rate limit: %w", err)
	}
	if !l.Valid() {
		return false, 0, fmt.Errorf("dynamo: rate limit: invalid limit %d per %v", l.Rate, l.Per)
	}
	if len(name) > policy.MaxKeyLen {
		return false, 0, fmt.Errorf("dynamo: rate limit key is %d bytes, more than %d", len(name), policy.MaxKeyLen)
	}
	k := rateKey(name)
	for attempt := range maxRateAttempts {
		it, err := s.getItem(ctx, k, true, nil)
		if err != nil {
			return false, 0, fmt.Errorf("dynamo: rate limit read: %w", err)
		}
		b, ver, err := decodeBucket(it)
		if err != nil {
			return false, 0, fmt.Errorf("dynamo: rate limit %s: %w", name, err)
		}
		next, ok, retryAfter := policy.Step(b, l, now)
		if !ok {
			return false, retryAfter, nil
		}
		err = s.putBucket(ctx, k, next, l, ver, it != nil)
		if err == nil {
			return true, 0, nil
		}
		if !isConditionFailed(err) {
			return false, 0, fmt.Errorf("dynamo: rate limit write: %w", err)
		}
		if err := sleep(ctx, jitter(time.Duration(attempt+1)*2*time.Millisecond)); err != nil {
			return false, 0, fmt.Errorf("dynamo: rate limit: %w", err)
		}
	}
	return false, 0, fmt.Errorf("dynamo: rate limit %s: %d lost races in a row", name, maxRateAttempts)
}

func (s *Store) putBucket(ctx context.Context, k item, b policy.Bucket, l policy.Limit, ver int64, exists bool) error {
	it := item{aPK: k[aPK], aSK: k[aSK]}
	it[aTokens] = decimal(b.Tokens)
	it[aLast] = num(b.Last.UnixNano())
	it[aVer] = num(ver + 1)
	// A second of margin: DynamoDB compares TTLs in whole seconds.
	it[aTTL] = num(b.FullAt(l).Unix() + 1)
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it}
	if exists {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": aVer}
		in.ExpressionAttributeValues = item{":v": num(ver)}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(#pk)")
		in.ExpressionAttributeNames = map[string]string{"#pk": aPK}
	}
	_, err := s.db.PutItem(ctx, in)
	return err
}

func rateKey(name string) item { return key(pfxRate+name, skRate) }

// decodeBucket reads a stored bucket; a missing item is an empty Bucket
// (full on first use).
func decodeBucket(it item) (policy.Bucket, int64, error) {
	if it == nil {
		return policy.Bucket{}, 0, nil
	}
	ver, _ := getNum(it, aVer)
	last, ok := getNum(it, aLast)
	if !ok {
		return policy.Bucket{}, 0, errors.New("corrupt bucket: no time")
	}
	tokens, ok := getDecimal(it, aTokens)
	if !ok {
		return policy.Bucket{}, 0, errors.New("corrupt bucket: no tokens")
	}
	return policy.Bucket{Tokens: tokens, Last: time.Unix(0, last)}, ver, nil
}
