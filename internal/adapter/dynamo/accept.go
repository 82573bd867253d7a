package dynamo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// maxItemBytes is DynamoDB's item limit less a margin for the estimate's
// rounding: a message item that would pass it has its body moved to S3.
const maxItemBytes = 400<<10 - 1<<10

// acceptPlan is an Acceptance turned into items.
type acceptPlan struct {
	id  string
	ref messageRef
	// tok identifies this acceptance on its record and its message item,
	// so that a write of either can tell its own earlier attempt (an SDK
	// retry after a lost answer) from another acceptance's.
	tok      string
	idem     item // nil when the acceptance carries no idempotency key
	message  item
	workflow item // nil without a workflow
	// specs are the recipient items, written after the message item.
	specs   []recipientSpec
	tasks   []gateway.Task
	pending int64 // the owner's deadline on the record (epoch ms); 0 without one
	// claimed: the record holding the key is this plan's.
	claimed bool
}

// Accept claims the idempotency key, stores the message item (which
// carries every recipient's status), hands the tasks to the queue and
// writes the recipient items, in that order and without a transaction (a
// workflow is stored with its message in one). docs/dynamodb.md ("Accept")
// explains why every gap between these writes is safe.
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
	// or its owner released it) is tried again as a new acceptance.
	for range 3 {
		rec, err := s.acceptOnce(ctx, p)
		if errors.Is(err, errRecordGone) {
			continue
		}
		return rec, err
	}
	return nil, fmt.Errorf("dynamo: accept %s: the idempotency record kept changing", id)
}

var errRecordGone = errors.New("idempotency record gone")

func (s *Store) acceptOnce(ctx context.Context, p *acceptPlan) (*gateway.IdempotencyRecord, error) {
	if p.idem != nil && !p.claimed {
		if dup, done, err := s.settleOld(ctx, p); done {
			return dup, err
		}
	}
	if p.workflow != nil {
		return s.acceptTransaction(ctx, p)
	}
	if p.idem != nil && !p.claimed {
		// The grace period starts now, not before the body's upload.
		p.renew("", s.now().Add(s.grace))
		rec, err := s.claimKey(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: claim idempotency key: %w", p.id, err)
		}
		if rec != nil {
			if dup, owned, err := s.settleDuplicate(ctx, p, rec); !owned {
				return dup, err
			}
		}
	}
	if s.afterClaim != nil {
		if err := s.afterClaim(); err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: %w", p.id, err)
		}
	}
	// The key is this acceptance's now: finishing is what spares the
	// client a retry, so the caller's cancellation no longer stops it.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace/2)
	defer cancel()
	old, err := s.putMessage(work, p)
	if err != nil {
		s.settleMarker(work, p.idem, p.tok, p.pending, true)
		return nil, fmt.Errorf("dynamo: accept %s: write message: %w", p.id, err)
	}
	if old != nil {
		return s.messageTaken(work, p, old)
	}
	s.refs.put(p.ref, s.now())
	return nil, s.finish(work, p)
}

// finish runs afterAccept within half the grace period, whatever the
// caller's cancellation: the message is stored, and finishing is what
// spares it from waiting for a retry to be delivered.
func (s *Store) finish(ctx context.Context, p *acceptPlan) error {
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace/2)
	defer cancel()
	return s.afterAccept(work, p)
}

func (s *Store) plan(ctx context.Context, a *gateway.Acceptance, now time.Time) (*acceptPlan, error) {
	m := &a.Message
	at := m.AcceptedAt
	if at.IsZero() {
		at = now
	}
	p := &acceptPlan{id: m.ID, tok: newToken()}

	// One recipient item per address: addresses match case-insensitively.
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
	p.specs = specs
	p.ref = messageRef{id: m.ID, at: at, rn: int64(len(specs)), expires: ttl(at.Add(s.retention)), to: slices.Clone(m.Recipients)}
	if len(m.Recipients) == 1 {
		// Its recipient item is its TO# entry, which saves the gsi1 entry.
		// Not for more: the items are then in as many partitions, and a
		// status read takes a unit for each where one Query read them all
		// under MSG#<id>; every delivery reads its message's statuses, so
		// a message to n recipients would buy n write units with n² reads.
		p.ref.shards = s.shards.listings
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
		p.idem[aTok] = str(p.tok)
		if len(a.Tasks) > 0 && len(specs) == 0 {
			// No recipient item will tell that the tasks are queued.
			p.idem[aMarked] = num(1)
		}
		p.renew("", now.Add(s.grace))
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

	if a.Workflow != nil {
		if a.Workflow.WorkflowID != m.ID {
			return nil, fmt.Errorf("workflow %s accepted with message %s", a.Workflow.WorkflowID, m.ID)
		}
		if p.workflow, err = s.workflowItem(ctx, *a.Workflow); err != nil {
			return nil, fmt.Errorf("workflow: %w", err)
		}
	}
	return p, nil
}

// renew gives the plan a fresh owner deadline and, unless tok is empty, a
// fresh token: a plan that takes over a key must not be mistaken for the
// acceptance it stopped.
func (p *acceptPlan) renew(tok string, deadline time.Time) {
	if tok != "" {
		p.tok = tok
		p.idem[aTok] = str(tok)
		p.message[aTok] = str(tok)
	}
	p.pending = deadline.UnixMilli()
	p.idem[aPending] = num(p.pending)
}

func newToken() string {
	// 48 bits tell apart the few acceptances that ever meet on one key
	// or id.
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
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
	if m.Verification != nil {
		sv, err := json.Marshal(m.Verification)
		if err != nil {
			return nil, fmt.Errorf("encode sender verification: %w", err)
		}
		it[aVerif] = str(string(sv))
	}
	it[aAt] = timeAttr(p.ref.at)
	it[aRN] = num(p.ref.rn)
	it[aTTL] = num(p.ref.expires)
	it[aG1P] = str(s.shards.from(m.Sender, m.ID))
	it[aG1S] = str(timeSK(p.ref.at, m.ID))
	it[aG2P] = str(s.shards.day(p.ref.at, m.ID))
	it[aG2S] = str(timeSK(p.ref.at, m.ID))
	it[aTok] = str(p.tok)
	if p.ref.shards > 0 {
		it[aShards] = num(int64(p.ref.shards))
	}
	if len(p.specs) > 0 {
		it[aSpecs] = specsAttr(p.specs, m.Recipients, p.ref.at)
	}
	if p.idem != nil && len(p.tasks) > 0 {
		// Without a key a retry cannot find this acceptance again, so
		// only keyed acceptances keep their tasks for a take-over.
		tasks, err := tasksAttr(p.tasks, m.ID, m.Recipients, p.ref.at)
		if err != nil {
			return nil, err
		}
		it[aMsgTasks] = str(tasks)
	}
	if len(m.Raw) <= awsres.MaxItemBytes {
		if z := deflated(m.Raw); z != nil {
			it[aRawZ] = bin(z)
		} else {
			it[aRaw] = bin(m.Raw)
		}
		if itemSize(it) <= maxItemBytes {
			return it, nil
		}
		delete(it, aRaw)
		delete(it, aRawZ)
	}
	if s.blobs == nil {
		return nil, fmt.Errorf("body of %d bytes (inline limit %d): %w", len(m.Raw), awsres.MaxItemBytes, ErrBodyTooLarge)
	}
	// Uploaded before the message item is written, so that a stored
	// message always has its body; a body orphaned by a failed or
	// duplicate accept is removed by the bucket's lifecycle rule.
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

// claimKey puts the record if the key is free: absent, or past its window
// (even before TTL deletes it). It returns the record holding the key when
// that is another acceptance's, nil when it is this one's.
func (s *Store) claimKey(ctx context.Context, p *acceptPlan) (item, error) {
	return s.putRecord(ctx, p, claimCondition, map[string]string{"#pk": aPK, "#exp": aTTL}, item{":now": num(s.now().Unix())})
}

// putRecord writes p's idempotency record under cond. It returns nil when
// the record is p's now (p.claimed), else the record in the way (read back
// when the failure did not carry it; errRecordGone when it vanished since).
func (s *Store) putRecord(ctx context.Context, p *acceptPlan, cond string, names map[string]string, values item) (item, error) {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(s.table),
		Item:                                p.idem,
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		p.claimed = true
		return nil, nil
	}
	if !isConditionFailed(err) {
		return nil, err
	}
	rec := failedItem(err)
	if rec == nil {
		if rec, err = s.getItem(ctx, recordKey(p.idem), true, nil); err != nil {
			return nil, fmt.Errorf("read idempotency record: %w", err)
		}
		if rec == nil {
			return nil, errRecordGone
		}
	}
	if getStr(rec, aTok) == p.tok {
		// This put, sent again by the SDK after its answer was lost.
		p.claimed = true
		return nil, nil
	}
	return rec, nil
}

// claimCondition lets a record replace an expired one: the key is free
// again once its window has passed, even before TTL deletes the item.
const claimCondition = "attribute_not_exists(#pk) OR #exp <= :now"

// messageCondition lets a message item be written where none is, or over
// a void that does not stop this acceptance.
const messageCondition = "attribute_not_exists(#pk) OR (attribute_exists(#vt) AND NOT contains(#vt, :tok))"

// putMessage stores the message item unless its id is taken, by another
// acceptance's message or by a void that stops this acceptance; it then
// returns the item in the way.
func (s *Store) putMessage(ctx context.Context, p *acceptPlan) (item, error) {
	for range 3 {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           aws.String(s.table),
			Item:                                p.message,
			ConditionExpression:                 aws.String(messageCondition),
			ExpressionAttributeNames:            map[string]string{"#pk": aPK, "#vt": aVoided},
			ExpressionAttributeValues:           item{":tok": str(p.tok)},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			return nil, nil
		}
		if !isConditionFailed(err) {
			return nil, err
		}
		old := failedItem(err)
		if old == nil {
			if old, err = s.getItem(ctx, messageKey(p.id), true, project(aFrom, aAt, aTok, aVoided)); err != nil {
				return nil, fmt.Errorf("read the item in the way: %w", err)
			}
			if old == nil {
				continue // a void's TTL ran out in between
			}
		}
		if !isVoid(old) && getStr(old, aTok) == p.tok {
			// This put, sent again by the SDK after its answer was lost.
			return nil, nil
		}
		return old, nil
	}
	return nil, errors.New("the item in the way kept disappearing")
}

// messageTaken answers an Accept whose message id is taken. A void means
// that a retry of the same key took this acceptance over, and the client
// gets its answer from that retry. Another acceptance's message means the
// id is already stored: the key is released, so that nothing of this
// acceptance remains, and gateway.ErrMessageIDTaken is answered with no
// record, since nothing of that message (perhaps another sender's) may
// leave the store.
func (s *Store) messageTaken(ctx context.Context, p *acceptPlan, old item) (*gateway.IdempotencyRecord, error) {
	if isVoid(old) {
		return nil, fmt.Errorf("dynamo: accept %s: a retry of the same key took this acceptance over", p.id)
	}
	if p.claimed {
		cond, names, values := ownerCondition(p.tok)
		_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 aws.String(s.table),
			Key:                       recordKey(p.idem),
			ConditionExpression:       aws.String(cond),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
		})
		if isConditionFailed(err) {
			return nil, fmt.Errorf("dynamo: accept %s: message id already stored, and a retry took the key over", p.id)
		}
		if err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: message id already stored; release the key: %w", p.id, err)
		}
		p.claimed = false
	}
	return nil, fmt.Errorf("dynamo: accept %s: %w", p.id, gateway.ErrMessageIDTaken)
}

// ownerCondition holds while the record is still the one of the
// acceptance with this token (records written before tokens existed have
// none).
func ownerCondition(tok string) (string, map[string]string, item) {
	names := map[string]string{"#tok": aTok}
	if tok == "" {
		return "attribute_not_exists(#tok)", names, item{}
	}
	return "#tok = :tok", names, item{":tok": str(tok)}
}

func recordKey(rec item) item { return key(getStr(rec, aPK), getStr(rec, aSK)) }

// failedItem is the item a failed condition returned, if any.
func failedItem(err error) item {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) && len(ccf.Item) > 0 {
		return ccf.Item
	}
	return nil
}

// afterAccept runs once the message item is stored: the enqueue, then the
// recipient items. Written after the enqueue, the items are what tells a
// retry that the tasks are queued (see completed), so that no write has to
// clear a marker.
func (s *Store) afterAccept(ctx context.Context, p *acceptPlan) error {
	if s.afterCommit != nil {
		if err := s.afterCommit(); err != nil {
			return fmt.Errorf("dynamo: accept %s: %w", p.id, err)
		}
	}
	var err error
	if len(p.tasks) > 0 {
		if err = s.queue.Enqueue(ctx, p.tasks...); err != nil {
			err = fmt.Errorf("enqueue %d tasks: %w", len(p.tasks), err)
		}
	}
	if err == nil {
		err = s.writeRecipients(ctx, p.ref, p.specs)
	}
	if err != nil {
		// The owner's deadline is expired at once, so that the client's
		// retry takes over immediately instead of after the grace period.
		s.settleMarker(ctx, p.idem, p.tok, p.pending, true)
		return fmt.Errorf("dynamo: accept %s: %w", p.id, err)
	}
	if len(p.tasks) > 0 && len(p.specs) == 0 {
		// No recipient item can tell that the tasks are queued.
		s.settleMarker(ctx, p.idem, p.tok, p.pending, false)
	}
	return nil
}

// settleMarker clears the enqueue marker (the tasks are in the queue) or
// expires the owner's deadline (they may not be, or the recipient items
// may be missing), but only while the record is still the caller's and the
// deadline the one the caller set. Failure is harmless either way: an
// uncleared marker costs a later retry one redundant enqueue, which the
// worker skips by status; an unexpired deadline makes that retry wait out
// the grace.
func (s *Store) settleMarker(ctx context.Context, idem item, tok string, mine int64, expire bool) {
	if idem == nil {
		return
	}
	cond, names, values := ownerCondition(tok)
	names["#pend"] = aPending
	values[":mine"] = num(mine)
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       recordKey(idem),
		ConditionExpression:       aws.String("#pend = :mine AND " + cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
	if expire {
		in.UpdateExpression = aws.String("SET #pend = :zero")
		in.ExpressionAttributeValues[":zero"] = num(0)
	} else {
		in.UpdateExpression = aws.String("REMOVE #pend, #tasks, #tq")
		in.ExpressionAttributeNames["#tasks"] = aTasks
		in.ExpressionAttributeNames["#tq"] = aMarked
	}
	_, _ = s.db.UpdateItem(ctx, in)
}

// writeRecipients writes recipient items from their specs. Each is written
// only if absent, so that a repair never overwrites a status a worker has
// recorded since.
func (s *Store) writeRecipients(ctx context.Context, ref messageRef, specs []recipientSpec) error {
	if len(specs) == 0 {
		return nil
	}
	return forEach(ctx, len(specs), func(ctx context.Context, i int) error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     s.shards.recipientItem(ref, specs[i]),
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": aPK},
		})
		if err != nil && !isConditionFailed(err) {
			return fmt.Errorf("write recipient %s: %w", specs[i].Address, err)
		}
		return nil
	})
}

// acceptTransaction stores the record, the message and its workflow in one
// transaction, then continues as every Accept does. A take-over can
// rebuild recipient items from the message item, but not a workflow, and
// workflow acceptances are rare enough for the transaction's double price
// not to matter.
func (s *Store) acceptTransaction(ctx context.Context, p *acceptPlan) (*gateway.IdempotencyRecord, error) {
	for {
		var items []types.TransactWriteItem
		idemAt := -1
		if p.idem != nil && !p.claimed {
			p.renew("", s.now().Add(s.grace))
		}
		if p.idem != nil {
			put := &types.Put{
				TableName:                           aws.String(s.table),
				Item:                                p.idem,
				ConditionExpression:                 aws.String(claimCondition),
				ExpressionAttributeNames:            map[string]string{"#pk": aPK, "#exp": aTTL},
				ExpressionAttributeValues:           item{":now": num(s.now().Unix())},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}
			if p.claimed {
				// Taken over below: the record is this plan's already.
				cond, names, values := ownerCondition(p.tok)
				put.ConditionExpression, put.ExpressionAttributeNames, put.ExpressionAttributeValues = aws.String(cond), names, values
			}
			idemAt = len(items)
			items = append(items, types.TransactWriteItem{Put: put})
		}
		msgAt := len(items)
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{
				TableName:                           aws.String(s.table),
				Item:                                p.message,
				ConditionExpression:                 aws.String(messageCondition),
				ExpressionAttributeNames:            map[string]string{"#pk": aPK, "#vt": aVoided},
				ExpressionAttributeValues:           item{":tok": str(p.tok)},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			// No condition: the workflow id is the message id.
			types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: p.workflow}},
		)
		reasons, err := s.transact(ctx, items)
		if err != nil {
			return nil, fmt.Errorf("dynamo: accept %s: write transaction: %w", p.id, err)
		}
		if reasons == nil {
			p.claimed = p.idem != nil
			s.refs.put(p.ref, s.now())
			return nil, s.finish(ctx, p)
		}
		switch {
		case reasonFailed(reasons, idemAt) && !p.claimed:
			rec := reasons[idemAt].Item
			if len(rec) == 0 {
				if rec, err = s.getItem(ctx, recordKey(p.idem), true, nil); err != nil {
					return nil, fmt.Errorf("dynamo: accept %s: read idempotency record: %w", p.id, err)
				}
				if rec == nil {
					return nil, errRecordGone
				}
			}
			if dup, owned, err := s.settleDuplicate(ctx, p, rec); !owned {
				return dup, err
			}
		case reasonFailed(reasons, idemAt):
			return nil, fmt.Errorf("dynamo: accept %s: a retry of the same key took the key over", p.id)
		case reasonFailed(reasons, msgAt):
			old := reasons[msgAt].Item
			if len(old) == 0 {
				if old, err = s.getItem(ctx, messageKey(p.id), true, project(aFrom, aAt, aTok, aVoided)); err != nil {
					return nil, fmt.Errorf("dynamo: accept %s: read stored message: %w", p.id, err)
				}
			}
			return s.messageTaken(ctx, p, old)
		default:
			codes := make([]string, len(reasons))
			for i, r := range reasons {
				codes[i] = aws.ToString(r.Code)
			}
			return nil, fmt.Errorf("dynamo: accept %s: transaction cancelled: %s", p.id, strings.Join(codes, ", "))
		}
	}
}
