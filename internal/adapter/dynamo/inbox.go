package dynamo

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// DeliverToInbox records the recipient's status and files the message in
// its inbox with one UpdateItem of the recipient's item: the inbox entry is
// that item's gsi2 key, so status and entry cannot disagree and no
// transaction is needed. It returns gateway.ErrNotFound when the message is
// not stored.
func (s *Store) DeliverToInbox(ctx context.Context, recipient, messageID string, status gateway.RecipientStatus) error {
	// The inbox and the status are the same item, so they are one
	// recipient's by construction: the one named by recipient.
	status.Address = recipient
	received := s.now().UTC()
	ref, err := s.messageRef(ctx, messageID)
	if err == nil {
		err = s.setStatus(ctx, ref, status, &received)
	}
	if err != nil {
		return fmt.Errorf("dynamo: deliver %s to %s: %w", messageID, recipient, err)
	}
	return nil
}

// ListInbox queries the recipient's gsi2 partitions (one per shard)
// oldest first, merges them by sort key, and reads the bodies of the page
// in one BatchGetItem (plus S3 for claim-checked ones). The cursor is the
// last entry's sort key, a position in the merged inbox rather than in a
// shard, so acknowledging entries between pages does not disturb the next
// one.
func (s *Store) ListInbox(ctx context.Context, recipient string, limit int, cursor string) ([]gateway.InboxEntry, string, error) {
	limit = pageLimit(limit)
	after := ""
	if cursor != "" {
		var err error
		if after, err = decodeCursor(cursorInbox, cursor); err != nil {
			return nil, "", fmt.Errorf("dynamo: list inbox %s: %w", recipient, err)
		}
	}
	sks, next, err := s.inboxPage(ctx, recipient, limit, after)
	if err != nil {
		return nil, "", fmt.Errorf("dynamo: list inbox %s: %w", recipient, err)
	}
	if len(sks) == 0 {
		return nil, next, nil
	}

	type filed struct {
		id string
		at string
	}
	page := make([]filed, len(sks))
	keys := make([]item, len(sks))
	for i, sk := range sks {
		_, id, err := parseTimeSK(sk)
		if err != nil {
			return nil, "", fmt.Errorf("dynamo: list inbox %s: %w", recipient, err)
		}
		page[i] = filed{id: id, at: sk}
		keys[i] = messageKey(id)
	}
	// Strongly consistent: an entry whose message a lagging read missed
	// would be skipped, and the cursor would move past it for good.
	msgs, err := s.batchGet(ctx, keys, true, nil)
	if err != nil {
		return nil, "", fmt.Errorf("dynamo: list inbox %s: read messages: %w", recipient, err)
	}
	now := s.now()
	out := make([]gateway.InboxEntry, len(page))
	keep := make([]bool, len(page))
	err = forEach(ctx, len(page), func(ctx context.Context, i int) error {
		msg := msgs[itemID(keys[i])]
		if msg == nil || expired(msg, now) || isVoid(msg) {
			// An entry outliving its message (TTL deletes them
			// independently) has nothing to show.
			return nil
		}
		// The owner acknowledges what it read next.
		s.remember(page[i].id, msg)
		raw, err := s.body(ctx, msg)
		if err != nil {
			return fmt.Errorf("message %s: %w", page[i].id, err)
		}
		received, _, _ := parseTimeSK(page[i].at)
		accepted, err := getTime(msg, aAt)
		if err != nil {
			return fmt.Errorf("message %s: %w", page[i].id, err)
		}
		out[i] = gateway.InboxEntry{MessageID: page[i].id, Raw: raw, ReceivedAt: received, AcceptedAt: accepted}
		keep[i] = true
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("dynamo: list inbox %s: %w", recipient, err)
	}
	kept := out[:0]
	for i := range out {
		if keep[i] {
			kept = append(kept, out[i])
		}
	}
	return kept, next, nil
}

// inboxPage returns the sort keys of the inbox's first limit entries
// after the position `after`, oldest first, and the cursor of the next
// page ("" at the end). Each shard is asked for one more entry than the
// page: the page is then exactly the merged shards' first entries, and an
// entry left over in any shard means another page follows. A shard whose
// query DynamoDB cut short (1 MB) bounds the page at its last entry, since
// it may hold unfetched entries right after it.
func (s *Store) inboxPage(ctx context.Context, recipient string, limit int, after string) ([]string, string, error) {
	parts := all(inboxBase(recipient), s.shards.inbox)
	type shardPage struct {
		sks []string
		cut bool
	}
	pages := make([]shardPage, len(parts))
	err := forEach(ctx, len(parts), func(ctx context.Context, i int) error {
		in := &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(gsiInbox),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": aG2P},
			ExpressionAttributeValues: item{":p": str(parts[i])},
			ScanIndexForward:          aws.Bool(true),
			Limit:                     aws.Int32(int32(limit + 1)),
		}
		if after != "" {
			in.KeyConditionExpression = aws.String("#p = :p AND #s > :after")
			in.ExpressionAttributeNames["#s"] = aG2S
			in.ExpressionAttributeValues[":after"] = str(after)
		}
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("query %s: %w", parts[i], err)
		}
		for _, it := range res.Items {
			pages[i].sks = append(pages[i].sks, getStr(it, aG2S))
		}
		pages[i].cut = len(res.LastEvaluatedKey) > 0 && len(res.Items) <= limit
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	var merged []string
	bound := "" // the lowest last entry of a cut shard: nothing past it is certain
	for _, p := range pages {
		merged = append(merged, p.sks...)
		if p.cut && len(p.sks) > 0 && (bound == "" || p.sks[len(p.sks)-1] < bound) {
			bound = p.sks[len(p.sks)-1]
		}
	}
	slices.Sort(merged)
	more := false
	if bound != "" {
		i, _ := slices.BinarySearch(merged, bound)
		more, merged = true, merged[:i+1]
	}
	if len(merged) > limit {
		more, merged = true, merged[:limit]
	}
	if !more || len(merged) == 0 {
		return merged, "", nil
	}
	return merged, encodeCursor(cursorInbox, merged[len(merged)-1]), nil
}

// AckInbox takes the entry out of the inbox by removing the recipient
// item's gsi2 key; the status stays. The condition makes a second ack (or
// an ack of a message never filed there) gateway.ErrNotFound.
func (s *Store) AckInbox(ctx context.Context, recipient, messageID string) error {
	ref, err := s.messageRef(ctx, messageID)
	if err != nil {
		return fmt.Errorf("dynamo: ack %s in %s: %w", messageID, recipient, err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      ref.recipientKey(recipient),
		UpdateExpression:         aws.String("REMOVE #g2p, #g2s"),
		ConditionExpression:      aws.String("attribute_exists(#g2p)"),
		ExpressionAttributeNames: map[string]string{"#g2p": aG2P, "#g2s": aG2S},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("dynamo: ack %s in %s: %w", messageID, recipient, gateway.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("dynamo: ack %s in %s: %w", messageID, recipient, err)
	}
	return nil
}

// purgePage is how many inbox entries purgeInbox reads per query: each is
// one UpdateItem, and a page is worked through before the next is read.
const purgePage = 100

// purgeInbox takes every entry out of recipient's inbox, as AckInbox
// does one. The index is eventually consistent and the work is one write
// per entry, so an entry filed just before may be missed and a large inbox
// may outlast the caller's deadline; whatever is left is hidden from any
// later agent at the address by the gateway (it compares acceptance and
// registration times) and goes with its message's TTL.
func (s *Store) purgeInbox(ctx context.Context, recipient string) error {
	for _, partition := range all(inboxBase(recipient), s.shards.inbox) {
		if err := s.purgeShard(ctx, partition); err != nil {
			return err
		}
	}
	return nil
}

// purgeShard takes every entry out of one shard of an inbox.
func (s *Store) purgeShard(ctx context.Context, partition string) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(gsiInbox),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": aG2P},
		ExpressionAttributeValues: item{":p": str(partition)},
		Limit:                     aws.Int32(purgePage),
	}
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("list inbox: %w", err)
		}
		err = forEach(ctx, len(res.Items), func(ctx context.Context, i int) error {
			return s.unfile(ctx, res.Items[i], partition)
		})
		if err != nil {
			return err
		}
		if len(res.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// unfile removes the inbox keys of the recipient item that entry (a
// keys-only index item) names, while it is still filed in partition.
func (s *Store) unfile(ctx context.Context, entry item, partition string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(getStr(entry, aPK), getStr(entry, aSK)),
		UpdateExpression:          aws.String("REMOVE #g2p, #g2s"),
		ConditionExpression:       aws.String("#g2p = :p"),
		ExpressionAttributeNames:  map[string]string{"#g2p": aG2P, "#g2s": aG2S},
		ExpressionAttributeValues: item{":p": str(partition)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("unfile %s: %w", getStr(entry, aPK), err)
	}
	return nil
}

// A cursor is a position (a sort key) in one listing. Its first byte names
// the listing so that a cursor from one is refused by the other rather
// than read as a nonsensical position.
const (
	cursorMessages byte = 'm'
	cursorInbox    byte = 'i'
)

func encodeCursor(kind byte, sk string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, sk...))
}

func decodeCursor(kind byte, c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	// The decoder skips CR and LF and ignores stray trailing bits, so other
	// spellings decode too; only the one encodeCursor writes was handed out.
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != c || len(b) < 2 || b[0] != kind {
		return "", fmt.Errorf("cursor %q: %w", c, gateway.ErrBadCursor)
	}
	sk := string(b[1:])
	if _, _, err := parseTimeSK(sk); err != nil {
		return "", fmt.Errorf("cursor %q: %w", c, gateway.ErrBadCursor)
	}
	return sk, nil
}

// pageLimit applies the listing defaults shared by every store.
func pageLimit(n int) int { return gateway.PageLimit(n) }
