package dynamo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Idempotency records used to be kept in their sender's partition
// (IDEM#<sender> / KEY#<key>, oldIdemKey), which every submission of the
// sender wrote: one sender topped out near 1,000 submissions a second, a
// fan-out far below. They are now in their key's partition (idemKey). A
// record of the old layout still holds its key for its window
// (gateway.IdempotencyWindow): while one may exist, a keyed Accept first
// reads the old place (eventually consistent, half a read unit in the
// sender's partition) and, if a live record is there, settles the
// submission against it.
//
// When that can be is kept in the table itself: the layout marker, written
// by the first Store of this layout that needed it, says since when the
// table is written this way. Records of the old layout are older than
// that, give or take a deploy during which functions of both ran
// (legacyOverlap); a window later no Accept reads the old place any more.

// layoutMarker is the key of the marker item.
var layoutMarker = key("LAYOUT", "IDK")

// legacyOverlap is how long functions writing the old layout may run after
// the first of the new one did: a deploy's overlap, with room.
const legacyOverlap = time.Hour

// legacyWindow caches when the table's idempotency layout changed, read
// once per Store.
type legacyWindow struct {
	mu    sync.Mutex
	known bool
	since time.Time
}

// oldRecordsLive reports whether a record of the old idempotency layout
// may still hold its key.
func (s *Store) oldRecordsLive(ctx context.Context) (bool, error) {
	since, err := s.layoutSince(ctx)
	if err != nil {
		return false, err
	}
	return s.now().Before(since.Add(gateway.IdempotencyWindow + legacyOverlap)), nil
}

// layoutSince is since when the table's records are spread,
// from the table's marker (written now when there is none).
func (s *Store) layoutSince(ctx context.Context) (time.Time, error) {
	w := &s.legacy
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.known {
		return w.since, nil
	}
	for range 2 {
		it, err := s.getItem(ctx, layoutMarker, true, nil)
		if err != nil {
			return time.Time{}, fmt.Errorf("read the layout marker: %w", err)
		}
		if it != nil {
			since, ok := getNum(it, aSince)
			if !ok {
				return time.Time{}, fmt.Errorf("layout marker without %s", aSince)
			}
			w.known, w.since = true, time.Unix(since, 0)
			return w.since, nil
		}
		if err := s.markLayout(ctx, s.now()); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, fmt.Errorf("the layout marker vanished")
}

// markLayout writes the layout marker unless there is one.
func (s *Store) markLayout(ctx context.Context, since time.Time) error {
	marker := key(getStr(layoutMarker, aPK), getStr(layoutMarker, aSK))
	marker[aSince] = num(since.Unix())
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     marker,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": aPK},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("write the layout marker: %w", err)
	}
	return nil
}

// MarkTableNew tells the table that it never held idempotency records of
// the old layout (a table created by this version), so that no Accept ever
// reads the old place. It changes nothing on a table that has a marker
// already.
func MarkTableNew(ctx context.Context, client *dynamodb.Client, table string) error {
	s := &Store{db: callsOf(client), table: table}
	return s.markLayout(ctx, time.Unix(0, 0))
}

// settleOld settles p against a live record of the old layout, if there
// may be one and there is: done reports that Accept's answer is dup, err.
// Otherwise p goes on with its record at the new place (claimed already
// when the old record was taken over, see moveKey).
func (s *Store) settleOld(ctx context.Context, p *acceptPlan) (_ *gateway.IdempotencyRecord, done bool, _ error) {
	sender, k := getStr(p.idem, aFrom), getStr(p.idem, aKey)
	p.keyRecord(idemKey(sender, k))
	live, err := s.oldRecordsLive(ctx)
	if err != nil {
		return nil, true, fmt.Errorf("dynamo: accept %s: %w", p.id, err)
	}
	if !live {
		return nil, false, nil
	}
	rec, err := s.getItem(ctx, oldIdemKey(sender, k), false, nil)
	if err != nil {
		return nil, true, fmt.Errorf("dynamo: accept %s: read the idempotency record of the old layout: %w", p.id, err)
	}
	if rec == nil || expired(rec, s.now()) {
		return nil, false, nil
	}
	p.keyRecord(oldIdemKey(sender, k))
	dup, owned, err := s.settleDuplicate(ctx, p, rec)
	if owned {
		return nil, false, nil
	}
	return dup, true, err
}

// keyRecord puts p's record under k.
func (p *acceptPlan) keyRecord(k item) {
	p.idem[aPK], p.idem[aSK] = k[aPK], k[aSK]
}

func isOldRecord(rec item) bool { return strings.HasPrefix(getStr(rec, aPK), pfxIdemOld) }

// moveKey takes the key of a dead owner whose record is of the old layout
// for p (whose token is renewed already): it deletes that record, if it is
// still the owner's, and claims the key at the new place. It returns the
// record holding the key when that is not p's.
func (s *Store) moveKey(ctx context.Context, p *acceptPlan, rec item) (item, error) {
	cond, names, values := ownerCondition(getStr(rec, aTok))
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 recordKey(rec),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if isConditionFailed(err) {
		if cur := failedItem(err); cur != nil {
			return cur, nil
		}
		return nil, errRecordGone
	}
	if err != nil {
		return nil, fmt.Errorf("remove the idempotency record of the old layout: %w", err)
	}
	p.keyRecord(idemKey(getStr(p.idem, aFrom), getStr(p.idem, aKey)))
	return s.claimKey(ctx, p)
}
