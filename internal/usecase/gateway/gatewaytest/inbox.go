package gatewaytest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// RunInboxStore checks a gateway.InboxStore. Messages reach an inbox only
// after Accept, so the Backend needs Messages too.
func RunInboxStore(t *testing.T, f Factory) {
	t.Run("DeliverSetsStatus", func(t *testing.T) { testDeliverSetsStatus(t, f(t)) })
	t.Run("AcceptDeliversToInbox", func(t *testing.T) { testAcceptDeliversToInbox(t, f(t)) })
	t.Run("DeliverTwiceOneEntry", func(t *testing.T) { testDeliverTwice(t, f(t)) })
	t.Run("DeliverUnknownMessage", func(t *testing.T) { testDeliverUnknown(t, f(t)) })
	t.Run("OldestFirstWithPaging", func(t *testing.T) { testInboxPaging(t, f(t)) })
	t.Run("Ack", func(t *testing.T) { testInboxAck(t, f(t)) })
	t.Run("Isolation", func(t *testing.T) { testInboxIsolation(t, f(t)) })
	t.Run("RecipientCaseInsensitive", func(t *testing.T) { testInboxCase(t, f(t)) })
	t.Run("BadCursor", func(t *testing.T) { testInboxBadCursor(t, f(t)) })
	t.Run("SurvivesReopen", func(t *testing.T) { testInboxReopen(t, f(t)) })
	t.Run("EntriesCarryAcceptedAt", func(t *testing.T) { testInboxAcceptedAt(t, f(t)) })
	t.Run("DeleteAgentEmptiesInbox", func(t *testing.T) { testDeleteAgentEmptiesInbox(t, f(t)) })
}

func delivered(addr string, at time.Time) gateway.RecipientStatus {
	return gateway.RecipientStatus{Address: addr, Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "inbox"}
}

// acceptTo stores a message from alice to the recipients and returns it.
func acceptTo(t *testing.T, b Backend, recipients ...string) *gateway.Acceptance {
	t.Helper()
	a := NewAcceptance(NewID("msg"), "alice@a.example", recipients, Now())
	accept(t, b.Messages, a)
	return a
}

func testDeliverSetsStatus(t *testing.T, b Backend) {
	a := acceptTo(t, b, "bob@b.example", "carol@c.example")
	at := Now()
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", at)))

	st, err := b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)
	assert.Equal(t, "inbox", st[0].Via)
	assert.Equal(t, 1, st[0].Attempts)
	assert.Equal(t, gateway.StateQueued, st[1].Status, "the other recipient is untouched")

	entries := inboxAll(t, b.Inbox, "bob@b.example", 0)
	require.Len(t, entries, 1)
	assert.Equal(t, a.Message.ID, entries[0].MessageID)
	assert.Equal(t, string(a.Message.Raw), string(entries[0].Raw))
	assert.False(t, entries[0].ReceivedAt.IsZero(), "received_at is set")
	assert.WithinDuration(t, time.Now(), entries[0].ReceivedAt, time.Minute)
}

func testDeliverTwice(t *testing.T, b Backend) {
	a := acceptTo(t, b, "bob@b.example")
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", Now())))
	second := delivered("bob@b.example", Now())
	second.Attempts = 2
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, second))

	entries := inboxAll(t, b.Inbox, "bob@b.example", 0)
	require.Len(t, entries, 1, "delivering twice leaves one entry")
	assert.Equal(t, a.Message.ID, entries[0].MessageID)
	st, err := b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, 2, st[0].Attempts, "the status is that of the last delivery")
}

func testDeliverUnknown(t *testing.T, b Backend) {
	err := b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", "no-such-message", delivered("bob@b.example", Now()))
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	assert.Empty(t, inboxAll(t, b.Inbox, "bob@b.example", 0), "nothing is filed for a message that is not stored")
}

func testInboxPaging(t *testing.T, b Backend) {
	var want []string
	for range 7 {
		a := acceptTo(t, b, "bob@b.example")
		require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", Now())))
		want = append(want, a.Message.ID)
		// Distinct receive times even for a store with millisecond precision.
		time.Sleep(3 * time.Millisecond)
	}
	for _, limit := range []int{0, 1, 2, 3, 7, 50} {
		entries := inboxAll(t, b.Inbox, "bob@b.example", limit)
		assert.Equal(t, want, entryIDs(entries), "limit %d: oldest first, each once", limit)
		for i := 1; i < len(entries); i++ {
			assert.False(t, entries[i].ReceivedAt.Before(entries[i-1].ReceivedAt), "limit %d: entry %d received before entry %d", limit, i, i-1)
		}
	}

	// Acking from the middle of a listing does not disturb the next page.
	page, next, err := b.Inbox.ListInbox(ctx(t), "bob@b.example", 3, "")
	require.NoError(t, err)
	require.Equal(t, want[:3], entryIDs(page))
	require.NotEmpty(t, next)
	for _, e := range page {
		require.NoError(t, b.Inbox.AckInbox(ctx(t), "bob@b.example", e.MessageID))
	}
	page, _, err = b.Inbox.ListInbox(ctx(t), "bob@b.example", 3, next)
	require.NoError(t, err)
	assert.Equal(t, want[3:6], entryIDs(page))
}

func testInboxAck(t *testing.T, b Backend) {
	a1 := acceptTo(t, b, "bob@b.example")
	a2 := acceptTo(t, b, "bob@b.example")
	for _, a := range []*gateway.Acceptance{a1, a2} {
		require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", Now())))
	}

	require.NoError(t, b.Inbox.AckInbox(ctx(t), "bob@b.example", a1.Message.ID))
	assert.Equal(t, []string{a2.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bob@b.example", 0)))

	err := b.Inbox.AckInbox(ctx(t), "bob@b.example", a1.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "a second ack")
	err = b.Inbox.AckInbox(ctx(t), "bob@b.example", "no-such-message")
	assert.ErrorIs(t, err, gateway.ErrNotFound, "ack of a message never delivered")
	err = b.Inbox.AckInbox(ctx(t), "carol@c.example", a2.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound, "ack of another recipient's message")
	assert.Equal(t, []string{a2.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bob@b.example", 0)), "another recipient's ack leaves the entry")

	_, err = b.Messages.GetMessage(ctx(t), a1.Message.ID)
	assert.NoError(t, err, "acking removes the inbox entry, not the message")
	st, err := b.Messages.GetStatuses(ctx(t), a1.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[0].Status, "acking leaves the status delivered")
}

func testInboxIsolation(t *testing.T, b Backend) {
	both := acceptTo(t, b, "bob@b.example", "bobby@b.example")
	onlyBobby := acceptTo(t, b, "bobby@b.example")
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", both.Message.ID, delivered("bob@b.example", Now())))
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bobby@b.example", both.Message.ID, delivered("bobby@b.example", Now())))
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bobby@b.example", onlyBobby.Message.ID, delivered("bobby@b.example", Now())))

	assert.Equal(t, []string{both.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bob@b.example", 0)))
	assert.Equal(t, []string{both.Message.ID, onlyBobby.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bobby@b.example", 0)))
	assert.Empty(t, inboxAll(t, b.Inbox, "carol@c.example", 0))

	require.NoError(t, b.Inbox.AckInbox(ctx(t), "bob@b.example", both.Message.ID))
	assert.Empty(t, inboxAll(t, b.Inbox, "bob@b.example", 0))
	assert.Equal(t, []string{both.Message.ID, onlyBobby.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bobby@b.example", 0)), "one recipient's ack leaves the other's copy")
}

func testInboxCase(t *testing.T, b Backend) {
	a := acceptTo(t, b, "Bob@B.example")
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "Bob@B.example", a.Message.ID, delivered("Bob@B.example", Now())))
	assert.Equal(t, []string{a.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bob@b.example", 0)))
	require.NoError(t, b.Inbox.AckInbox(ctx(t), "BOB@b.example", a.Message.ID))
	assert.Empty(t, inboxAll(t, b.Inbox, "bob@b.example", 0))
}

func testInboxBadCursor(t *testing.T, b Backend) {
	_, _, err := b.Inbox.ListInbox(ctx(t), "bob@b.example", 10, "this is not a cursor")
	assert.ErrorIs(t, err, gateway.ErrBadCursor)

	for range 2 {
		a := acceptTo(t, b, "bob@b.example")
		require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", Now())))
	}
	_, next, err := b.Inbox.ListInbox(ctx(t), "bob@b.example", 1, "")
	require.NoError(t, err)
	require.NotEmpty(t, next)
	_, _, err = b.Inbox.ListInbox(ctx(t), "bob@b.example", 1, next)
	require.NoError(t, err)
	for _, c := range respelled(next) {
		_, _, err := b.Inbox.ListInbox(ctx(t), "bob@b.example", 1, c)
		assert.ErrorIs(t, err, gateway.ErrBadCursor, "%q", c)
	}
}

func testInboxReopen(t *testing.T, b Backend) {
	requireReopenable(t, b)
	a1 := acceptTo(t, b, "bob@b.example")
	a2 := acceptTo(t, b, "bob@b.example")
	for _, a := range []*gateway.Acceptance{a1, a2} {
		require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", Now())))
		time.Sleep(3 * time.Millisecond)
	}
	b = b.Reopen(t)
	entries := inboxAll(t, b.Inbox, "bob@b.example", 1)
	assert.Equal(t, []string{a1.Message.ID, a2.Message.ID}, entryIDs(entries))
	if len(entries) == 2 {
		assert.Equal(t, string(a2.Message.Raw), string(entries[1].Raw))
	}
	st, err := b.Messages.GetStatuses(ctx(t), a1.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)
	require.NoError(t, b.Inbox.AckInbox(ctx(t), "bob@b.example", a1.Message.ID))
	assert.Equal(t, []string{a2.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bob@b.example", 0)))
}

// inboxAll follows cursors to the end, failing on a page over the limit, a
// repeated entry or a cursor that never ends.
func inboxAll(t *testing.T, s gateway.InboxStore, recipient string, limit int) []gateway.InboxEntry {
	t.Helper()
	var out []gateway.InboxEntry
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000, "inbox listing never ends")
		page, next, err := s.ListInbox(ctx(t), recipient, limit, cursor)
		require.NoError(t, err)
		if limit > 0 {
			require.LessOrEqual(t, len(page), limit, "page over the limit")
		}
		for _, e := range page {
			require.False(t, seen[e.MessageID], "entry %s listed twice", e.MessageID)
			seen[e.MessageID] = true
			out = append(out, e)
		}
		if next == "" {
			return out
		}
		require.NotEqual(t, cursor, next, "cursor did not move")
		cursor = next
	}
}

func entryIDs(es []gateway.InboxEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.MessageID)
	}
	return out
}

func testAcceptDeliversToInbox(t *testing.T, b Backend) {
	at := Now()
	a := NewAcceptance(NewID("inb"), "alice@a.example", []string{"bob@b.example", "carol@c.example"}, at)
	// bob is a pull recipient delivered by the accept itself: no task.
	a.Statuses[0] = delivered("bob@b.example", at)
	a.Tasks = a.Tasks[1:]
	a.Inbox = []string{"Bob@B.example"}
	_, err := b.Messages.Accept(ctx(t), a)
	require.NoError(t, err)

	entries := inboxAll(t, b.Inbox, "bob@b.example", 0)
	require.Len(t, entries, 1)
	assert.Equal(t, a.Message.ID, entries[0].MessageID)
	assert.Equal(t, string(a.Message.Raw), string(entries[0].Raw))
	st, err := b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)
	assert.Empty(t, inboxAll(t, b.Inbox, "carol@c.example", 0), "only the listed inbox")

	// A later DeliverToInbox of the same message (a redelivered task) adds no second entry.
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", at)))
	assert.Len(t, inboxAll(t, b.Inbox, "bob@b.example", 0), 1)
	require.NoError(t, b.Inbox.AckInbox(ctx(t), "bob@b.example", a.Message.ID))
	assert.Empty(t, inboxAll(t, b.Inbox, "bob@b.example", 0))
}

// testInboxAcceptedAt: an entry tells when its message was accepted, which
// the gateway compares with its reader's registration.
func testInboxAcceptedAt(t *testing.T, b Backend) {
	at := Now().Add(-time.Minute).Add(4321 * time.Nanosecond)
	a := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@b.example"}, at)
	accept(t, b.Messages, a)
	require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), "bob@b.example", a.Message.ID, delivered("bob@b.example", Now())))
	entries := inboxAll(t, b.Inbox, "bob@b.example", 0)
	require.Len(t, entries, 1)
	assert.True(t, at.Equal(entries[0].AcceptedAt), "accepted_at %v, want %v", entries[0].AcceptedAt, at)
}

// testDeleteAgentEmptiesInbox: deleting an agent purges its inbox, whether
// its entries were filed by the accept or by a later delivery, and only
// its own: the messages, their statuses and other inboxes stay.
func testDeleteAgentEmptiesInbox(t *testing.T, b Backend) {
	for _, addr := range []string{"bob@b.example", "bobby@b.example"} {
		require.NoError(t, b.Agents.PutAgent(ctx(t), newAgent(addr, gateway.ModePull)))
	}
	both := acceptTo(t, b, "bob@b.example", "bobby@b.example")
	for _, r := range []string{"bob@b.example", "bobby@b.example"} {
		require.NoError(t, b.Inbox.DeliverToInbox(ctx(t), r, both.Message.ID, delivered(r, Now())))
	}
	at := Now()
	filed := NewAcceptance(NewID("inb"), "alice@a.example", []string{"Bob@b.example"}, at)
	filed.Statuses[0] = delivered("Bob@b.example", at)
	filed.Tasks = nil
	filed.Inbox = []string{"bob@b.example"}
	accept(t, b.Messages, filed)
	require.Len(t, inboxAll(t, b.Inbox, "bob@b.example", 0), 2)

	require.NoError(t, b.Agents.DeleteAgent(ctx(t), "BOB@b.example"))
	assert.Empty(t, inboxAll(t, b.Inbox, "bob@b.example", 0), "the deleted agent's inbox is empty")
	assert.Equal(t, []string{both.Message.ID}, entryIDs(inboxAll(t, b.Inbox, "bobby@b.example", 0)), "another agent's inbox stays")
	for _, id := range []string{both.Message.ID, filed.Message.ID} {
		st, err := b.Messages.GetStatuses(ctx(t), id)
		require.NoError(t, err)
		assert.Equal(t, gateway.StateDelivered, st[0].Status, "the sender's record of %s stays", id)
	}
	assert.ErrorIs(t, b.Inbox.AckInbox(ctx(t), "bob@b.example", both.Message.ID), gateway.ErrNotFound, "nothing left to acknowledge")
}
