package dynamo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Work bounds of one ListMessages call. A call that reaches one returns a
// short (possibly empty) page with a cursor, as the port allows.
const (
	// maxListQueries bounds index queries; it covers a walk over every day
	// bucket of the default retention in one call.
	maxListQueries = 64
	// maxFetchBatch bounds the messages read in parallel per round.
	maxFetchBatch = 50
)

// maxCandidates bounds the messages read (one Query each) per call.
func maxCandidates(limit int) int { return 2*limit + 100 }

// ListMessages walks one time-ordered index, newest first, chosen by the
// most selective filter: a sender's FROM# partition, a recipient's TO#
// partition, both of them merged for a party, or else the DAY# buckets
// from today back to the retention horizon (or Since). The index yields
// message ids; each candidate's head (message item without body, plus its
// recipient items) is then read with one Query, and the remaining filters
// (Status, the exact Since, filters the index did not cover) are applied
// to it. The cursor is the sort key of the last message examined.
func (s *Store) ListMessages(ctx context.Context, q gateway.MessageQuery) ([]gateway.MessageSummary, string, error) {
	limit := pageLimit(q.Limit)
	var upper, lower string
	if q.Cursor != "" {
		var err error
		if upper, err = decodeCursor(cursorMessages, q.Cursor); err != nil {
			return nil, "", fmt.Errorf("dynamo: list messages: %w", err)
		}
	}
	if !q.Since.IsZero() {
		// Millisecond keys include the whole millisecond of Since; the
		// exact comparison happens on the message itself.
		lower = formatKeyTime(q.Since)
	}
	if upper != "" && lower > upper {
		return nil, "", nil
	}
	now := s.now().UTC()
	l := &lister{queries: maxListQueries, chunk: int32(min(max(limit, 25), 1000))}
	// Every listing is sharded (shards.go): each shard is a source, and
	// the lister merges them by sort key.
	n := s.shards.listings
	switch {
	case q.Sender != "":
		l.addEach(gsiFrom, aG1P, aG1S, all(fromBase(q.Sender), n), upper, lower)
	case q.Recipient != "":
		l.addRecipient(q.Recipient, n, upper, lower)
	case q.Party != "":
		// A message the party sent to itself is in both; the merge yields
		// it once, since both entries carry the same sort key.
		l.addEach(gsiFrom, aG1P, aG1S, all(fromBase(q.Party), n), upper, lower)
		l.addRecipient(q.Party, n, upper, lower)
	default:
		days, floors := s.dayBuckets(now, upper, q.Since)
		if len(days) == 0 {
			return nil, "", nil
		}
		// One source per shard, each walking the days newest first.
		for i := range max(n, 1) {
			parts := make([]string, len(days))
			for d, day := range days {
				parts[d] = sharded(day, i)
			}
			l.add(gsiDay, aG2P, aG2S, parts, floors, upper, lower)
		}
	}
	// Only filters the index cannot apply may reject candidates; without
	// them each candidate read is (almost always) a row of the page.
	selective := q.Status != "" || !q.Since.IsZero() ||
		(q.Sender != "" && (q.Recipient != "" || q.Party != "")) ||
		(q.Recipient != "" && q.Party != "")

	var out []gateway.MessageSummary
	budget := maxCandidates(limit)
	for len(out) < limit && budget > 0 {
		size := limit - len(out)
		if selective {
			size = max(size, 8)
		}
		size = min(size, budget, maxFetchBatch)
		batch := make([]string, 0, size)
		var stopped bool
		for len(batch) < size {
			sk, ok, err := l.next(ctx, s)
			if errors.Is(err, errQueryBudget) {
				stopped = true
				break
			}
			if err != nil {
				return nil, "", fmt.Errorf("dynamo: list messages: %w", err)
			}
			if !ok {
				break
			}
			batch = append(batch, sk)
		}
		if len(batch) == 0 {
			break
		}
		budget -= len(batch)
		rows, err := s.summaries(ctx, batch, q, now)
		if err != nil {
			return nil, "", fmt.Errorf("dynamo: list messages: %w", err)
		}
		for i, row := range rows {
			if row == nil {
				continue
			}
			out = append(out, *row)
			if len(out) == limit && i < len(batch)-1 {
				// The rest of the batch was read but not used: the next
				// page resumes right after this row and reads it again.
				return out, encodeCursor(cursorMessages, batch[i]), nil
			}
			if len(out) == limit {
				break
			}
		}
		if stopped {
			break
		}
	}
	if c := l.cursor(); c != "" {
		return out, encodeCursor(cursorMessages, c), nil
	}
	return out, "", nil
}

// addRecipient adds the walks of a recipient's TO# listing: the base
// table's TO# partitions, where the recipient items of messages to one
// recipient are their own entries, and the gsi1 TO# partitions, where the
// items of the others (and of messages stored before) are listed.
func (l *lister) addRecipient(recipient string, n int, upper, lower string) {
	parts := all(toBase(recipient), n)
	l.addEach("", aPK, aSK, parts, upper, lower)
	l.addEach(gsiTo, aG1P, aG1S, parts, upper, lower)
}

// dayBuckets lists the DAY# partitions to walk (shard 0 of each day),
// newest first, with the first sort key each can hold. The walk stops at the retention horizon:
// older messages are expired, whether or not TTL has deleted them yet.
func (s *Store) dayBuckets(now time.Time, upper string, since time.Time) (parts, floors []string) {
	// An hour of slack lets a message stamped by a clock slightly ahead
	// of this one be listed.
	start := now.Add(time.Hour)
	if upper != "" {
		start, _, _ = parseTimeSK(upper)
	}
	floor := now.Add(-s.retention)
	if since.After(floor) {
		floor = since
	}
	floorDay := floor.UTC().Truncate(24 * time.Hour)
	for d := start.UTC().Truncate(24 * time.Hour); !d.Before(floorDay); d = d.Add(-24 * time.Hour) {
		parts = append(parts, dayBase(d))
		floors = append(floors, formatKeyTime(d))
	}
	return parts, floors
}

// summaries reads the head of each candidate in parallel and returns, in
// the same order, its summary or nil when the message is gone, expired or
// filtered out.
func (s *Store) summaries(ctx context.Context, sks []string, q gateway.MessageQuery, now time.Time) ([]*gateway.MessageSummary, error) {
	rows := make([]*gateway.MessageSummary, len(sks))
	err := forEach(ctx, len(sks), func(ctx context.Context, i int) error {
		_, id, err := parseTimeSK(sks[i])
		if err != nil {
			return err
		}
		// Strongly consistent: a candidate a lagging read missed would be
		// passed over for good, as the cursor moves beyond it.
		msg, recipients, err := s.head(ctx, id)
		if err != nil {
			return fmt.Errorf("read message %s: %w", id, err)
		}
		if msg == nil || expired(msg, now) || isVoid(msg) {
			return nil
		}
		row, err := summarize(id, msg, recipients, q)
		if err != nil {
			return fmt.Errorf("message %s: %w", id, err)
		}
		rows[i] = row
		return nil
	})
	return rows, err
}

func summarize(id string, msg item, recipients []item, q gateway.MessageQuery) (*gateway.MessageSummary, error) {
	m, err := decodeMessage(id, msg)
	if err != nil {
		return nil, err
	}
	if q.Sender != "" && !strings.EqualFold(q.Sender, m.Sender) ||
		q.Recipient != "" && !containsFold(m.Recipients, q.Recipient) ||
		q.Party != "" && !strings.EqualFold(q.Party, m.Sender) && !containsFold(m.Recipients, q.Party) ||
		!q.Since.IsZero() && m.AcceptedAt.Before(q.Since) {
		return nil, nil
	}
	statuses, err := assembleStatuses(id, msg, recipients)
	if err != nil {
		return nil, err
	}
	state := gateway.DeriveState(statuses)
	if q.Status != "" && state != q.Status {
		return nil, nil
	}
	return &gateway.MessageSummary{
		MessageID:  id,
		Sender:     m.Sender,
		Recipients: m.Recipients,
		Subject:    m.Subject,
		Status:     state,
		CreatedAt:  m.AcceptedAt,
		Statuses:   statuses,
	}, nil
}

var errQueryBudget = errors.New("index query budget spent")

// lister merges index sources, newest first. It queries a source only
// when the source could hold the next key: a source's unfetched keys are
// all below its frontier, so a key at or above every other source's
// frontier can be handed out without querying them. Sources therefore
// walk down together, and a call that spends its query budget leaves a
// cursor that neither skips nor repeats a key (see cursor).
type lister struct {
	sources []*source
	queries int    // index queries left
	chunk   int32  // keys per index query
	last    string // sort key last handed out
}

// source is one index walk: one partition, or day buckets in turn.
type source struct {
	index, pkAttr, skAttr string
	parts                 []string // partition key values, in walk order
	floors                []string // per partition, a key no greater than any it holds
	upper, lower          string   // exclusive upper, inclusive lower bound of sort keys
	part                  int
	esk                   item
	buf                   []string // fetched sort keys not handed out yet
	done                  bool
	// frontier: every key at or above it has been fetched, so every key
	// not fetched yet is below it; empty before the first query of a walk
	// from the top. It lets a walk over empty day buckets return a cursor
	// that moves.
	frontier string
}

func (l *lister) add(index, pkAttr, skAttr string, parts, floors []string, upper, lower string) {
	l.sources = append(l.sources, &source{index: index, pkAttr: pkAttr, skAttr: skAttr, parts: parts, floors: floors, upper: upper, lower: lower, frontier: upper})
}

// addEach adds one source per partition.
func (l *lister) addEach(index, pkAttr, skAttr string, parts []string, upper, lower string) {
	for _, p := range parts {
		l.add(index, pkAttr, skAttr, []string{p}, nil, upper, lower)
	}
}

// higher orders frontiers, where empty (nothing fetched, no upper bound)
// is above every key.
func higher(a, b string) bool { return a != b && (a == "" || b != "" && a > b) }

// next hands out the newest sort key not handed out yet; ok is false at
// the end of every source.
func (l *lister) next(ctx context.Context, s *Store) (string, bool, error) {
	for {
		best := ""
		for _, src := range l.sources {
			if len(src.buf) > 0 && src.buf[0] > best {
				best = src.buf[0]
			}
		}
		// The empty source that may hold the highest unfetched key; it
		// blocks best unless its frontier is at or below best.
		var blocker *source
		for _, src := range l.sources {
			if len(src.buf) == 0 && !src.done && (blocker == nil || higher(src.frontier, blocker.frontier)) {
				blocker = src
			}
		}
		if blocker == nil || best != "" && !higher(blocker.frontier, best) {
			break
		}
		if l.queries == 0 {
			return "", false, errQueryBudget
		}
		l.queries--
		if err := blocker.fill(ctx, s, l.chunk); err != nil {
			return "", false, err
		}
	}
	best := ""
	for _, src := range l.sources {
		if len(src.buf) > 0 && src.buf[0] > best {
			best = src.buf[0]
		}
	}
	if best == "" {
		return "", false, nil
	}
	for _, src := range l.sources {
		if len(src.buf) > 0 && src.buf[0] == best {
			src.buf = src.buf[1:]
		}
	}
	l.last = best
	return best, true, nil
}

// cursor is where the next page starts (keys below it): below every key
// handed out, and at or above every key not handed out. Empty means the
// walk is over.
//
// Once a key was handed out, every open source's frontier is at or below
// it (next hands out no key above a frontier, and queries only lower
// them), so when any source still holds fetched keys — all below the last
// key handed out — that key is the cursor. Otherwise the highest frontier
// of an open source is: nothing unfetched lies above it, and nothing
// between it and the last key handed out exists. Sources that were never
// queried have the highest frontier (empty, or the page's upper bound) and
// are queried first, and the budget covers one query of each
// (MaxShards), so the cursor is never the start of the walk again.
func (l *lister) cursor() string {
	pos, open, held := "", false, false
	for _, src := range l.sources {
		if len(src.buf) > 0 {
			held = true
			continue
		}
		if !src.done && (!open || higher(src.frontier, pos)) {
			pos, open = src.frontier, true
		}
	}
	if held && l.last != "" {
		return l.last
	}
	return pos
}

func (src *source) fill(ctx context.Context, s *Store, limit int32) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": src.pkAttr},
		ExpressionAttributeValues: item{":p": str(src.parts[src.part])},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(limit),
		ExclusiveStartKey:         src.esk,
	}
	if src.index != "" {
		in.IndexName = aws.String(src.index)
	} else {
		// The base table's items are whole recipient items: only the
		// sort key is wanted.
		in.ProjectionExpression = aws.String("#s")
	}
	switch {
	case src.upper != "" && src.lower != "":
		// BETWEEN is inclusive; the upper key itself is skipped below.
		in.KeyConditionExpression = aws.String("#p = :p AND #s BETWEEN :lo AND :up")
	case src.upper != "":
		in.KeyConditionExpression = aws.String("#p = :p AND #s < :up")
	case src.lower != "":
		in.KeyConditionExpression = aws.String("#p = :p AND #s >= :lo")
	}
	if src.upper != "" || src.lower != "" || src.index == "" {
		in.ExpressionAttributeNames["#s"] = src.skAttr
	}
	if src.upper != "" {
		in.ExpressionAttributeValues[":up"] = str(src.upper)
	}
	if src.lower != "" {
		in.ExpressionAttributeValues[":lo"] = str(src.lower)
	}
	res, err := s.db.Query(ctx, in)
	if err != nil {
		return fmt.Errorf("query %s %s: %w", cmp.Or(src.index, "table"), src.parts[src.part], err)
	}
	for _, it := range res.Items {
		if sk := getStr(it, src.skAttr); sk != "" && sk != src.upper {
			src.buf = append(src.buf, sk)
		}
	}
	if len(res.LastEvaluatedKey) > 0 {
		src.esk = res.LastEvaluatedKey
		if n := len(res.Items); n > 0 {
			src.frontier = getStr(res.Items[n-1], src.skAttr)
		}
		return nil
	}
	src.esk = nil
	src.part++
	if src.part == len(src.parts) {
		src.done, src.frontier = true, ""
		return nil
	}
	if src.floors != nil {
		src.frontier = src.floors[src.part-1]
	}
	return nil
}
