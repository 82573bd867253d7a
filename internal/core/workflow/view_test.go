package workflow

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// midway is a conditional workflow with answers recorded, a branch decided
// and payloads that json.Marshal would escape.
func midway(t *testing.T) State {
	t.Helper()
	s, _ := mustStart(t, []string{approver, execute, rejecter},
		`{"type":"conditional","timeout":600,"conditions":[{"if":"approver@mgr.com responds with note = \"a<b\"","then":["exec@sys.com"],"else":["reject@sys.com"]}]}`)
	s, _, err := Apply(s, reply(approver, "{ \"note\": \"a<b\", \"html\": \"<i>&amp;</i>\u2028\" }", 3))
	require.NoError(t, err)
	require.Equal(t, []string{BranchThen}, s.Branches)
	return s
}

func TestStateJSONRoundTrip(t *testing.T) {
	s := midway(t)
	for _, st := range []State{s, func() State {
		n, _, err := Apply(s, replyErr(execute, `{"why":"disk full"}`, 4))
		require.NoError(t, err)
		return n
	}()} {
		raw, err := json.Marshal(st)
		require.NoError(t, err)
		var back State
		require.NoError(t, json.Unmarshal(raw, &back))
		require.Equal(t, st, back)
		again, err := json.Marshal(back)
		require.NoError(t, err)
		require.Equal(t, string(raw), string(again), "a stored state reads back byte for byte")

		// The round-tripped state behaves like the original.
		e := reply(execute, `{}`, 5)
		n1, a1, err1 := Apply(st, e)
		n2, a2, err2 := Apply(back, e)
		require.Equal(t, err1, err2)
		require.Equal(t, n1, n2)
		require.Equal(t, a1, a2)
	}
}

func TestEventAndActionJSONRoundTrip(t *testing.T) {
	s := midway(t)
	e := reply(execute, `{"done":true}`, 9)
	raw, err := json.Marshal(e)
	require.NoError(t, err)
	var back Event
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, e, back)

	_, acts, err := Apply(s, back)
	require.NoError(t, err)
	raw, err = json.Marshal(acts)
	require.NoError(t, err)
	var actsBack []Action
	require.NoError(t, json.Unmarshal(raw, &actsBack))
	require.Equal(t, acts, actsBack)
}

func TestViewShape(t *testing.T) {
	s := midway(t)
	raw, err := json.Marshal(s.View())
	require.NoError(t, err)
	var v struct {
		WorkflowID   string           `json:"workflow_id"`
		Status       string           `json:"status"`
		CreatedAt    string           `json:"created_at"`
		UpdatedAt    string           `json:"updated_at"`
		Participants []map[string]any `json:"participants"`
	}
	require.NoError(t, json.Unmarshal(raw, &v))
	assert.Equal(t, wfID, v.WorkflowID)
	assert.Equal(t, "in_progress", v.Status)
	assert.Equal(t, "2025-08-14T10:30:00.000Z", v.CreatedAt)
	assert.Equal(t, "2025-08-14T10:30:03.000Z", v.UpdatedAt)
	require.Len(t, v.Participants, 3)

	answered := v.Participants[0]
	assert.Equal(t, approver, answered["address"])
	assert.Equal(t, "completed", answered["status"])
	assert.Equal(t, map[string]any{"note": "a<b", "html": "<i>&amp;</i>\u2028"}, answered["response"])
	assert.Equal(t, "2025-08-14T10:30:03.000Z", answered["responded_at"])
	assert.NotContains(t, answered, "deadline", "an answered participant has no deadline")

	waiting := v.Participants[1]
	assert.Equal(t, execute, waiting["address"])
	assert.Equal(t, "awaiting", waiting["status"])
	assert.Equal(t, "2025-08-14T10:40:00.000Z", waiting["deadline"])
	assert.NotContains(t, waiting, "response")

	assert.Equal(t, "pending", v.Participants[2]["status"])

	done, _, err := Apply(s, reply(execute, `{}`, 4))
	require.NoError(t, err)
	for _, p := range done.View().Participants {
		assert.Empty(t, p.Deadline, "a finished workflow shows no deadlines")
	}
}

func TestResultMessage(t *testing.T) {
	s := midway(t)
	_, err := ResultMessage(s, "acme.com", at(5))
	require.Error(t, err, "no result while in progress")

	end, acts, err := Apply(s, replyErr(execute, `{"why":"disk full"}`, 4))
	require.NoError(t, err)
	requireEnd(t, end, acts, StatusFailed)

	m, err := ResultMessage(end, "ACME.com", at(5).Add(1500*time.Microsecond))
	require.NoError(t, err)

	// No invalid message leaves the core: what it writes, Parse accepts,
	// and nothing is lost on the way.
	raw, err := m.MarshalJSON()
	require.NoError(t, err)
	parsed, err := amtp.Parse(raw, amtp.Limits{})
	require.NoError(t, err)
	require.Equal(t, m, parsed)

	assert.Equal(t, "postmaster@acme.com", m.Sender)
	assert.Equal(t, []string{initiator}, m.Recipients)
	assert.Equal(t, wfID, m.InReplyTo)
	assert.Equal(t, amtp.ResponseWorkflowResult, m.ResponseType)
	assert.True(t, amtp.IsUUID(m.MessageID))
	assert.True(t, amtp.ValidIdempotencyKey(m.IdempotencyKey))
	assert.Equal(t, at(5).Add(time.Millisecond), m.Timestamp)

	var payload View
	require.NoError(t, json.Unmarshal(m.Payload, &payload))
	assert.Equal(t, end.View(), payload)
	assert.Equal(t, StatusFailed, payload.Status)
	require.Len(t, payload.Participants, 3)
	assert.JSONEq(t, `{"note":"a<b","html":"<i>&amp;</i>\u2028"}`, string(payload.Participants[0].Response))
	assert.Equal(t, ParticipantFailed, payload.Participants[1].Status)
	assert.JSONEq(t, `{"why":"disk full"}`, string(payload.Participants[1].Error))
	assert.Equal(t, ParticipantSkipped, payload.Participants[2].Status)

	// The same result however often, and whether or not the state went
	// through storage: the accept path de-duplicates a repeated final step.
	stored, err := json.Marshal(end)
	require.NoError(t, err)
	var back State
	require.NoError(t, json.Unmarshal(stored, &back))
	again, err := ResultMessage(back, "acme.com", at(60))
	require.NoError(t, err)
	assert.Equal(t, m.MessageID, again.MessageID)
	assert.Equal(t, m.IdempotencyKey, again.IdempotencyKey)
	assert.Equal(t, m.AppendContentDigestInput(nil), again.AppendContentDigestInput(nil))

	// Another workflow, or another initiator, gets other identifiers.
	other := end
	other.WorkflowID = "01H8X9Z2K3M4N5P6Q7R8S9T1AB"
	om, err := ResultMessage(other, "acme.com", at(5))
	require.NoError(t, err)
	assert.NotEqual(t, m.MessageID, om.MessageID)
	assert.NotEqual(t, m.IdempotencyKey, om.IdempotencyKey)
	other = end
	other.Initiator = "someone@acme.com"
	om, err = ResultMessage(other, "acme.com", at(5))
	require.NoError(t, err)
	assert.NotEqual(t, m.MessageID, om.MessageID)

	_, err = ResultMessage(end, "not a domain", at(5))
	require.Error(t, err)
	_, err = ResultMessage(end, "acme.com", time.Time{})
	require.Error(t, err)
}

func TestResultMessageForEveryEnd(t *testing.T) {
	rcpts := []string{a, b}
	coord := `{"type":"parallel","timeout":60}`
	for _, tc := range []struct {
		ev   Event
		want Status
	}{
		{replyErr(a, `{}`, 1), StatusFailed},
		{timeout(60), StatusTimedOut},
	} {
		s, _ := mustStart(t, rcpts, coord)
		s, acts, err := Apply(s, tc.ev)
		require.NoError(t, err)
		requireEnd(t, s, acts, tc.want)
		m, err := ResultMessage(s, "acme.com", at(70))
		require.NoError(t, err)
		raw, err := m.MarshalJSON()
		require.NoError(t, err)
		_, err = amtp.Parse(raw, amtp.Limits{})
		require.NoError(t, err)
		assert.Equal(t, "Workflow "+string(tc.want), m.Subject)
	}
	s, _ := mustStart(t, rcpts, coord)
	s, _, err := Apply(s, reply(a, `{}`, 1))
	require.NoError(t, err)
	s, acts, err := Apply(s, reply(b, `{}`, 2))
	require.NoError(t, err)
	requireEnd(t, s, acts, StatusCompleted)
	_, err = ResultMessage(s, "acme.com", at(3))
	require.NoError(t, err)
}
