package gatewaytest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// DeadLetterBackend is a gateway.DeadLetterStore and how records reach it
// in the adapter's composition (the embedded queue's DeadLetter, the AWS
// dead-letter consumer's KeepDeadLetter).
type DeadLetterBackend struct {
	Store gateway.DeadLetterStore
	Keep  func(ctx context.Context, t gateway.Task, d gateway.DeadLetter) error
}

// DeadLetterFactory returns a fresh, empty DeadLetterBackend.
type DeadLetterFactory func(t *testing.T) DeadLetterBackend

// RunDeadLetterStore checks a gateway.DeadLetterStore.
func RunDeadLetterStore(t *testing.T, f DeadLetterFactory) {
	t.Run("KeepGetRemove", func(t *testing.T) { testDeadKeepGetRemove(t, f(t)) })
	t.Run("FilledFromTask", func(t *testing.T) { testDeadFilled(t, f(t)) })
	t.Run("Filters", func(t *testing.T) { testDeadFilters(t, f(t)) })
	t.Run("Pages", func(t *testing.T) { testDeadPages(t, f(t)) })
	t.Run("PagesWhileRemoving", func(t *testing.T) { testDeadPagesWhileRemoving(t, f(t)) })
	t.Run("UnknownIDAndBadCursor", func(t *testing.T) { testDeadUnknown(t, f(t)) })
}

// deadAt keeps a record of a new task to rcpt, dead-lettered at `at`.
func deadAt(t *testing.T, b DeadLetterBackend, at time.Time, code string, rcpt string) gateway.DeadLetter {
	t.Helper()
	task := newTask(rcpt)
	d := gateway.DeadLetter{MessageID: task.MessageID, TaskID: task.ID, Recipients: task.Recipients,
		FailureReason: code, ErrorMessage: "the webhook answered 410", Attempts: 3,
		FirstAttempt: at.Add(-time.Minute), LastAttempt: at, DLQTimestamp: at}
	require.NoError(t, b.Keep(ctx(t), task, d))
	d.Kind = task.Kind
	return d.WithID()
}

func testDeadKeepGetRemove(t *testing.T, b DeadLetterBackend) {
	want := deadAt(t, b, Now(), "RECIPIENT_UNAVAILABLE", "bob@a.example")
	list, next, err := b.Store.ListDeadLetters(ctx(t), gateway.DeadLetterQuery{})
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, list, 1)
	assertDead(t, want, list[0])

	got, err := b.Store.GetDeadLetter(ctx(t), want.ID)
	require.NoError(t, err)
	assertDead(t, want, got)

	require.NoError(t, b.Store.RemoveDeadLetter(ctx(t), want.ID))
	_, err = b.Store.GetDeadLetter(ctx(t), want.ID)
	require.ErrorIs(t, err, gateway.ErrNotFound)
	require.ErrorIs(t, b.Store.RemoveDeadLetter(ctx(t), want.ID), gateway.ErrNotFound)
	list, _, err = b.Store.ListDeadLetters(ctx(t), gateway.DeadLetterQuery{})
	require.NoError(t, err)
	assert.Empty(t, list)
}

func assertDead(t *testing.T, want, got gateway.DeadLetter) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.MessageID, got.MessageID)
	assert.Equal(t, want.TaskID, got.TaskID)
	assert.Equal(t, want.Kind, got.Kind)
	assert.Equal(t, want.Recipients, got.Recipients)
	assert.Equal(t, want.FailureReason, got.FailureReason)
	assert.Equal(t, want.ErrorMessage, got.ErrorMessage)
	assert.Equal(t, want.Attempts, got.Attempts)
	assert.True(t, want.FirstAttempt.Equal(got.FirstAttempt), "first attempt %s, want %s", got.FirstAttempt, want.FirstAttempt)
	assert.True(t, want.DLQTimestamp.Equal(got.DLQTimestamp), "dlq timestamp %s, want %s", got.DLQTimestamp, want.DLQTimestamp)
}

// testDeadFilled: what the record leaves out is the task's, so that a
// redrive can queue the task again.
func testDeadFilled(t *testing.T, b DeadLetterBackend) {
	task := remoteTask("b.example", "bob@b.example")
	task.Attempt = 4
	require.NoError(t, b.Keep(ctx(t), task, gateway.DeadLetter{FailureReason: "RECIPIENT_NOT_FOUND"}))
	list, _, err := b.Store.ListDeadLetters(ctx(t), gateway.DeadLetterQuery{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	d := list[0]
	assert.Equal(t, task.ID, d.TaskID)
	assert.Equal(t, task.MessageID, d.MessageID)
	assert.Equal(t, gateway.TaskRemote, d.Kind)
	assert.Equal(t, "b.example", d.Domain)
	assert.Equal(t, []string{"bob@b.example"}, d.Recipients)
	assert.Equal(t, 4, d.Attempts)
	assert.False(t, d.DLQTimestamp.IsZero())
	assert.Equal(t, gateway.DeadLetterID(d.DLQTimestamp, d.TaskID), d.ID)
}

func testDeadFilters(t *testing.T, b DeadLetterBackend) {
	base := Now().Add(-time.Hour)
	gone := deadAt(t, b, base.Add(1*time.Second), "RECIPIENT_UNAVAILABLE", "Bob@A.example")
	far := deadAt(t, b, base.Add(2*time.Second), "RECIPIENT_NOT_FOUND", "carol@b.example")
	late := deadAt(t, b, base.Add(3*time.Second), "RECIPIENT_UNAVAILABLE", "dave@b.example")
	cases := []struct {
		name string
		q    gateway.DeadLetterQuery
		want []gateway.DeadLetter
	}{
		{"all", gateway.DeadLetterQuery{}, []gateway.DeadLetter{gone, far, late}},
		{"recipient, any case", gateway.DeadLetterQuery{Recipient: "bob@a.EXAMPLE"}, []gateway.DeadLetter{gone}},
		{"domain", gateway.DeadLetterQuery{Domain: "B.example"}, []gateway.DeadLetter{far, late}},
		{"code", gateway.DeadLetterQuery{Code: "recipient_unavailable"}, []gateway.DeadLetter{gone, late}},
		{"domain and code", gateway.DeadLetterQuery{Domain: "b.example", Code: "RECIPIENT_UNAVAILABLE"}, []gateway.DeadLetter{late}},
		{"since, inclusive", gateway.DeadLetterQuery{Since: far.DLQTimestamp}, []gateway.DeadLetter{far, late}},
		{"until, exclusive", gateway.DeadLetterQuery{Until: far.DLQTimestamp}, []gateway.DeadLetter{gone}},
		{"since and until", gateway.DeadLetterQuery{Since: far.DLQTimestamp, Until: late.DLQTimestamp}, []gateway.DeadLetter{far}},
		{"none", gateway.DeadLetterQuery{Recipient: "erin@a.example"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := allDead(t, b.Store, c.q)
			assert.Equal(t, deadIDs(c.want), deadIDs(got))
		})
	}
}

// allDead follows the cursors of a listing to its end.
func allDead(t *testing.T, s gateway.DeadLetterStore, q gateway.DeadLetterQuery) []gateway.DeadLetter {
	t.Helper()
	var out []gateway.DeadLetter
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100, "the listing does not end")
		list, next, err := s.ListDeadLetters(ctx(t), q)
		require.NoError(t, err)
		out = append(out, list...)
		if next == "" {
			return out
		}
		q.Cursor = next
	}
}

func deadIDs(list []gateway.DeadLetter) []string {
	out := []string{}
	for _, d := range list {
		out = append(out, d.ID)
	}
	return out
}

func testDeadPages(t *testing.T, b DeadLetterBackend) {
	base := Now().Add(-time.Hour)
	var want []gateway.DeadLetter
	for i := range 5 {
		want = append(want, deadAt(t, b, base.Add(time.Duration(i)*time.Second), "RECIPIENT_UNAVAILABLE", "bob@a.example"))
	}
	first, next, err := b.Store.ListDeadLetters(ctx(t), gateway.DeadLetterQuery{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, deadIDs(want[:2]), deadIDs(first))
	require.NotEmpty(t, next)
	assert.Equal(t, deadIDs(want), deadIDs(allDead(t, b.Store, gateway.DeadLetterQuery{Limit: 2})))
}

// testDeadPagesWhileRemoving: a bulk redrive removes each page's records
// before it asks for the next; the cursor still goes on from there.
func testDeadPagesWhileRemoving(t *testing.T, b DeadLetterBackend) {
	base := Now().Add(-time.Hour)
	var want []gateway.DeadLetter
	for i := range 5 {
		want = append(want, deadAt(t, b, base.Add(time.Duration(i)*time.Second), "RECIPIENT_UNAVAILABLE", "bob@a.example"))
	}
	q := gateway.DeadLetterQuery{Limit: 2}
	var seen []gateway.DeadLetter
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		list, next, err := b.Store.ListDeadLetters(ctx(t), q)
		require.NoError(t, err)
		for _, d := range list {
			require.NoError(t, b.Store.RemoveDeadLetter(ctx(t), d.ID))
		}
		seen = append(seen, list...)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	assert.Equal(t, deadIDs(want), deadIDs(seen))
	assert.Empty(t, allDead(t, b.Store, gateway.DeadLetterQuery{}))
}

func testDeadUnknown(t *testing.T, b DeadLetterBackend) {
	d := deadAt(t, b, Now(), "RECIPIENT_UNAVAILABLE", "bob@a.example")
	for _, id := range []string{"", "not-an-id", gateway.DeadLetterID(d.DLQTimestamp.Add(time.Millisecond), d.TaskID), gateway.DeadLetterID(d.DLQTimestamp, d.TaskID+"x")} {
		_, err := b.Store.GetDeadLetter(ctx(t), id)
		require.ErrorIs(t, err, gateway.ErrNotFound, "id %q", id)
		require.ErrorIs(t, b.Store.RemoveDeadLetter(ctx(t), id), gateway.ErrNotFound, "id %q", id)
	}
	_, _, err := b.Store.ListDeadLetters(ctx(t), gateway.DeadLetterQuery{Cursor: "bm90LWEtY3Vyc29y"})
	require.ErrorIs(t, err, gateway.ErrBadCursor)
	// The record is untouched by all that.
	got, err := b.Store.GetDeadLetter(ctx(t), d.ID)
	require.NoError(t, err)
	assertDead(t, d, got)
}
