package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// GetMessage reads the message item, and its body from S3 when it was
// claim-checked. Reads are strongly consistent: a worker reads the message
// moments after Accept wrote it, and must not take it for missing.
func (s *Store) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	it, err := s.getItem(ctx, messageKey(id), true, nil)
	if err != nil {
		return nil, fmt.Errorf("dynamo: get message %s: %w", id, err)
	}
	if it == nil || expired(it, s.now()) || isVoid(it) {
		return nil, fmt.Errorf("dynamo: get message %s: %w", id, gateway.ErrNotFound)
	}
	m, err := decodeMessage(id, it)
	if err != nil {
		return nil, fmt.Errorf("dynamo: get message %s: %w", id, err)
	}
	// A worker records the delivery next: that needs what the item says
	// about where the recipient items are.
	s.remember(id, it)
	if m.Raw, err = s.body(ctx, it); err != nil {
		return nil, fmt.Errorf("dynamo: get message %s: %w", id, err)
	}
	return m, nil
}

// body returns a message item's body, inline or from S3.
func (s *Store) body(ctx context.Context, it item) ([]byte, error) {
	ref := getStr(it, aBlob)
	if ref == "" {
		if z := getBin(it, aRawZ); z != nil {
			return inflated(z)
		}
		return getBin(it, aRaw), nil
	}
	if s.blobs == nil {
		return nil, fmt.Errorf("body is in S3 (%s) and no blob store is configured", ref)
	}
	raw, err := s.blobs.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return raw, nil
}

// decodeMessage reads everything but the body.
func decodeMessage(id string, it item) (*gateway.StoredMessage, error) {
	at, err := getTime(it, aAt)
	if err != nil {
		return nil, err
	}
	m := &gateway.StoredMessage{
		ID:         id,
		Sender:     getStr(it, aFrom),
		Recipients: getStrList(it, aTo),
		Subject:    getStr(it, aSubj),
		Origin:     gateway.Origin(getStr(it, aOrigin)),
		AcceptedAt: at,
	}
	if raw := getStr(it, aVerif); raw != "" {
		var sv gateway.SenderVerification
		if err := json.Unmarshal([]byte(raw), &sv); err != nil {
			return nil, fmt.Errorf("decode sender verification: %w", err)
		}
		m.Verification = &sv
	}
	return m, nil
}

// GetStatuses reads the message item and its recipient items (head), in
// the order of the message's recipients (recipients added later follow,
// oldest first); statuses whose items Accept has not written yet come
// from the message item.
func (s *Store) GetStatuses(ctx context.Context, id string) ([]gateway.RecipientStatus, error) {
	msg, items, err := s.head(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("dynamo: get statuses %s: %w", id, err)
	}
	if msg == nil || expired(msg, s.now()) || isVoid(msg) {
		return nil, fmt.Errorf("dynamo: get statuses %s: %w", id, gateway.ErrNotFound)
	}
	out, err := assembleStatuses(id, msg, items)
	if err != nil {
		return nil, fmt.Errorf("dynamo: get statuses %s: %w", id, err)
	}
	return out, nil
}

// assembleStatuses orders recipient items by position and fills in, from
// the message item, the ones not written yet.
func assembleStatuses(id string, msg item, recipients []item) ([]gateway.RecipientStatus, error) {
	type positioned struct {
		n  int64
		sk string
		st gateway.RecipientStatus
	}
	list := make([]positioned, 0, len(recipients))
	have := make(map[string]bool, len(recipients))
	for _, it := range recipients {
		addr := getStr(it, aAddr)
		st, err := decodeStatus(addr, it[aStatus])
		if err != nil {
			return nil, err
		}
		n, _ := getNum(it, aN)
		sk := strings.ToLower(addr)
		have[sk] = true
		list = append(list, positioned{n: n, sk: sk, st: st})
	}
	if msg != nil && hasSpecs(msg) {
		specs, err := decodeSpecs(msg)
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", id, err)
		}
		for _, r := range specs {
			if sk := strings.ToLower(r.Address); !have[sk] {
				st := r.Status
				st.Address = r.Address
				list = append(list, positioned{n: r.N, sk: sk, st: st})
			}
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n < list[j].n
		}
		return list[i].sk < list[j].sk
	})
	out := make([]gateway.RecipientStatus, len(list))
	for i, p := range list {
		out[i] = p.st
	}
	return out, nil
}

// queryAll follows a query to its end. Callers use it only where the
// result is bounded (one message's recipients, one page of agents).
func (s *Store) queryAll(ctx context.Context, in *dynamodb.QueryInput) ([]item, error) {
	var out []item
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, res.Items...)
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// UpdateStatuses writes each named recipient's status into its own item.
// Recipients are separate items, so concurrent updates of different
// recipients never overwrite each other, and an update costs the write
// units of one small item rather than of the message. Several updates are
// written in parallel, not as a transaction: the ports ask for each
// recipient's status to be replaced, not for the set to change at once,
// and a transaction would double the cost.
func (s *Store) UpdateStatuses(ctx context.Context, id string, updates []gateway.RecipientStatus) error {
	// The last update of an address wins, as if applied in order.
	last := make(map[string]int, len(updates))
	order := make([]string, 0, len(updates))
	for i, u := range updates {
		k := strings.ToLower(u.Address)
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = i
	}
	ref, err := s.messageRef(ctx, id)
	if err != nil {
		return fmt.Errorf("dynamo: update statuses %s: %w", id, err)
	}
	err = forEach(ctx, len(order), func(ctx context.Context, i int) error {
		return s.setStatus(ctx, ref, updates[last[order[i]]], nil)
	})
	if err != nil {
		return fmt.Errorf("dynamo: update statuses %s: %w", id, err)
	}
	return nil
}

// setStatus replaces one recipient's status and, with inbox set, files the
// message in the recipient's inbox (keeping an earlier filing's place).
// The common case is one conditional UpdateItem; only a recipient without
// an item yet (one the message does not have, or one whose item Accept
// has not written yet) takes a read and a put.
func (s *Store) setStatus(ctx context.Context, ref messageRef, st gateway.RecipientStatus, inbox *time.Time) error {
	if st.Address == "" {
		return errors.New("status without an address")
	}
	id := ref.id
	for range 3 {
		err := s.updateRecipient(ctx, ref, st, inbox)
		if !isConditionFailed(err) {
			if err != nil {
				return fmt.Errorf("recipient %s: %w", st.Address, err)
			}
			return nil
		}
		created, err := s.createRecipient(ctx, id, st, inbox)
		if err != nil {
			return fmt.Errorf("recipient %s: %w", st.Address, err)
		}
		if created {
			return nil
		}
		// Someone else created the item in between: update it.
	}
	return fmt.Errorf("recipient %s: item kept appearing and disappearing", st.Address)
}

func (s *Store) updateRecipient(ctx context.Context, ref messageRef, st gateway.RecipientStatus, inbox *time.Time) error {
	id := ref.id
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       ref.recipientKey(st.Address),
		UpdateExpression:          aws.String("SET #st = :st"),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#pk": aPK, "#st": aStatus},
		ExpressionAttributeValues: item{":st": statusAttr(st)},
	}
	if inbox != nil {
		// if_not_exists keeps the entry where it was filed first, so a
		// redelivered task does not move it to the end of the inbox.
		in.UpdateExpression = aws.String("SET #st = :st, #g2p = if_not_exists(#g2p, :g2p), #g2s = if_not_exists(#g2s, :g2s)")
		in.ExpressionAttributeNames["#g2p"] = aG2P
		in.ExpressionAttributeNames["#g2s"] = aG2S
		in.ExpressionAttributeValues[":g2p"] = str(s.shards.inboxOf(st.Address, id))
		in.ExpressionAttributeValues[":g2s"] = str(timeSK(*inbox, id))
	}
	_, err := s.db.UpdateItem(ctx, in)
	return err
}

// createRecipient writes the item of a recipient that has none, if the
// message exists. It reports false when the item appeared meanwhile.
func (s *Store) createRecipient(ctx context.Context, id string, st gateway.RecipientStatus, inbox *time.Time) (bool, error) {
	msg, err := s.getItem(ctx, messageKey(id), true, project(aTo, aAt, aRN, aTTL, aSpecs, aOver, aVoided, aShards))
	if err != nil {
		return false, fmt.Errorf("read message: %w", err)
	}
	if msg == nil || expired(msg, s.now()) || isVoid(msg) {
		return false, gateway.ErrNotFound
	}
	ref, err := refOf(id, msg)
	if err != nil {
		return false, err
	}
	specs, err := decodeSpecs(msg)
	if err != nil {
		return false, fmt.Errorf("message %s: %w", id, err)
	}
	spec := recipientSpec{Address: st.Address, Status: st, Inbox: inbox}
	found := false
	for _, r := range specs {
		if strings.EqualFold(r.Address, st.Address) {
			spec.Address, spec.N, spec.Indexed, found = r.Address, r.N, r.Indexed, true
			if spec.Inbox == nil {
				// Filed at accept: the item keeps that inbox entry.
				spec.Inbox = r.Inbox
			}
			break
		}
	}
	if !found {
		// A recipient the message does not have: it sorts after the
		// message's own, in the order of addition.
		spec.N = s.now().UnixMilli()
		spec.Indexed = containsFold(getStrList(msg, aTo), st.Address)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     s.shards.recipientItem(ref, spec),
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": aPK},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create item: %w", err)
	}
	return true, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
