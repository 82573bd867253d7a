package workflow

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/stretchr/testify/require"
)

const (
	wfID      = "01H8X9Z2K3M4N5P6Q7R8S9T0AB"
	initiator = "boss@acme.com"
)

var t0 = time.Date(2025, 8, 14, 10, 30, 0, 0, time.UTC)

// at is a moment n seconds into a test workflow.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// message is a coordinated message as the accept path would hand it over:
// through amtp.Parse.
func message(t testing.TB, recipients []string, coordination string) *amtp.Message {
	t.Helper()
	rc, err := json.Marshal(recipients)
	require.NoError(t, err)
	raw := fmt.Sprintf(`{"version":"1.0","message_id":%q,"sender":%q,"recipients":%s,"coordination":%s,"payload":{"task":"review"}}`,
		wfID, initiator, rc, coordination)
	m, err := amtp.Parse([]byte(raw), amtp.Limits{})
	require.NoError(t, err, "test message must be valid AMTP: %s", raw)
	return m
}

func mustStart(t testing.TB, recipients []string, coordination string) (State, []Action) {
	t.Helper()
	s, acts, err := Start(message(t, recipients, coordination), t0)
	require.NoError(t, err)
	return s, acts
}

func reply(from, payload string, sec int) Event {
	return Event{Kind: EventReply, WorkflowID: wfID, From: from, ResponseType: amtp.ResponseWorkflowResponse,
		Payload: json.RawMessage(payload), MessageID: amtp.NewUUIDv7(), At: at(sec)}
}

func replyErr(from, payload string, sec int) Event {
	e := reply(from, payload, sec)
	e.ResponseType = amtp.ResponseWorkflowError
	return e
}

func undeliverable(from string, sec int) Event {
	return DeliveryFailedEvent(wfID, from, amtp.CodeRecipientNotFound, "no such agent", at(sec))
}

func timeout(sec int) Event { return Event{Kind: EventTimeout, WorkflowID: wfID, At: at(sec)} }

// sent lists everyone the actions ask.
func sent(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if a.Kind == ActionSend {
			out = append(out, a.To...)
		}
	}
	return out
}

func kinds(acts []Action) []ActionKind {
	out := make([]ActionKind, 0, len(acts))
	for _, a := range acts {
		out = append(out, a.Kind)
	}
	return out
}

func statuses(s State) map[string]ParticipantStatus {
	out := make(map[string]ParticipantStatus, len(s.Participants))
	for _, p := range s.Participants {
		out[p.Address] = p.Status
	}
	return out
}

func participant(t testing.TB, s State, addr string) Participant {
	t.Helper()
	for _, p := range s.Participants {
		if p.Address == addr {
			return p
		}
	}
	require.Failf(t, "no participant", "%s is not in %+v", addr, s.Participants)
	return Participant{}
}

// requireEnd checks the one result and the one timer cancellation every
// end produces, and that the result reports the state it ended in.
func requireEnd(t testing.TB, s State, acts []Action, want Status) {
	t.Helper()
	require.Equal(t, want, s.Status)
	require.Equal(t, []ActionKind{ActionResult, ActionCancelTimeout}, kinds(acts))
	res := acts[0]
	require.Equal(t, []string{initiator}, res.To)
	require.NotNil(t, res.Result)
	require.Equal(t, s.View(), *res.Result)
}
