package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// settleDuplicate answers an Accept whose key is held by the record rec,
// the record of an earlier acceptance (its owner). Once that acceptance is
// complete it returns its record with ErrDuplicate. While the owner's
// deadline (pend) has not passed, the owner may still be writing, so this
// waits. Past the deadline the owner has died or given up, and this Accept
// finishes for it: when the owner's message is stored, it writes what is
// missing and enqueues the stored tasks, then answers ErrDuplicate; when
// it is not, it voids the owner's message id, so that the owner's late
// write cannot store it any more, and takes the key for p (owned = true:
// the caller goes on to store p's own message).
func (s *Store) settleDuplicate(ctx context.Context, p *acceptPlan, rec item) (_ *gateway.IdempotencyRecord, owned bool, _ error) {
	poll := 20 * time.Millisecond
	for first := true; ; first = false {
		if !first {
			var err error
			if rec, err = s.getItem(ctx, recordKey(p.idem), true, nil); err != nil {
				return nil, false, fmt.Errorf("dynamo: accept %s: read idempotency record: %w", p.id, err)
			}
			if rec == nil || expired(rec, s.now()) {
				return nil, false, errRecordGone
			}
		}
		out, err := decodeIdem(rec)
		if err != nil {
			return nil, false, fmt.Errorf("dynamo: accept %s: %w", p.id, err)
		}
		dup := func(how string) error {
			return fmt.Errorf("dynamo: accept %s: key %q used by %s%s: %w", p.id, out.Key, out.MessageID, how, gateway.ErrDuplicate)
		}
		tok := getStr(rec, aTok)
		msg, rcpts, err := s.head(ctx, out.MessageID)
		if err != nil {
			return nil, false, fmt.Errorf("dynamo: accept %s: read message %s: %w", p.id, out.MessageID, err)
		}
		now := s.now()
		pend, marked := getNum(rec, aPending)
		live := marked && pend > now.UnixMilli()
		_, hasTasks := rec[aTasks]
		if _, marked := rec[aMarked]; marked {
			hasTasks = true
		}

		switch {
		case msg != nil && !isVoid(msg) && getStr(msg, aTok) == tok:
			// The owner's message is stored.
			if completed(tok, hasTasks, msg, rcpts) {
				return out, false, dup("")
			}
			if !marked {
				// Only records from before owner deadlines existed lack
				// one; their tasks were queued, their items may not all be.
				ref, missing, err := missingRecipients(out.MessageID, msg, rcpts)
				if err == nil {
					err = s.writeRecipients(ctx, ref, missing)
				}
				if err != nil {
					return nil, false, fmt.Errorf("dynamo: accept %s: finish the recipients of %s: %w", p.id, out.MessageID, err)
				}
				return out, false, dup("")
			}
			if !live {
				err := s.takeOver(ctx, rec, msg, rcpts, pend, now)
				if err == nil {
					return out, false, dup(" (its acceptance finished by this retry)")
				}
				if !errors.Is(err, errMarkerMoved) {
					return nil, false, fmt.Errorf("dynamo: accept %s: finish the acceptance of %s: %w", p.id, out.MessageID, err)
				}
				// Another retry claimed it first; its claim is live now.
				continue
			}
		case tok == "" || !now.Before(out.CreatedAt.Add(s.retention)):
			// A record written before tokens existed was stored with its
			// message in one transaction, and a record older than the
			// retention has seen its message expire since: either way the
			// acceptance was complete.
			return out, false, dup("")
		case !live:
			// The owner stopped before storing its message, or found its
			// id taken and did not release the key.
			next, err := s.takeKey(ctx, p, rec, msg, now)
			if err != nil {
				return nil, false, fmt.Errorf("dynamo: accept %s: take over key %q: %w", p.id, out.Key, err)
			}
			if next == nil {
				return nil, true, nil
			}
			continue
		}
		wait := min(poll, time.Duration(pend-now.UnixMilli()+1)*time.Millisecond)
		if err := sleep(ctx, wait); err != nil {
			return nil, false, fmt.Errorf("dynamo: accept %s: wait for the acceptance of %s: %w", p.id, out.MessageID, err)
		}
		poll = min(2*poll, 250*time.Millisecond)
	}
}

// head reads a message item without its body, and its recipient items, in
// one strongly consistent query. msg is nil when the message is absent.
func (s *Store) head(ctx context.Context, id string) (msg item, recipients []item, err error) {
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String(headAttrs.alias(aPK) + " = :pk"),
		ExpressionAttributeValues: item{":pk": str(pfxMessage + id)},
		ExpressionAttributeNames:  headAttrs.names,
		ProjectionExpression:      aws.String(headAttrs.expr),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, nil, err
	}
	recipients = make([]item, 0, len(items))
	for _, it := range items {
		if getStr(it, aSK) == skMessage {
			msg = it
		} else {
			recipients = append(recipients, it)
		}
	}
	if msg == nil || isVoid(msg) {
		return msg, recipients, nil
	}
	listed, err := s.listedRecipients(ctx, id, msg)
	if err != nil || len(listed) == 0 {
		return msg, recipients, err
	}
	// An item under MSG#<id> for an address whose item is its TO# entry
	// can only be a stray (code from before wrote it during a deploy): the
	// TO# item is the status.
	own := make(map[string]bool, len(listed))
	for _, it := range listed {
		own[strings.ToLower(getStr(it, aAddr))] = true
	}
	kept := recipients[:0]
	for _, it := range recipients {
		if !own[strings.ToLower(getStr(it, aAddr))] {
			kept = append(kept, it)
		}
	}
	return msg, append(kept, listed...), nil
}

// listedRecipients reads the items of msg's recipients that are their own
// TO# entries (messageRef.recipientKey), in one strongly consistent
// BatchGetItem per 100; absent ones (not written yet) are left out.
func (s *Store) listedRecipients(ctx context.Context, id string, msg item) ([]item, error) {
	ref, err := refOf(id, msg)
	if err != nil || ref.shards == 0 {
		return nil, err
	}
	seen := make(map[string]bool, len(ref.to))
	keys := make([]item, 0, len(ref.to))
	for _, r := range ref.to {
		if k := strings.ToLower(r); !seen[k] {
			seen[k] = true
			keys = append(keys, ref.recipientKey(r))
		}
	}
	got, err := s.batchGet(ctx, keys, true, recipientAttrs)
	if err != nil {
		return nil, fmt.Errorf("read recipients: %w", err)
	}
	out := make([]item, 0, len(got))
	for _, k := range keys {
		if it, ok := got[itemID(k)]; ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// recipientAttrs is what status reads need of a recipient item.
var recipientAttrs = project(aPK, aSK, aAddr, aN, aRN, aStatus, aTTL)

// completed reports whether the acceptance whose record has token tok
// and whose message is stored is complete: every recipient item written
// and every task queued.
//
// Accept writes the recipient items after the enqueue, so that their
// existence proves it: an item a recipient had at accept is written only
// by an Accept (or a take-over) whose enqueue of all the tasks succeeded,
// or by a status update for that recipient, which a worker makes only
// for a task naming it that it received (or downstream of one, for a
// workflow). So if every such item exists, every task was queued. Only a
// message without recipients, and records from before tokens existed,
// depend on the marker: its tasks are removed once they are queued.
func completed(tok string, hasTasks bool, msg item, recipients []item) bool {
	rn, _ := getNum(msg, aRN)
	var initial int64
	for _, it := range recipients {
		if n, _ := getNum(it, aN); n < rn {
			initial++
		}
	}
	if initial < rn {
		return false
	}
	return !hasTasks || (tok != "" && rn > 0)
}

// missingRecipients are the specs of msg whose items do not exist.
func missingRecipients(id string, msg item, recipients []item) (messageRef, []recipientSpec, error) {
	ref, err := refOf(id, msg)
	if err != nil {
		return messageRef{}, nil, err
	}
	specs, err := decodeSpecs(msg)
	if err != nil {
		return messageRef{}, nil, fmt.Errorf("message %s: %w", id, err)
	}
	have := make(map[string]bool, len(recipients))
	for _, it := range recipients {
		have[strings.ToLower(getStr(it, aAddr))] = true
	}
	missing := specs[:0:0]
	for _, r := range specs {
		if !have[strings.ToLower(r.Address)] {
			missing = append(missing, r)
		}
	}
	return ref, missing, nil
}

var errMarkerMoved = errors.New("enqueue marker moved")

// takeOver finishes an acceptance whose owner did not, after its message
// was stored: it claims the owner's deadline (so that concurrent retries
// do not all do this), enqueues the stored tasks, writes the missing
// recipient items and, where the items cannot tell, clears the marker.
func (s *Store) takeOver(ctx context.Context, rec, msg item, recipients []item, old int64, now time.Time) error {
	tok := getStr(rec, aTok)
	mine := now.Add(s.grace).UnixMilli()
	cond, names, values := ownerCondition(tok)
	names["#pend"] = aPending
	values[":mine"], values[":old"] = num(mine), num(old)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       recordKey(rec),
		UpdateExpression:          aws.String("SET #pend = :mine"),
		ConditionExpression:       aws.String("#pend = :old AND " + cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return errMarkerMoved
	}
	if err != nil {
		return fmt.Errorf("claim enqueue marker: %w", err)
	}
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace/2)
	defer cancel()
	err = s.redo(work, rec, msg, recipients)
	if rn, _ := getNum(msg, aRN); err != nil || tok == "" || rn == 0 {
		s.settleMarker(work, rec, tok, mine, err != nil)
	}
	return err
}

// redo enqueues the stored tasks again (the owner may have queued them
// already: the worker skips recipients whose status is settled), then
// writes the missing recipient items, in Accept's order.
func (s *Store) redo(ctx context.Context, rec, msg item, recipients []item) error {
	id := getStr(rec, aMsgID)
	tasks, err := decodeTasks(id, msg)
	if raw := getStr(rec, aTasks); raw != "" {
		// A record of the old layout carries them itself.
		err = json.Unmarshal([]byte(raw), &tasks)
	}
	if err != nil {
		return fmt.Errorf("stored tasks: %w", err)
	}
	if len(tasks) > 0 {
		if err := s.queue.Enqueue(ctx, tasks...); err != nil {
			return fmt.Errorf("enqueue %d tasks: %w", len(tasks), err)
		}
	}
	ref, missing, err := missingRecipients(id, msg, recipients)
	if err != nil {
		return err
	}
	return s.writeRecipients(ctx, ref, missing)
}

// takeKey takes the key of a dead owner that did not store its message,
// for p. It voids the owner's message id first: from then on the owner's
// late write of it fails, so the owner can never store a message under a
// key that is no longer its. It returns the record holding the key when
// that is not p's (someone was quicker, or the owner's message appeared).
func (s *Store) takeKey(ctx context.Context, p *acceptPlan, rec, msg item, now time.Time) (item, error) {
	tok := getStr(rec, aTok)
	if msg == nil || (isVoid(msg) && !voids(msg, tok)) {
		appeared, err := s.voidMessage(ctx, getStr(rec, aMsgID), tok, now)
		if err != nil {
			return nil, err
		}
		if appeared {
			return rec, nil
		}
	}
	p.renew(newToken(), now.Add(s.grace))
	if isOldRecord(rec) {
		cur, err := s.moveKey(ctx, p, rec)
		if err != nil && !errors.Is(err, errRecordGone) {
			return nil, fmt.Errorf("move the idempotency record: %w", err)
		}
		return cur, err
	}
	cond, names, values := ownerCondition(tok)
	cur, err := s.putRecord(ctx, p, cond, names, values)
	if err != nil && !errors.Is(err, errRecordGone) {
		return nil, fmt.Errorf("replace idempotency record: %w", err)
	}
	return cur, err
}

// voidMessage marks message id void for the acceptance with token tok (an
// acceptance whose key a retry takes over), unless a message is stored
// there: appeared reports that the owner's write came first after all.
// Voids accumulate tokens, so that every acceptance a void ever stopped
// stays stopped; a message of another acceptance may replace the void.
func (s *Store) voidMessage(ctx context.Context, id, tok string, now time.Time) (appeared bool, err error) {
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      messageKey(id),
		UpdateExpression:         aws.String("ADD #vt :tok SET #exp = if_not_exists(#exp, :exp)"),
		ConditionExpression:      aws.String("attribute_not_exists(#pk) OR attribute_exists(#vt)"),
		ExpressionAttributeNames: map[string]string{"#pk": aPK, "#vt": aVoided, "#exp": aTTL},
		ExpressionAttributeValues: item{
			":tok": &types.AttributeValueMemberSS{Value: []string{tok}},
			":exp": num(ttl(now.Add(s.retention))),
		},
	})
	if isConditionFailed(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("void message %s: %w", id, err)
	}
	return false, nil
}

// refOf is what recipient items repeat of their message item.
func refOf(id string, msg item) (messageRef, error) {
	at, err := getTime(msg, aAt)
	if err != nil {
		return messageRef{}, fmt.Errorf("message %s: %w", id, err)
	}
	rn, _ := getNum(msg, aRN)
	exp, _ := getNum(msg, aTTL)
	ref := messageRef{id: id, at: at, rn: rn, expires: exp, to: getStrList(msg, aTo)}
	if n, ok := getNum(msg, aShards); ok {
		if n < 1 || n > MaxShards {
			return messageRef{}, fmt.Errorf("message %s: %d TO# shards", id, n)
		}
		ref.shards = int(n)
	}
	return ref, nil
}

func decodeIdem(it item) (*gateway.IdempotencyRecord, error) {
	created, err := getTime(it, aCreated)
	if err != nil {
		return nil, fmt.Errorf("idempotency record: %w", err)
	}
	return &gateway.IdempotencyRecord{
		Sender:    getStr(it, aFrom),
		Key:       getStr(it, aKey),
		MessageID: getStr(it, aMsgID),
		Digest:    getStr(it, aDigest),
		CreatedAt: created,
	}, nil
}
