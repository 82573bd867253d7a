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

	"github.com/agentry/agentry/internal/awsres"
	"github.com/agentry/agentry/internal/gateway"
)

// maxItemBytes is DynamoDB's item limit less a margin for the estimate's
// rounding: a message item that would pass it has its body moved to S3.
const maxItemBytes = 400<<10 - 1<<10

// acceptPlan is an Acceptance turned into writes.
type acceptPlan struct {
	id      string
	ref     messageRef
	idem    item // nil when the acceptance carries no idempotency key
	message item
	items   []types.TransactWriteItem
	// Index of each conditional item in items (-1 when absent).
	idemAt, messageAt int
	// over are the recipient items that did not fit in the transaction.
	over    []recipientSpec
	tasks   []gateway.Task
	pending int64 // the enqueue marker's deadline (epoch ms); 0 without one
}

// Accept stores the idempotency record, the message, one item per
// recipient (its status and, for Acceptance.Inbox, its inbox entry) in one
// transaction, then hands the tasks to the queue. See docs/dynamodb.md
// ("Accept") for the enqueue marker that makes the gap between the two
// safe.
func (s *Store) Accept(ctx context.Context, a *gateway.Acceptance) (*gateway.IdempotencyRecord, error) {
	if a == nil || a.Message.ID == "" {
		return nil, errors.New("dynamo: accept: message without id")
	}
	id := a.Message.ID
	p, err := s.plan(ctx, a, s.now().UTC())
	if err != nil {
		return nil, fmt.Errorf("dynamo: accept %s: %w", id, err)
	}
	// A duplicate whose record vanishes while it is being read (it expired
	// in between) is tried again as a new acceptance.
	for range 3 {
		reasons, err := s.transact(ctx, p.items)
		if err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: write transaction: %w", id, err)
		}
		if reasons == nil {
			return nil, s.afterAccept(ctx, p)
		}
		rec, err := s.duplicate(ctx, p, reasons)
		if errors.Is(err, errRecordGone) {
			continue
		}
		return rec, err
	}
	return nil, fmt.Errorf("dynamo: accept %s: the idempotency record kept changing", id)
}

var errRecordGone = errors.New("idempotency record gone")

func (s *Store) plan(ctx context.Context, a *gateway.Acceptance, now time.Time) (*acceptPlan, error) {
	m := &a.Message
	at := m.AcceptedAt
	if at.IsZero() {
		at = now
	}
	p := &acceptPlan{id: m.ID, idemAt: -1, messageAt: -1}

	// One recipient item per address: the transaction may not touch an
	// item twice, and addresses match case-insensitively.
	specs := make([]recipientSpec, 0, len(a.Statuses))
	byAddr := make(map[string]int, len(a.Statuses))
	for _, st := range a.Statuses {
		k := strings.ToLower(st.Address)
		if _, dup := byAddr[k]; dup || k == "" {
			continue
		}
		byAddr[k] = len(specs)
		specs = append(specs, recipientSpec{Address: st.Address, N: int64(len(specs)), Status: st, Indexed: true})
	}
	for _, r := range a.Inbox {
		i, ok := byAddr[strings.ToLower(r)]
		if !ok {
			return nil, fmt.Errorf("inbox recipient %s has no status", r)
		}
		received := at
		specs[i].Inbox = &received
	}
	p.ref = messageRef{id: m.ID, at: at, rn: int64(len(specs)), expires: ttl(at.Add(s.retention))}

	room := maxTransactItems - 1
	if a.Idempotency.Key != "" {
		room--
	}
	if a.Workflow != nil {
		room--
	}
	inTx := specs
	if len(specs) > room {
		inTx, p.over = specs[:room], specs[room:]
	}

	if a.Idempotency.Key != "" {
		rec := a.Idempotency.Filled(m, now)
		p.idem = idemKey(rec.Sender, rec.Key)
		p.idem[aFrom] = str(rec.Sender)
		p.idem[aKey] = str(rec.Key)
		p.idem[aMsgID] = str(rec.MessageID)
		putStr(p.idem, aDigest, rec.Digest)
		p.idem[aCreated] = timeAttr(rec.CreatedAt)
		p.idem[aTTL] = num(ttl(rec.CreatedAt.Add(gateway.IdempotencyWindow)))
		if len(a.Tasks) > 0 || len(p.over) > 0 {
			// Without a key a retry cannot find this acceptance again, so
			// only keyed acceptances carry the marker and their tasks.
			tasks, err := json.Marshal(a.Tasks)
			if err != nil {
				return nil, fmt.Errorf("encode tasks: %w", err)
			}
			p.pending = now.Add(s.grace).UnixMilli()
			p.idem[aPending] = num(p.pending)
			p.idem[aTasks] = str(string(tasks))
		}
	}
	p.tasks = make([]gateway.Task, len(a.Tasks))
	for i, t := range a.Tasks {
		t.Lease = ""
		p.tasks[i] = t
	}

	msg, err := s.messageItem(ctx, a, p)
	if err != nil {
		return nil, err
	}
	p.message = msg

	if p.idem != nil {
		p.idemAt = len(p.items)
		p.items = append(p.items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.table),
			Item:      p.idem,
			// An expired record is replaced: the key is free again once
			// its window has passed, even before TTL deletes the item.
			ConditionExpression:                 aws.String("attribute_not_exists(#pk) OR #exp <= :now"),
			ExpressionAttributeNames:            map[string]string{"#pk": aPK, "#exp": aTTL},
			ExpressionAttributeValues:           item{":now": num(now.Unix())},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}
	p.messageAt = len(p.items)
	p.items = append(p.items, types.TransactWriteItem{Put: &types.Put{
		TableName:                           aws.String(s.table),
		Item:                                p.message,
		ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames:            map[string]string{"#pk": aPK},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}})
	if a.Workflow != nil {
		if a.Workflow.WorkflowID != m.ID {
			return nil, fmt.Errorf("workflow %s accepted with message %s", a.Workflow.WorkflowID, m.ID)
		}
		wf, err := s.workflowItem(ctx, *a.Workflow)
		if err != nil {
			return nil, fmt.Errorf("workflow: %w", err)
		}
		// No condition either: the workflow id is the message id.
		p.items = append(p.items, types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: wf}})
	}
	for _, r := range inTx {
		// No condition: the message item's condition already guarantees
		// that this id is new.
		p.items = append(p.items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.table),
			Item:      recipientItem(p.ref, r),
		}})
	}
	return p, nil
}

// messageItem builds the message item, moving the body to S3 when it would
// not fit.
func (s *Store) messageItem(ctx context.Context, a *gateway.Acceptance, p *acceptPlan) (item, error) {
	m := &a.Message
	it := messageKey(m.ID)
	it[aFrom] = str(m.Sender)
	it[aTo] = strList(m.Recipients)
	putStr(it, aSubj, m.Subject)
	putStr(it, aOrigin, string(m.Origin))
	it[aAt] = timeAttr(p.ref.at)
	it[aRN] = num(p.ref.rn)
	it[aTTL] = num(p.ref.expires)
	it[aG1P] = str(pfxFrom + strings.ToLower(m.Sender))
	it[aG1S] = str(timeSK(p.ref.at, m.ID))
	it[aG2P] = str(pfxDay + p.ref.at.UTC().Format(dayLayout))
	it[aG2S] = str(timeSK(p.ref.at, m.ID))
	if len(p.over) > 0 {
		over, err := json.Marshal(p.over)
		if err != nil {
			return nil, fmt.Errorf("encode recipients beyond the transaction: %w", err)
		}
		it[aOver] = str(string(over))
	}
	it[aRaw] = bin(m.Raw)
	if len(m.Raw) <= awsres.MaxItemBytes && itemSize(it) <= maxItemBytes {
		return it, nil
	}
	delete(it, aRaw)
	if s.blobs == nil {
		return nil, fmt.Errorf("body of %d bytes (inline limit %d): %w", len(m.Raw), awsres.MaxItemBytes, ErrBodyTooLarge)
	}
	// Uploaded before the transaction, so that a committed message always
	// has its body; a body orphaned by a failed or duplicate accept is
	// removed by the bucket's lifecycle rule.
	ref, err := s.blobs.Put(ctx, m.Raw)
	if err != nil {
		return nil, fmt.Errorf("store body of %d bytes in S3: %w", len(m.Raw), err)
	}
	it[aBlob] = str(ref)
	if size := itemSize(it); size > maxItemBytes {
		return nil, fmt.Errorf("message item is %d bytes without its body, over DynamoDB's item limit", size)
	}
	return it, nil
}

// afterAccept runs once the transaction committed: the recipient items
// that did not fit in it, then the enqueue. It does not stop when the
// caller gives up: the message is accepted now, and finishing is what
// spares it from waiting for a retry to be delivered.
func (s *Store) afterAccept(ctx context.Context, p *acceptPlan) error {
	if s.afterCommit != nil {
		if err := s.afterCommit(); err != nil {
			return fmt.Errorf("dynamo: accept %s: %w", p.id, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace/2)
	defer cancel()
	err := s.writeOver(ctx, p.ref, p.over)
	if err == nil && len(p.tasks) > 0 {
		if err = s.queue.Enqueue(ctx, p.tasks...); err != nil {
			err = fmt.Errorf("enqueue %d tasks: %w", len(p.tasks), err)
		}
	}
	if p.pending == 0 {
		if err != nil {
			return fmt.Errorf("dynamo: accept %s: %w", p.id, err)
		}
		return nil
	}
	if err != nil {
		// The marker is expired at once, so that the client's retry takes
		// the enqueue over immediately instead of after the grace period.
		s.settleMarker(ctx, p.idem, p.pending, true)
		return fmt.Errorf("dynamo: accept %s: %w", p.id, err)
	}
	s.settleMarker(ctx, p.idem, p.pending, false)
	return nil
}

// settleMarker clears the enqueue marker (the tasks are in the queue) or
// expires it (they may not be), but only while it is still the one set by
// the caller, who owns it. Failure is harmless either way: an uncleared
// marker costs a later retry one redundant enqueue, which the worker
// skips by status; an unexpired one makes that retry wait out the grace.
func (s *Store) settleMarker(ctx context.Context, idem item, mine int64, expire bool) {
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(getStr(idem, aPK), getStr(idem, aSK)),
		ConditionExpression:       aws.String("#pend = :mine"),
		ExpressionAttributeNames:  map[string]string{"#pend": aPending},
		ExpressionAttributeValues: item{":mine": num(mine)},
	}
	if expire {
		in.UpdateExpression = aws.String("SET #pend = :zero")
		in.ExpressionAttributeValues[":zero"] = num(0)
	} else {
		in.UpdateExpression = aws.String("REMOVE #pend, #tasks")
		in.ExpressionAttributeNames["#tasks"] = aTasks
	}
	_, _ = s.db.UpdateItem(ctx, in)
}

// writeOver writes recipient items that did not fit in the transaction.
// Each is written only if absent, so a recovery never overwrites a status
// a worker has recorded since.
func (s *Store) writeOver(ctx context.Context, ref messageRef, over []recipientSpec) error {
	return forEach(ctx, len(over), func(ctx context.Context, i int) error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     recipientItem(ref, over[i]),
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": aPK},
		})
		if err != nil && !isConditionFailed(err) {
			return fmt.Errorf("write recipient %s: %w", over[i].Address, err)
		}
		return nil
	})
}

// duplicate answers a transaction cancelled by a condition.
func (s *Store) duplicate(ctx context.Context, p *acceptPlan, reasons []types.CancellationReason) (*gateway.IdempotencyRecord, error) {
	switch {
	case reasonFailed(reasons, p.idemAt):
		rec := reasons[p.idemAt].Item
		if len(rec) == 0 {
			var err error
			if rec, err = s.getItem(ctx, key(getStr(p.idem, aPK), getStr(p.idem, aSK)), true, nil); err != nil {
				return nil, fmt.Errorf("dynamo: accept %s: read idempotency record: %w", p.id, err)
			}
			if rec == nil {
				return nil, errRecordGone
			}
		}
		return s.settleDuplicate(ctx, p.id, rec)
	case reasonFailed(reasons, p.messageAt):
		old := reasons[p.messageAt].Item
		if len(old) == 0 {
			var err error
			if old, err = s.getItem(ctx, messageKey(p.id), true, project(aFrom, aAt)); err != nil {
				return nil, fmt.Errorf("dynamo: accept %s: read stored message: %w", p.id, err)
			}
		}
		at, _ := getTime(old, aAt)
		rec := &gateway.IdempotencyRecord{Sender: getStr(old, aFrom), MessageID: p.id, CreatedAt: at}
		return rec, fmt.Errorf("dynamo: accept %s: message id already stored: %w", p.id, gateway.ErrDuplicate)
	}
	codes := make([]string, len(reasons))
	for i, r := range reasons {
		codes[i] = aws.ToString(r.Code)
	}
	return nil, fmt.Errorf("dynamo: accept %s: transaction cancelled: %s", p.id, strings.Join(codes, ", "))
}

// settleDuplicate returns the earlier record once its tasks are known to
// be queued. While its marker is live the first Accept may still be
// enqueueing, so this waits; once the marker is past its deadline that
// Accept has given up or died, and this one enqueues the stored tasks.
func (s *Store) settleDuplicate(ctx context.Context, id string, rec item) (*gateway.IdempotencyRecord, error) {
	poll := 20 * time.Millisecond
	for {
		out, err := decodeIdem(rec)
		if err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: %w", id, err)
		}
		pend, marked := getNum(rec, aPending)
		if !marked {
			return out, fmt.Errorf("dynamo: accept %s: key %q used by %s: %w", id, out.Key, out.MessageID, gateway.ErrDuplicate)
		}
		now := s.now()
		if pend <= now.UnixMilli() {
			err := s.takeOver(ctx, rec, pend, now)
			if err == nil {
				return out, fmt.Errorf("dynamo: accept %s: key %q used by %s (its tasks re-enqueued): %w", id, out.Key, out.MessageID, gateway.ErrDuplicate)
			}
			if !errors.Is(err, errMarkerMoved) {
				return nil, fmt.Errorf("dynamo: accept %s: finish enqueue of %s: %w", id, out.MessageID, err)
			}
		} else if err := sleep(ctx, min(poll, time.Duration(pend-now.UnixMilli()+1)*time.Millisecond)); err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: wait for the enqueue of %s: %w", id, out.MessageID, err)
		}
		poll = min(2*poll, 250*time.Millisecond)
		k := key(getStr(rec, aPK), getStr(rec, aSK))
		if rec, err = s.getItem(ctx, k, true, nil); err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: read idempotency record: %w", id, err)
		}
		if rec == nil || expired(rec, s.now()) {
			return nil, errRecordGone
		}
	}
}

var errMarkerMoved = errors.New("enqueue marker moved")

// takeOver finishes the enqueue of an acceptance whose Accept did not: it
// claims the expired marker (so that concurrent retries do not all
// enqueue), writes what the transaction left out, enqueues the stored
// tasks and clears the marker.
func (s *Store) takeOver(ctx context.Context, rec item, old int64, now time.Time) error {
	mine := now.Add(s.grace).UnixMilli()
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(getStr(rec, aPK), getStr(rec, aSK)),
		UpdateExpression:          aws.String("SET #pend = :mine"),
		ConditionExpression:       aws.String("#pend = :old"),
		ExpressionAttributeNames:  map[string]string{"#pend": aPending},
		ExpressionAttributeValues: item{":mine": num(mine), ":old": num(old)},
	})
	if isConditionFailed(err) {
		return errMarkerMoved
	}
	if err != nil {
		return fmt.Errorf("claim enqueue marker: %w", err)
	}
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace/2)
	defer cancel()
	err = s.redo(work, rec)
	s.settleMarker(work, rec, mine, err != nil)
	return err
}

func (s *Store) redo(ctx context.Context, rec item) error {
	var tasks []gateway.Task
	if err := json.Unmarshal([]byte(getStr(rec, aTasks)), &tasks); err != nil {
		return fmt.Errorf("stored tasks: %w", err)
	}
	id := getStr(rec, aMsgID)
	msg, err := s.getItem(ctx, messageKey(id), true, project(aAt, aRN, aTTL, aOver))
	if err != nil {
		return fmt.Errorf("read message %s: %w", id, err)
	}
	if msg != nil && getStr(msg, aOver) != "" {
		ref, over, err := decodeOver(id, msg)
		if err != nil {
			return err
		}
		if err := s.writeOver(ctx, ref, over); err != nil {
			return err
		}
	}
	if len(tasks) == 0 {
		return nil
	}
	if err := s.queue.Enqueue(ctx, tasks...); err != nil {
		return fmt.Errorf("enqueue %d tasks: %w", len(tasks), err)
	}
	return nil
}

// decodeOver reads the recipient items a message item carries for later.
func decodeOver(id string, msg item) (messageRef, []recipientSpec, error) {
	at, err := getTime(msg, aAt)
	if err != nil {
		return messageRef{}, nil, fmt.Errorf("message %s: %w", id, err)
	}
	rn, _ := getNum(msg, aRN)
	exp, _ := getNum(msg, aTTL)
	var over []recipientSpec
	if s := getStr(msg, aOver); s != "" {
		if err := json.Unmarshal([]byte(s), &over); err != nil {
			return messageRef{}, nil, fmt.Errorf("message %s: recipients beyond the transaction: %w", id, err)
		}
	}
	return messageRef{id: id, at: at, rn: rn, expires: exp}, over, nil
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
