package workflow

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
)

// FuzzStart feeds arbitrary coordination members and recipient lists to
// Start, as the accept path does after adding the participants the
// coordination names. A refusal is an AMTP error pointing at a field, for
// the 400 the client reads. A workflow that starts is well formed, and
// its coordination, written back from the parsed view, starts the same
// workflow.
func FuzzStart(f *testing.F) {
	for _, seed := range []struct{ rcpts, coord string }{
		{"a@x.com,b@x.com,c@x.com", `{"type":"parallel","timeout":3600,"required_responses":["a@x.com","b@x.com"],"optional_responses":["c@x.com"]}`},
		{"a@x.com,b@x.com", `{"type":"parallel"}`},
		{"", `{"type":"sequential","timeout":100,"sequence":["a@x.com","B@X.COM","c@x.com"],"stop_on_failure":true}`},
		{"a@x.com", `{"type":"conditional","conditions":[{"if":"a@x.com responds with ok = true","then":["b@x.com"],"else":["c@x.com"]}]}`},
		{"", `{"type":"conditional","conditions":[{"if":{"participant":"a@x.com","path":"n","op":">=","value":1.5},"then":["b@x.com","b@x.com"]}]}`},
		{"a@x.com", `{"type":"parallel","type":"sequential","sequence":["a@x.com"]}`},
		{"a@x.com", `{"type":"parallel","timeout":-1}`},
		{"a@x.com", `{"type":"parallel","timeout":1e3}`},
		{"a@x.com", `{"type":"parallel","timeout":604801}`},
		{"a@x.com", `{"type":"parallel","sequence":["a@x.com"]}`},
		{"a@x.com", `{"type":"parallel","optional_responses":["a@x.com"]}`},
		{"a@x.com", `{"type":"conditional","conditions":[{"if":5}]}`},
		{"a@x.com", `{"type":"conditional","conditions":[{"if":null,"then":["a@x.com"]}]}`},
		{"ü@bücher.de,a@xn--bcher-kva.de", `{"type":"parallel","required_responses":["ü@bücher.de"]}`},
		{"a@x.com", `{"type":"sequential","sequence":["a@x.com"]`},
		{"a@x.com", `null`},
		{"a@x.com", ``},
		{"a@x.com", `[]`},
		{",,", `{"type":"parallel"}`},
		{strings.Repeat("a@x.com,", 120), `{"type":"parallel"}`},
		{"a@x.com", `{"type":"conditional","conditions":[` + strings.Repeat(`{"if":"a@x.com responds with x = 1"},`, 120) + `{"if":"a@x.com responds with x = 2"}]}`},
	} {
		f.Add(seed.rcpts, []byte(seed.coord))
	}
	f.Fuzz(func(t *testing.T, rcpts string, coord []byte) {
		msg := coordinated(rcpts, coord)
		s, acts, err := Start(msg, t0)
		if err != nil {
			requireFieldError(t, err)
			return
		}
		requireStarted(t, msg, s, acts)

		again, _, err := Start(msg, t0)
		require.NoError(t, err)
		require.Equal(t, s, again, "Start is deterministic")

		raw, err := json.Marshal(s)
		require.NoError(t, err)
		var back State
		require.NoError(t, json.Unmarshal(raw, &back))
		require.Equal(t, s, back)

		c, err := amtp.ParseCoordination(coord)
		require.NoError(t, err)
		written, err := json.Marshal(c)
		require.NoError(t, err)
		rewritten := *msg
		rewritten.Coordination = written
		fromView, _, err := Start(&rewritten, t0)
		require.NoError(t, err, "coordination %s written back as %s", coord, written)
		require.Equal(t, s, fromView)
	})
}

// coordinated is the message Start sees: the recipients (comma-separated)
// plus, as the accept path adds them, the addresses the coordination names.
func coordinated(rcpts string, coord []byte) *amtp.Message {
	msg := &amtp.Message{Version: "1.0", MessageID: wfID, Sender: initiator, Coordination: coord}
	seen := map[string]bool{}
	for r := range strings.SplitSeq(rcpts, ",") {
		if r != "" {
			msg.Recipients = append(msg.Recipients, r)
			seen[amtp.KeyOf(r)] = true
		}
	}
	c, err := amtp.ParseCoordination(coord)
	if err != nil {
		return msg
	}
	for _, addr := range Addresses(c) {
		a, err := amtp.ParseAddress(addr)
		if err == nil && !seen[a.Key()] {
			seen[a.Key()] = true
			msg.Recipients = append(msg.Recipients, a.String())
		}
	}
	return msg
}

func requireFieldError(t *testing.T, err error) {
	t.Helper()
	e, ok := amtp.AsError(err)
	require.True(t, ok, "not an AMTP error: %v", err)
	require.Contains(t, []amtp.Code{amtp.CodeInvalidMessageFormat, amtp.CodeInvalidRecipient, amtp.CodeCoordinationFailed}, e.Code, "%v", err)
	field, _ := e.Details["field"].(string)
	require.NotEmpty(t, field, "%v names no field", err)
}

// requireStarted checks what every driver relies on of a new workflow.
func requireStarted(t *testing.T, msg *amtp.Message, s State, acts []Action) {
	t.Helper()
	require.Equal(t, wfID, s.WorkflowID)
	require.Equal(t, StatusInProgress, s.Status)
	require.Equal(t, 1, s.Version)
	require.Equal(t, t0, s.CreatedAt)
	require.True(t, s.Deadline.After(t0) && !s.Deadline.After(t0.Add(amtp.MaxCoordinationTimeout*time.Second)), "deadline %v", s.Deadline)
	require.NotEmpty(t, acts)
	require.Equal(t, Action{Kind: ActionScheduleTimeout, At: s.Deadline}, acts[0])

	recipients := map[string]bool{}
	for _, r := range msg.Recipients {
		recipients[amtp.KeyOf(r)] = true
	}
	participants := map[string]bool{}
	required := false
	for _, p := range s.Participants {
		k := addrKey(p.Address)
		require.NotEmpty(t, k, "participant %q is no address", p.Address)
		require.False(t, participants[k], "%s takes part twice", p.Address)
		require.True(t, recipients[k], "participant %s is not a recipient", p.Address)
		participants[k] = true
		required = required || p.Required
	}
	require.True(t, required, "a workflow with no required participant could only time out")
	for k := range recipients {
		require.True(t, participants[k], "recipient %s is never asked", k)
	}
}
