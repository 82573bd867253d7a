package gatewaytest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// RunStatusHistory checks that a MessageStore keeps the recipients'
// attempt histories (gateway.RecipientStatus.History). It needs Messages.
func RunStatusHistory(t *testing.T, f Factory) {
	t.Run("KeptByUpdateStatuses", func(t *testing.T) { testHistoryKept(t, f(t)) })
}

func testHistoryKept(t *testing.T, b Backend) {
	at := Now()
	a := NewAcceptance(NewID("msg"), "alice@a.example", []string{"bob@a.example", "carol@a.example"}, at)
	_, err := b.Messages.Accept(ctx(t), a)
	require.NoError(t, err)

	history := []gateway.AttemptRecord{
		{At: at.Add(time.Second), Outcome: "retrying", Attempt: 1, ErrorCode: "RECIPIENT_UNAVAILABLE"},
		{At: at.Add(2 * time.Second), Outcome: "failed", Attempt: 2, ErrorCode: "RECIPIENT_UNAVAILABLE"},
		{At: at.Add(3 * time.Second), Outcome: gateway.OutcomeRedriven, Attempt: 2},
	}
	up := gateway.RecipientStatus{Address: "bob@a.example", Status: gateway.StateQueued, Attempts: 2, UpdatedAt: at.Add(3 * time.Second), History: history}
	require.NoError(t, b.Messages.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{up}))

	got, err := b.Messages.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Len(t, got[0].History, len(history))
	for i, h := range history {
		assert.True(t, h.At.Equal(got[0].History[i].At), "entry %d at %s, want %s", i, got[0].History[i].At, h.At)
		assert.Equal(t, h.Outcome, got[0].History[i].Outcome)
		assert.Equal(t, h.Attempt, got[0].History[i].Attempt)
		assert.Equal(t, h.ErrorCode, got[0].History[i].ErrorCode)
	}
	assert.Empty(t, got[1].History, "a recipient without attempts has no history")
}
