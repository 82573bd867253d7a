package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// deadLetterWorld is a gateway on an embedded store that keeps dead
// letters, and the store.
func deadLetterWorld(t *testing.T) (*gateway.Service, *pebblestore.DB) {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, DeadLetters: db})
	require.NoError(t, err)
	return svc, db
}

// deadLettered accepts a message to a remote recipient and gives its
// delivery up as the worker would: failed status, dead letter.
func deadLettered(t *testing.T, svc *gateway.Service, db *pebblestore.DB, rcpt string) (string, gateway.Task) {
	t.Helper()
	ctx := context.Background()
	res, err := svc.Accept(ctx, admin, fmt.Appendf(nil, `{"version":"1.0","sender":"alice@example.org","recipients":[%q],"payload":{}}`, rcpt))
	require.NoError(t, err)
	tasks, err := db.Receive(ctx, 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	task := tasks[0]
	now := time.Now().UTC().Truncate(time.Millisecond)
	failed := gateway.RecipientStatus{Address: rcpt, Status: gateway.StateFailed, Attempts: 3, UpdatedAt: now, ErrorCode: "RECIPIENT_UNAVAILABLE", ErrorMessage: "410"}
	require.NoError(t, db.UpdateStatuses(ctx, res.MessageID, []gateway.RecipientStatus{failed}))
	require.NoError(t, db.DeadLetter(ctx, task, gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE", ErrorMessage: "410", Attempts: 3,
		FirstAttempt: task.CreatedAt, LastAttempt: now, DLQTimestamp: now}))
	return res.MessageID, task
}

func codeOf(t *testing.T, err error) amtp.Code {
	t.Helper()
	e, ok := amtp.AsError(err)
	require.True(t, ok, "not an AMTP error: %v", err)
	return e.Code
}

func TestDeadLettersAreTheAdmins(t *testing.T) {
	svc, _ := deadLetterWorld(t)
	ctx := context.Background()
	agent := gateway.Principal{Kind: gateway.AgentCaller, Agent: &gateway.Agent{Address: "bob@example.org"}}
	for _, c := range []struct {
		who  gateway.Principal
		want amtp.Code
	}{{gateway.Principal{Kind: gateway.Anonymous}, amtp.CodeAuthenticationRequired}, {agent, amtp.CodeForbidden}} {
		_, _, err := svc.ListDeadLetters(ctx, c.who, gateway.DeadLetterQuery{})
		assert.Equal(t, c.want, codeOf(t, err))
		_, err = svc.GetDeadLetter(ctx, c.who, "x")
		assert.Equal(t, c.want, codeOf(t, err))
		_, err = svc.RedriveDeadLetter(ctx, c.who, "x")
		assert.Equal(t, c.want, codeOf(t, err))
		_, err = svc.RedriveDeadLetters(ctx, c.who, gateway.DeadLetterQuery{})
		assert.Equal(t, c.want, codeOf(t, err))
	}
}

func TestDeadLettersWithoutAStore(t *testing.T) {
	svc, _ := localService(t, nil)
	_, _, err := svc.ListDeadLetters(context.Background(), admin, gateway.DeadLetterQuery{})
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err))
}

// TestRedriveReopensTheRecipient: the failed recipient is queued again
// with its attempts and history kept and the redrive recorded, its task is
// queued with a retry window from now, and the dead letter is gone.
func TestRedriveReopensTheRecipient(t *testing.T) {
	svc, db := deadLetterWorld(t)
	ctx := context.Background()
	id, task := deadLettered(t, svc, db, "bob@remote.example")

	list, next, err := svc.ListDeadLetters(ctx, admin, gateway.DeadLetterQuery{})
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0].MessageID)
	assert.Contains(t, string(list[0].OriginalMessage), id, "the original message is shown")

	before := time.Now().UTC().Add(-time.Millisecond)
	r, err := svc.RedriveDeadLetter(ctx, admin, list[0].ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"bob@remote.example"}, r.Recipients)

	st, err := db.GetStatuses(ctx, id)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, gateway.StateQueued, st[0].Status)
	assert.Equal(t, 3, st[0].Attempts)
	assert.Empty(t, st[0].ErrorCode)
	require.Len(t, st[0].History, 2)
	assert.Equal(t, "failed", st[0].History[0].Outcome)
	assert.Equal(t, gateway.OutcomeRedriven, st[0].History[1].Outcome)

	again, err := db.Receive(ctx, 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, again, 1)
	assert.Equal(t, task.ID, again[0].ID)
	assert.Equal(t, gateway.TaskRemote, again[0].Kind)
	assert.Equal(t, "remote.example", again[0].Domain)
	assert.False(t, again[0].CreatedAt.Before(before), "the retry window starts at the redrive")

	_, err = svc.RedriveDeadLetter(ctx, admin, list[0].ID)
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err), "a dead letter is redriven once")
	_, err = svc.GetDeadLetter(ctx, admin, list[0].ID)
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err))
}

// TestBulkRedriveIsBounded: one page a call, and a cursor to go on.
func TestBulkRedriveIsBounded(t *testing.T) {
	svc, db := deadLetterWorld(t)
	ctx := context.Background()
	for _, r := range []string{"bob@remote.example", "carol@remote.example", "dave@remote.example"} {
		deadLettered(t, svc, db, r)
	}
	first, err := svc.RedriveDeadLetters(ctx, admin, gateway.DeadLetterQuery{Domain: "remote.example", Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, 2, first.Count)
	require.NotEmpty(t, first.NextCursor)
	rest, err := svc.RedriveDeadLetters(ctx, admin, gateway.DeadLetterQuery{Domain: "remote.example", Limit: 2, Cursor: first.NextCursor})
	require.NoError(t, err)
	assert.Equal(t, 1, rest.Count)
	assert.Empty(t, rest.NextCursor)
	left, _, err := svc.ListDeadLetters(ctx, admin, gateway.DeadLetterQuery{})
	require.NoError(t, err)
	assert.Empty(t, left)

	_, _, err = svc.ListDeadLetters(ctx, admin, gateway.DeadLetterQuery{Cursor: "bm8"})
	assert.Equal(t, amtp.CodeInvalidMessageFormat, codeOf(t, err))
}

// TestAttemptHistoryIsBounded: the oldest entries go.
func TestAttemptHistoryIsBounded(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := gateway.RecipientStatus{Address: "Bob@example.org", Status: gateway.StateQueued}
	for i := range gateway.MaxAttemptHistory + 2 {
		st = gateway.RecipientStatus{Address: "bob@example.org", Status: gateway.StateRetrying, Attempts: i + 1, UpdatedAt: at.Add(time.Duration(i) * time.Second)}.After([]gateway.RecipientStatus{st})
	}
	assert.Len(t, st.History, gateway.MaxAttemptHistory-1, "the status itself is the newest entry")
	h := st.WithHistory().History
	require.Len(t, h, gateway.MaxAttemptHistory)
	assert.Equal(t, 3, h[0].Attempt, "the two oldest are gone")
	assert.Equal(t, gateway.MaxAttemptHistory+2, h[len(h)-1].Attempt)
	assert.Equal(t, "retrying", h[len(h)-1].Outcome)
}

// TestFirstAttemptStoresNoHistory: a recipient delivered at its first
// attempt, most of them, costs its store nothing; the status still shows
// the attempt.
func TestFirstAttemptStoresNoHistory(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	queued := gateway.RecipientStatus{Address: "bob@example.org", Status: gateway.StateQueued, UpdatedAt: at}
	done := gateway.RecipientStatus{Address: "bob@example.org", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at.Add(time.Second)}.After([]gateway.RecipientStatus{queued})
	assert.Empty(t, done.History)
	assert.Equal(t, []gateway.AttemptRecord{{At: at.Add(time.Second), Outcome: "delivered", Attempt: 1}}, done.WithHistory().History)
	assert.Empty(t, queued.WithHistory().History, "no attempt yet")
}

// TestRedriveOfAMessageNoLongerKept: a dead letter can outlive its message
// (retention); redriving it answers NOT_FOUND and drops it.
func TestRedriveOfAMessageNoLongerKept(t *testing.T) {
	svc, db := deadLetterWorld(t)
	ctx := context.Background()
	task := gateway.Task{ID: gateway.TaskID("gone-1", "bob@remote.example"), MessageID: "gone-1", Kind: gateway.TaskRemote, Domain: "remote.example", Recipients: []string{"bob@remote.example"}, CreatedAt: time.Now()}
	require.NoError(t, db.DeadLetter(ctx, task, gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE"}))
	list, _, err := svc.ListDeadLetters(ctx, admin, gateway.DeadLetterQuery{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Empty(t, list[0].OriginalMessage)

	_, err = svc.RedriveDeadLetter(ctx, admin, list[0].ID)
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err))

	// In a bulk redrive it is dropped, and the others go on.
	require.NoError(t, db.DeadLetter(ctx, task, gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE"}))
	_, kept := deadLettered(t, svc, db, "carol@remote.example")
	b, err := svc.RedriveDeadLetters(ctx, admin, gateway.DeadLetterQuery{})
	require.NoError(t, err)
	require.Equal(t, 1, b.Count)
	assert.Equal(t, kept.ID, b.Redriven[0].TaskID)
	again, err := db.Receive(ctx, 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.NoError(t, db.Ack(ctx, again[0]))

	left, _, err := svc.ListDeadLetters(ctx, admin, gateway.DeadLetterQuery{})
	require.NoError(t, err)
	assert.Empty(t, left)
	queued, err := db.Receive(ctx, 1, 10*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, queued, "nothing to deliver")
}
