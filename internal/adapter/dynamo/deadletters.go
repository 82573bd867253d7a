package dynamo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Dead letters are items of one partition, sorted by when they were
// dead-lettered:
//
//	DEAD                 <time with ns>#<task id>   the record's JSON ("dl"), TTL with its message
//
// One partition is enough: a dead letter is written once per delivery
// given up, which the retry window makes rare, and read by operators.
const (
	pkDead   = "DEAD"
	aDead    = "dl" // S: JSON of the gateway.DeadLetter
	deadTime = "2006-01-02T15:04:05.000000000Z"
	// deadQueryPage is how many items one Query reads; deadScanFactor
	// bounds the items a listing page reads while filters skip them, as a
	// multiple of its size.
	deadQueryPage  = 100
	deadScanFactor = 10
	// cursorDead starts the cursors of the dead-letter listing.
	cursorDead = "d"
)

var _ gateway.DeadLetterStore = (*Store)(nil)

func deadSK(at time.Time, taskID string) string {
	return at.UTC().Format(deadTime) + "#" + taskID
}

func deadKey(id string) (item, error) {
	at, taskID, err := gateway.ParseDeadLetterID(id)
	if err != nil {
		return nil, err
	}
	return key(pkDead, deadSK(at, taskID)), nil
}

// KeepDeadLetter stores the record of task t given up (what the
// dead-letter queue's consumer settles). Fields of d left empty are filled
// from the task; keeping the same record again writes the same item.
func (s *Store) KeepDeadLetter(ctx context.Context, t gateway.Task, d gateway.DeadLetter) error {
	d = d.FilledFrom(t, s.now())
	d.ID = ""
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dynamo: keep dead letter %s: %w", t.ID, err)
	}
	it := key(pkDead, deadSK(d.DLQTimestamp, d.TaskID))
	it[aDead] = str(string(v))
	// It can be redriven only while its message is kept.
	it[aTTL] = num(ttl(d.DLQTimestamp.Add(s.retention)))
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it}); err != nil {
		return fmt.Errorf("dynamo: keep dead letter %s: %w", t.ID, err)
	}
	return nil
}

// ListDeadLetters pages through the dead letters, oldest first
// (gateway.DeadLetterStore).
func (s *Store) ListDeadLetters(ctx context.Context, q gateway.DeadLetterQuery) ([]gateway.DeadLetter, string, error) {
	limit := gateway.PageLimit(q.Limit)
	lo, hi, after, err := deadRange(q)
	if err != nil || lo > hi {
		return nil, "", err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
		ExpressionAttributeNames:  map[string]string{"#pk": aPK, "#sk": aSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pkDead), ":lo": str(lo), ":hi": str(hi)},
		Limit:                     aws.Int32(deadQueryPage),
		ConsistentRead:            aws.Bool(true),
	}
	var out []gateway.DeadLetter
	var last string
	now := s.now()
	for scanned := 0; ; {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("dynamo: list dead letters: %w", err)
		}
		for _, it := range res.Items {
			sk := getStr(it, aSK)
			if sk == after || expired(it, now) {
				continue
			}
			if len(out) == limit || scanned == limit*deadScanFactor {
				return out, cursorDead + base64.RawURLEncoding.EncodeToString([]byte(last)), nil
			}
			scanned++
			last = sk
			d, err := decodeDeadLetter(it)
			if err != nil {
				return nil, "", err
			}
			if q.Matches(d) {
				out = append(out, d)
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, "", nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// deadRange is the sort-key range q selects, and the key of its cursor's
// last item, which the range includes and the listing skips.
func deadRange(q gateway.DeadLetterQuery) (lo, hi, after string, err error) {
	// Sort keys start with a year's digits.
	lo, hi = "0", "~"
	if !q.Since.IsZero() {
		lo = q.Since.UTC().Format(deadTime)
	}
	if !q.Until.IsZero() {
		// A key at exactly Until is longer, so greater: left out.
		hi = q.Until.UTC().Format(deadTime)
	}
	if q.Cursor != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(q.Cursor, cursorDead))
		if derr != nil || !strings.HasPrefix(q.Cursor, cursorDead) || len(raw) <= len(deadTime) {
			return "", "", "", fmt.Errorf("dynamo: list dead letters: cursor: %w", gateway.ErrBadCursor)
		}
		if after = string(raw); after > lo {
			lo = after
		}
	}
	return lo, hi, after, nil
}

func decodeDeadLetter(it item) (gateway.DeadLetter, error) {
	var d gateway.DeadLetter
	if err := json.Unmarshal([]byte(getStr(it, aDead)), &d); err != nil {
		return d, fmt.Errorf("dynamo: dead letter %s: corrupt record: %w", getStr(it, aSK), err)
	}
	return d.WithID(), nil
}

// GetDeadLetter returns the record id names (gateway.DeadLetterStore).
func (s *Store) GetDeadLetter(ctx context.Context, id string) (gateway.DeadLetter, error) {
	k, err := deadKey(id)
	if err != nil {
		return gateway.DeadLetter{}, err
	}
	it, err := s.getItem(ctx, k, true, nil)
	if err != nil {
		return gateway.DeadLetter{}, fmt.Errorf("dynamo: get dead letter: %w", err)
	}
	if it == nil || expired(it, s.now()) {
		return gateway.DeadLetter{}, fmt.Errorf("dynamo: get dead letter: %w", gateway.ErrNotFound)
	}
	return decodeDeadLetter(it)
}

// RemoveDeadLetter deletes the record id names (gateway.DeadLetterStore).
func (s *Store) RemoveDeadLetter(ctx context.Context, id string) error {
	k, err := deadKey(id)
	if err != nil {
		return err
	}
	_, err = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                aws.String(s.table),
		Key:                      k,
		ConditionExpression:      aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": aPK},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("dynamo: remove dead letter: %w", gateway.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("dynamo: remove dead letter: %w", err)
	}
	return nil
}
