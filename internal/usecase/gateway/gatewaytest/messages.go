package gatewaytest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// RunMessageStore checks a gateway.MessageStore. Its acceptance tests also
// read tasks back, so the Backend needs Queue too.
func RunMessageStore(t *testing.T, f Factory) {
	t.Run("AcceptStoresEverything", func(t *testing.T) { testAcceptStoresEverything(t, f(t)) })
	t.Run("DuplicateKeyWritesNothing", func(t *testing.T) { testDuplicateKey(t, f(t)) })
	t.Run("DuplicateKeySenderCaseInsensitive", func(t *testing.T) { testDuplicateSenderCase(t, f(t)) })
	t.Run("KeyScopedBySender", func(t *testing.T) { testKeyScopedBySender(t, f(t)) })
	t.Run("ExpiredKeyDoesNotBlock", func(t *testing.T) { testExpiredKey(t, f(t)) })
	t.Run("ConcurrentSameKey", func(t *testing.T) { testConcurrentSameKey(t, f(t)) })
	t.Run("NotFound", func(t *testing.T) { testMessageNotFound(t, f(t)) })
	t.Run("UpdateStatuses", func(t *testing.T) { testUpdateStatuses(t, f(t)) })
	t.Run("ListMessages", func(t *testing.T) { testListMessages(t, f(t)) })
	t.Run("ListMessagesBadCursor", func(t *testing.T) { testListBadCursor(t, f(t)) })
	t.Run("SurvivesReopen", func(t *testing.T) { testMessagesReopen(t, f(t)) })
	t.Run("MessageIDTakenRevealsNothing", func(t *testing.T) { testMessageIDTaken(t, f(t)) })
}

func testAcceptStoresEverything(t *testing.T, b Backend) {
	now := Now()
	a := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example", "carol@c.example"}, now)
	before := cloneAcceptance(a)
	_, err := b.Messages.Accept(ctx(t), a)
	require.NoError(t, err)
	assert.Equal(t, before, a, "Accept must not modify its argument")

	m, err := b.Messages.GetMessage(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assertMessage(t, &a.Message, m)

	st, err := b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assertStatuses(t, a.Statuses, st)

	got := receiveN(t, b.Queue, len(a.Tasks), 10*time.Second)
	assertTasks(t, a.Tasks, got)
	for _, tk := range got {
		assert.NotEmpty(t, tk.Lease, "a received task carries its lease handle")
	}
}

func testDuplicateKey(t *testing.T, b Backend) {
	now := Now()
	first := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	accept(t, b.Messages, first)

	second := NewAcceptance(NewID("msg"), "alice@a.example", []string{"carol@c.example"}, now)
	second.Idempotency.Key = first.Idempotency.Key
	rec, err := b.Messages.Accept(ctx(t), second)
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	require.NotNil(t, rec, "a duplicate returns the earlier record")
	assert.Equal(t, first.Message.ID, rec.MessageID)
	assert.Equal(t, first.Idempotency.Digest, rec.Digest)
	assert.Equal(t, first.Idempotency.Key, rec.Key)
	assert.True(t, first.Idempotency.CreatedAt.Equal(rec.CreatedAt), "created_at %v, want %v", rec.CreatedAt, first.Idempotency.CreatedAt)

	_, err = b.Messages.GetMessage(ctx(t), second.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "the duplicate's message must not be stored")
	_, err = b.Messages.GetStatuses(ctx(t), second.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "the duplicate's statuses must not be stored")

	got := receiveN(t, b.Queue, 1, 10*time.Second)
	assertTasks(t, first.Tasks, got)
	receiveNone(t, b.Queue, 300*time.Millisecond)

	list := listAll(t, b.Messages, gateway.MessageQuery{})
	assert.Equal(t, []string{first.Message.ID}, list, "only the first message is listed")
}

func testDuplicateSenderCase(t *testing.T, b Backend) {
	now := Now()
	first := NewAcceptance(NewID("msg"), "Alice@A.example", []string{"bob@b.example"}, now)
	accept(t, b.Messages, first)
	second := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	second.Idempotency.Key = first.Idempotency.Key
	rec, err := b.Messages.Accept(ctx(t), second)
	require.ErrorIs(t, err, gateway.ErrDuplicate, "the sender is compared case-insensitively")
	require.NotNil(t, rec)
	assert.Equal(t, first.Message.ID, rec.MessageID)
}

func testKeyScopedBySender(t *testing.T, b Backend) {
	now := Now()
	first := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	accept(t, b.Messages, first)
	other := NewAcceptance(NewID("msg"), "dave@a.example", []string{"bob@b.example"}, now)
	other.Idempotency.Key = first.Idempotency.Key
	_, err := b.Messages.Accept(ctx(t), other)
	require.NoError(t, err, "the same key from another sender is another scope")
	_, err = b.Messages.GetMessage(ctx(t), other.Message.ID)
	require.NoError(t, err)
	// The key is compared exactly: only the sender is case-insensitive.
	upper := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	upper.Idempotency.Key = strings.ToUpper(first.Idempotency.Key)
	_, err = b.Messages.Accept(ctx(t), upper)
	require.NoError(t, err, "keys are case-sensitive")
}

func testExpiredKey(t *testing.T, b Backend) {
	old := Now().Add(-gateway.IdempotencyWindow - time.Hour)
	first := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, old)
	accept(t, b.Messages, first)

	second := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, Now())
	second.Idempotency.Key = first.Idempotency.Key
	rec, err := b.Messages.Accept(ctx(t), second)
	require.NoError(t, err, "a key older than the window no longer blocks")
	assert.Nil(t, rec)
	_, err = b.Messages.GetMessage(ctx(t), second.Message.ID)
	require.NoError(t, err)

	// The new use of the key now blocks in its turn.
	third := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, Now())
	third.Idempotency.Key = first.Idempotency.Key
	rec, err = b.Messages.Accept(ctx(t), third)
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	require.NotNil(t, rec)
	assert.Equal(t, second.Message.ID, rec.MessageID, "the record now names the second message")
}

func testConcurrentSameKey(t *testing.T, b Backend) {
	const n = 20
	now := Now()
	key := "key-" + NewID("shared")
	accs := make([]*gateway.Acceptance, n)
	for i := range accs {
		accs[i] = NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
		accs[i].Idempotency.Key = key
	}
	recs := make([]*gateway.IdempotencyRecord, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range accs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			recs[i], errs[i] = b.Messages.Accept(ctx(t), accs[i])
		}()
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			require.Equal(t, -1, winner, "two Accepts won the same key: %d and %d", winner, i)
			winner = i
		case errors.Is(err, gateway.ErrDuplicate):
		default:
			require.NoError(t, err, "accept %d", i)
		}
	}
	require.NotEqual(t, -1, winner, "no Accept won the key")
	winID := accs[winner].Message.ID
	for i, err := range errs {
		if i == winner {
			continue
		}
		require.ErrorIs(t, err, gateway.ErrDuplicate)
		require.NotNil(t, recs[i], "accept %d: duplicate without record", i)
		assert.Equal(t, winID, recs[i].MessageID, "accept %d", i)
		_, err := b.Messages.GetMessage(ctx(t), accs[i].Message.ID)
		assert.ErrorIs(t, err, gateway.ErrNotFound, "loser %d was stored", i)
	}
	assert.Equal(t, []string{winID}, listAll(t, b.Messages, gateway.MessageQuery{}))
	got := receiveN(t, b.Queue, 1, 10*time.Second)
	assertTasks(t, accs[winner].Tasks, got)
	receiveNone(t, b.Queue, 300*time.Millisecond)
}

func testMessageNotFound(t *testing.T, b Backend) {
	_, err := b.Messages.GetMessage(ctx(t), "no-such-message")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = b.Messages.GetStatuses(ctx(t), "no-such-message")
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	err = b.Messages.UpdateStatuses(ctx(t), "no-such-message", []gateway.RecipientStatus{{Address: "bob@b.example", Status: gateway.StateDelivered}})
	assert.ErrorIs(t, err, gateway.ErrNotFound)
}

func testUpdateStatuses(t *testing.T, b Backend) {
	now := Now()
	a := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example", "carol@c.example", "dave@d.example"}, now)
	accept(t, b.Messages, a)

	later := now.Add(time.Second)
	retryAt := later.Add(time.Minute)
	updates := []gateway.RecipientStatus{
		{Address: "BOB@B.Example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: later, DeliveredAt: &later, Via: "inbox"},
		{Address: "dave@d.example", Status: gateway.StateRetrying, Attempts: 2, UpdatedAt: later, NextRetry: &retryAt, ErrorCode: "TEMPORARY_FAILURE", ErrorMessage: "503"},
	}
	sent := slices.Clone(updates)
	require.NoError(t, b.Messages.UpdateStatuses(ctx(t), a.Message.ID, updates))
	assert.Equal(t, sent, updates, "UpdateStatuses must not modify its argument")

	st, err := b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 3)
	assert.Equal(t, []string{"bob@b.example", "carol@c.example", "dave@d.example"}, lower(addresses(st)), "order is the message's")

	assert.Equal(t, gateway.StateDelivered, st[0].Status, "matched case-insensitively")
	assert.Equal(t, 1, st[0].Attempts)
	assert.Equal(t, "inbox", st[0].Via)
	if assert.NotNil(t, st[0].DeliveredAt) {
		assert.True(t, later.Equal(*st[0].DeliveredAt))
	}

	assert.Equal(t, gateway.StateQueued, st[1].Status, "an unnamed recipient is left alone")
	assert.Equal(t, 0, st[1].Attempts)

	assert.Equal(t, gateway.StateRetrying, st[2].Status)
	assert.Equal(t, 2, st[2].Attempts)
	assert.Equal(t, "TEMPORARY_FAILURE", st[2].ErrorCode)
	if assert.NotNil(t, st[2].NextRetry) {
		assert.True(t, retryAt.Equal(*st[2].NextRetry))
	}
	assert.Equal(t, gateway.MessageDelivering, gateway.DeriveState(st))

	// A later update replaces the earlier one whole.
	require.NoError(t, b.Messages.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{
		{Address: "dave@d.example", Status: gateway.StateFailed, Attempts: 3, UpdatedAt: later, ErrorCode: "RECIPIENT_UNAVAILABLE"},
	}))
	st, err = b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 3)
	assert.Equal(t, gateway.StateFailed, st[2].Status)
	assert.Equal(t, "RECIPIENT_UNAVAILABLE", st[2].ErrorCode)
	assert.Nil(t, st[2].NextRetry, "fields absent from the update are cleared")
	assert.Equal(t, gateway.StateDelivered, st[0].Status, "other recipients keep their update")
}

// listFixture is a set of messages with known senders, recipients, times
// and states, and the store's expected answer computed from it.
type listFixture struct {
	msgs []fixtureMessage // oldest first
}

type fixtureMessage struct {
	id         string
	sender     string
	recipients []string
	at         time.Time
	statuses   []gateway.RecipientStatus
}

func (fx *listFixture) expect(q gateway.MessageQuery) []string {
	var out []string
	for i := len(fx.msgs) - 1; i >= 0; i-- {
		m := fx.msgs[i]
		if q.Sender != "" && !strings.EqualFold(q.Sender, m.sender) {
			continue
		}
		if q.Recipient != "" && !containsFold(m.recipients, q.Recipient) {
			continue
		}
		if q.Party != "" && !strings.EqualFold(q.Party, m.sender) && !containsFold(m.recipients, q.Party) {
			continue
		}
		if !q.Since.IsZero() && m.at.Before(q.Since) {
			continue
		}
		if q.Status != "" && gateway.DeriveState(m.statuses) != q.Status {
			continue
		}
		out = append(out, m.id)
	}
	return out
}

func buildListFixture(t *testing.T, s gateway.MessageStore) *listFixture {
	base := Now().Add(-time.Hour).Truncate(time.Second)
	senders := []string{"alice@a.example", "Bob@B.example", "carol@c.example"}
	recipients := [][]string{
		{"dave@d.example"},
		{"carol@c.example", "erin@e.example"},
		{"alice@a.example", "dave@d.example"},
		{"erin@e.example"},
	}
	fx := &listFixture{}
	for i := range 14 {
		at := base.Add(time.Duration(i) * time.Second)
		a := NewAcceptance(NewID("list"), senders[i%len(senders)], recipients[i%len(recipients)], at)
		accept(t, s, a)
		m := fixtureMessage{id: a.Message.ID, sender: a.Message.Sender, recipients: a.Message.Recipients, at: at, statuses: slices.Clone(a.Statuses)}
		// Spread the messages over every derived state.
		var ups []gateway.RecipientStatus
		switch i % 5 {
		case 1: // delivered
			for _, r := range m.recipients {
				ups = append(ups, gateway.RecipientStatus{Address: r, Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at})
			}
		case 2: // failed
			for _, r := range m.recipients {
				ups = append(ups, gateway.RecipientStatus{Address: r, Status: gateway.StateFailed, Attempts: 1, UpdatedAt: at})
			}
		case 3: // delivering
			ups = append(ups, gateway.RecipientStatus{Address: m.recipients[0], Status: gateway.StateRetrying, Attempts: 1, UpdatedAt: at})
		case 4: // partially delivered when there are two recipients, else delivered
			ups = append(ups, gateway.RecipientStatus{Address: m.recipients[0], Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at})
			if len(m.recipients) > 1 {
				ups = append(ups, gateway.RecipientStatus{Address: m.recipients[1], Status: gateway.StateFailed, Attempts: 1, UpdatedAt: at})
			}
		}
		if len(ups) > 0 {
			require.NoError(t, s.UpdateStatuses(ctx(t), a.Message.ID, ups))
			for _, u := range ups {
				for j := range m.statuses {
					if strings.EqualFold(m.statuses[j].Address, u.Address) {
						m.statuses[j] = u
					}
				}
			}
		}
		fx.msgs = append(fx.msgs, m)
	}
	return fx
}

func testListMessages(t *testing.T, b Backend) {
	fx := buildListFixture(t, b.Messages)
	sinceAt := fx.msgs[5].at.Add(500 * time.Millisecond)
	queries := map[string]gateway.MessageQuery{
		"All":                {},
		"Sender":             {Sender: "bob@b.example"},
		"Recipient":          {Recipient: "dave@d.example"},
		"Party":              {Party: "carol@c.example"},
		"Since":              {Since: sinceAt},
		"StatusAccepted":     {Status: gateway.MessageAccepted},
		"StatusDelivered":    {Status: gateway.MessageDelivered},
		"StatusFailed":       {Status: gateway.MessageFailed},
		"StatusDelivering":   {Status: gateway.MessageDelivering},
		"StatusPartially":    {Status: gateway.MessagePartiallyDelivered},
		"PartyAndStatus":     {Party: "erin@e.example", Status: gateway.MessageAccepted},
		"SenderAndSince":     {Sender: "alice@a.example", Since: sinceAt},
		"RecipientAndStatus": {Recipient: "dave@d.example", Status: gateway.MessageDelivered},
		"NoMatch":            {Sender: "nobody@z.example"},
	}
	for name, q := range queries {
		want := fx.expect(q)
		if name != "NoMatch" {
			require.NotEmpty(t, want, "fixture gives query %s nothing to find", name)
		}
		for _, limit := range []int{0, 1, 3, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", name, limit), func(t *testing.T) {
				q.Limit = limit
				assert.Equal(t, want, listAll(t, b.Messages, q))
			})
		}
	}

	t.Run("Summary", func(t *testing.T) {
		page, _, err := b.Messages.ListMessages(ctx(t), gateway.MessageQuery{Limit: len(fx.msgs)})
		require.NoError(t, err)
		require.NotEmpty(t, page)
		byID := map[string]gateway.MessageSummary{}
		for _, s := range page {
			byID[s.MessageID] = s
		}
		for _, m := range fx.msgs {
			s, ok := byID[m.id]
			if !ok {
				continue
			}
			assert.Equal(t, m.sender, s.Sender, m.id)
			assert.Equal(t, m.recipients, s.Recipients, m.id)
			assert.Equal(t, "subject of "+m.id, s.Subject, m.id)
			assert.True(t, m.at.Equal(s.CreatedAt), "%s created_at %v, want %v", m.id, s.CreatedAt, m.at)
			assert.Equal(t, gateway.DeriveState(m.statuses), s.Status, m.id)
			assert.Equal(t, statusesByAddress(m.statuses), statusesByAddress(s.Statuses), m.id)
		}
	})
}

func testListBadCursor(t *testing.T, b Backend) {
	accept(t, b.Messages, NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, Now().Add(-time.Second)))
	accept(t, b.Messages, NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, Now()))
	_, _, err := b.Messages.ListMessages(ctx(t), gateway.MessageQuery{Cursor: "this is not a cursor"})
	assert.ErrorIs(t, err, gateway.ErrBadCursor)

	_, next, err := b.Messages.ListMessages(ctx(t), gateway.MessageQuery{Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, next)
	_, _, err = b.Messages.ListMessages(ctx(t), gateway.MessageQuery{Cursor: next})
	require.NoError(t, err)
	for _, c := range respelled(next) {
		_, _, err := b.Messages.ListMessages(ctx(t), gateway.MessageQuery{Cursor: c})
		assert.ErrorIs(t, err, gateway.ErrBadCursor, "%q", c)
	}
}

// respelled are spellings of cursor that base64 decoders also read (they
// skip CR and LF) but that no store hands out: a store refuses them, so
// that a position has one cursor.
func respelled(cursor string) []string {
	return []string{cursor + "\n", "\r\n" + cursor, cursor[:1] + "\n" + cursor[1:]}
}

func testMessagesReopen(t *testing.T, b Backend) {
	requireReopenable(t, b)
	now := Now()
	a1 := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now.Add(-time.Second))
	a2 := NewAcceptance(NewID("msg"), "carol@c.example", []string{"dave@d.example", "erin@e.example"}, now)
	accept(t, b.Messages, a1)
	accept(t, b.Messages, a2)
	up := gateway.RecipientStatus{Address: "dave@d.example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now, Via: "webhook"}
	require.NoError(t, b.Messages.UpdateStatuses(ctx(t), a2.Message.ID, []gateway.RecipientStatus{up}))

	b = b.Reopen(t)
	for _, a := range []*gateway.Acceptance{a1, a2} {
		m, err := b.Messages.GetMessage(ctx(t), a.Message.ID)
		require.NoError(t, err)
		assertMessage(t, &a.Message, m)
	}
	st, err := b.Messages.GetStatuses(ctx(t), a2.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)
	assert.Equal(t, "webhook", st[0].Via)
	assert.Equal(t, gateway.StateQueued, st[1].Status)
	assert.Equal(t, []string{a2.Message.ID, a1.Message.ID}, listAll(t, b.Messages, gateway.MessageQuery{Limit: 1}))
	got := receiveN(t, b.Queue, len(a1.Tasks)+len(a2.Tasks), 10*time.Second)
	assertTasks(t, append(slices.Clone(a1.Tasks), a2.Tasks...), got)

	dup := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	dup.Idempotency.Key = a1.Idempotency.Key
	rec, err := b.Messages.Accept(ctx(t), dup)
	require.ErrorIs(t, err, gateway.ErrDuplicate, "idempotency records survive")
	require.NotNil(t, rec)
	assert.Equal(t, a1.Message.ID, rec.MessageID)
}

// listAll follows cursors to the end and returns the ids in order, failing
// on a page over the limit, a repeated id or a cursor that never ends.
func listAll(t *testing.T, s gateway.MessageStore, q gateway.MessageQuery) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000, "listing never ends")
		page, next, err := s.ListMessages(ctx(t), q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), limit, "page over the limit")
		for _, m := range page {
			require.False(t, seen[m.MessageID], "message %s listed twice", m.MessageID)
			seen[m.MessageID] = true
			ids = append(ids, m.MessageID)
		}
		if next == "" {
			return ids
		}
		require.NotEqual(t, q.Cursor, next, "cursor did not move")
		q.Cursor = next
	}
}

func assertMessage(t *testing.T, want, got *gateway.StoredMessage) {
	t.Helper()
	require.NotNil(t, got)
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, string(want.Raw), string(got.Raw))
	assert.Equal(t, want.Sender, got.Sender)
	assert.Equal(t, want.Recipients, got.Recipients)
	assert.Equal(t, want.Subject, got.Subject)
	assert.Equal(t, want.Origin, got.Origin)
	assert.True(t, want.AcceptedAt.Equal(got.AcceptedAt), "accepted_at %v, want %v", got.AcceptedAt, want.AcceptedAt)
}

func assertStatuses(t *testing.T, want, got []gateway.RecipientStatus) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		assert.True(t, strings.EqualFold(want[i].Address, got[i].Address), "status %d address %s, want %s", i, got[i].Address, want[i].Address)
		assert.Equal(t, want[i].Status, got[i].Status, want[i].Address)
		assert.Equal(t, want[i].Attempts, got[i].Attempts, want[i].Address)
		assert.True(t, want[i].UpdatedAt.Equal(got[i].UpdatedAt), "%s updated_at %v, want %v", want[i].Address, got[i].UpdatedAt, want[i].UpdatedAt)
	}
}

// statusesByAddress reduces statuses to what a listing must agree on.
func statusesByAddress(rs []gateway.RecipientStatus) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		out[strings.ToLower(r.Address)] = fmt.Sprintf("%s/%d", r.Status, r.Attempts)
	}
	return out
}

func addresses(rs []gateway.RecipientStatus) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Address
	}
	return out
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// testMessageIDTaken: an Accept whose message id is stored already, by
// another sender or by the same one under another key, writes nothing and
// answers ErrMessageIDTaken without a record: nothing of the stored
// message leaves the store, and the key it came with stays free.
func testMessageIDTaken(t *testing.T, b Backend) {
	now := Now()
	first := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, now)
	accept(t, b.Messages, first)
	assertTasks(t, first.Tasks, receiveN(t, b.Queue, 1, 10*time.Second))

	for _, sender := range []string{"mallory@a.example", "alice@a.example"} {
		again := NewAcceptance(first.Message.ID, sender, []string{"carol@c.example"}, now)
		again.Idempotency.Key = "other-key-" + NewID("k")
		rec, err := b.Messages.Accept(ctx(t), again)
		require.ErrorIs(t, err, gateway.ErrMessageIDTaken, "from %s", sender)
		assert.NotErrorIs(t, err, gateway.ErrDuplicate, "from %s: not a replay of an idempotent submission", sender)
		assert.Nil(t, rec, "from %s: no record of the stored message", sender)

		// The key was not kept: a message of its own under it is accepted.
		fresh := NewAcceptance(NewID("msg"), sender, []string{"carol@c.example"}, now)
		fresh.Idempotency.Key = again.Idempotency.Key
		accept(t, b.Messages, fresh)
		assertTasks(t, fresh.Tasks, receiveN(t, b.Queue, 1, 10*time.Second))
	}
	m, err := b.Messages.GetMessage(ctx(t), first.Message.ID)
	require.NoError(t, err)
	assertMessage(t, &first.Message, m)
	st, err := b.Messages.GetStatuses(ctx(t), first.Message.ID)
	require.NoError(t, err)
	assertStatuses(t, first.Statuses, st)
	receiveNone(t, b.Queue, 300*time.Millisecond)
}
