package workflow

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartState(t *testing.T) {
	cases := []struct {
		name       string
		recipients []string
		coord      string
		want       []Participant
		stop       bool
		conditions int
		timeout    time.Duration
	}{
		{
			name:       "parallel from the draft §4.1",
			recipients: []string{"agent1@receiver.com", "agent2@partner.com"},
			coord:      `{"type":"parallel","timeout":3600,"required_responses":["agent1@receiver.com"]}`,
			want: []Participant{
				{Address: "agent1@receiver.com", Status: ParticipantAwaiting, Required: true},
				{Address: "agent2@partner.com", Status: ParticipantAwaiting},
			},
			timeout: time.Hour,
		},
		{
			name:       "sequential from the draft §7.1.2, the sequence's order, the recipients' spelling",
			recipients: []string{"final@agent.com", "First@agent.com", "second@agent.com"},
			coord:      `{"type":"sequential","timeout":7200,"sequence":["first@agent.com","second@AGENT.com","final@agent.com"],"stop_on_failure":true}`,
			want: []Participant{
				{Address: "First@agent.com", Status: ParticipantAwaiting, Required: true},
				{Address: "second@agent.com", Status: ParticipantPending, Required: true},
				{Address: "final@agent.com", Status: ParticipantPending, Required: true},
			},
			stop:    true,
			timeout: 2 * time.Hour,
		},
		{
			name:       "conditional from the draft §7.1.3",
			recipients: []string{"reject@system.com", "execute@system.com", "approval@manager.com"},
			coord:      `{"type":"conditional","timeout":1800,"conditions":[{"if":"approval@manager.com responds with approve=true","then":["execute@system.com"],"else":["reject@system.com","reject@system.com"]}]}`,
			want: []Participant{
				{Address: "approval@manager.com", Status: ParticipantAwaiting, Required: true},
				{Address: "execute@system.com", Status: ParticipantPending, Required: true},
				{Address: "reject@system.com", Status: ParticipantPending, Required: true},
			},
			conditions: 1,
			timeout:    30 * time.Minute,
		},
		{
			name:       "no timeout: seven days",
			recipients: []string{a},
			coord:      `{"type":"parallel"}`,
			want:       []Participant{{Address: a, Status: ParticipantAwaiting, Required: true}},
			timeout:    7 * 24 * time.Hour,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(123456789 * time.Nanosecond) // sub-millisecond part is dropped
			s, acts, err := Start(message(t, tc.recipients, tc.coord), now)
			require.NoError(t, err)
			assert.Equal(t, wfID, s.WorkflowID)
			assert.Equal(t, initiator, s.Initiator)
			assert.Equal(t, StatusInProgress, s.Status)
			assert.Equal(t, 1, s.Version)
			assert.Equal(t, t0.Add(123*time.Millisecond), s.CreatedAt)
			assert.Equal(t, s.CreatedAt, s.UpdatedAt)
			assert.Equal(t, s.CreatedAt.Add(tc.timeout), s.Deadline)
			assert.Equal(t, tc.want, s.Participants)
			assert.Equal(t, tc.stop, s.StopOnFailure)
			assert.Len(t, s.Conditions, tc.conditions)
			require.Equal(t, []ActionKind{ActionScheduleTimeout, ActionSend}, kinds(acts))
			assert.Equal(t, s.Deadline, acts[0].At)
		})
	}
}

func TestStartConditionIsCompiled(t *testing.T) {
	s, _ := mustStart(t, []string{approver, execute, rejecter},
		`{"type":"conditional","conditions":[{"if":{"participant":"APPROVER@mgr.com","path":"a.b","op":"<=","value":2},"then":["EXEC@sys.com"],"else":["reject@sys.com"]}]}`)
	require.Equal(t, []Condition{{
		If:   Predicate{Participant: approver, Path: "a.b", Op: OpLe, Value: json.RawMessage(`2`)},
		Then: []string{execute},
		Else: []string{rejecter},
	}}, s.Conditions)
	require.Equal(t, approver, s.Participants[0].Address)
}

func TestStartRefusals(t *testing.T) {
	three := []string{a, b, c}
	cases := []struct {
		name       string
		recipients []string
		coord      string
		code       amtp.Code
		field      string
	}{
		// parallel
		{"required is not a recipient", []string{a, b}, `{"type":"parallel","required_responses":["c@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.required_responses[0]"},
		{"optional is not a recipient", []string{a, b}, `{"type":"parallel","optional_responses":["b@x.com","c@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.optional_responses[1]"},
		{"required and optional at once", []string{a, b}, `{"type":"parallel","required_responses":["a@x.com"],"optional_responses":["A@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.optional_responses[0]"},
		{"nobody required", []string{a, b}, `{"type":"parallel","optional_responses":["a@x.com","b@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.optional_responses"},
		{"parallel with a sequence", []string{a, b}, `{"type":"parallel","sequence":["a@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.sequence"},
		{"parallel with stop_on_failure", []string{a, b}, `{"type":"parallel","stop_on_failure":true}`, amtp.CodeCoordinationFailed, "coordination.stop_on_failure"},
		// sequential
		{"sequence member not a recipient", []string{a, b}, `{"type":"sequential","sequence":["a@x.com","c@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.sequence[1]"},
		{"recipient not in the sequence", three, `{"type":"sequential","sequence":["a@x.com","c@x.com"]}`, amtp.CodeCoordinationFailed, "recipients[1]"},
		{"sequence repeats", []string{a, b}, `{"type":"sequential","sequence":["a@x.com","b@x.com","A@X.com"]}`, amtp.CodeCoordinationFailed, "coordination.sequence[2]"},
		{"sequential with required", []string{a, b}, `{"type":"sequential","sequence":["a@x.com","b@x.com"],"required_responses":["a@x.com"]}`, amtp.CodeCoordinationFailed, "coordination.required_responses"},
		// conditional: structure
		{"conditional with a sequence", []string{approver}, `{"type":"conditional","sequence":["approver@mgr.com"],"conditions":[{"if":"approver@mgr.com responds with ok=true"}]}`, amtp.CodeCoordinationFailed, "coordination.sequence"},
		{"condition participant not a recipient", []string{execute}, `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with ok=true","then":["exec@sys.com"]}]}`, amtp.CodeCoordinationFailed, "coordination.conditions[0].if"},
		{"structured participant not a recipient", []string{execute}, `{"type":"conditional","conditions":[{"if":{"participant":"approver@mgr.com","path":"ok","op":"=","value":true},"then":["exec@sys.com"]}]}`, amtp.CodeCoordinationFailed, "coordination.conditions[0].if.participant"},
		{"then not a recipient", []string{approver}, `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with ok=true","then":["exec@sys.com"]}]}`, amtp.CodeCoordinationFailed, "coordination.conditions[0].then[0]"},
		{"else not a recipient", []string{approver, execute}, `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with ok=true","then":["exec@sys.com"]},{"if":"exec@sys.com responds with ok=true","else":["exec@sys.com","reject@sys.com"]}]}`, amtp.CodeCoordinationFailed, "coordination.conditions[1].else[1]"},
		{"recipient named by no condition", []string{approver, execute, rejecter}, `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with ok=true","then":["exec@sys.com"]}]}`, amtp.CodeCoordinationFailed, "recipients[2]"},
		// conditional: malformed conditions
		{"bad operator", []string{approver}, cond(`"approver@mgr.com responds with ok =~ true"`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"missing responds with", []string{approver}, cond(`"approver@mgr.com ok = true"`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"bad address", []string{approver}, cond(`"approver.mgr.com responds with ok = true"`), amtp.CodeInvalidRecipient, "coordination.conditions[0].if"},
		{"bad JSON literal", []string{approver}, cond(`"approver@mgr.com responds with ok = \"open"`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"empty path", []string{approver}, cond(`"approver@mgr.com responds with = true"`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"ordering a string", []string{approver}, cond(`"approver@mgr.com responds with n > many"`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"if is a number", []string{approver}, cond(`7`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"structured bad op", []string{approver}, cond(`{"participant":"approver@mgr.com","path":"ok","op":"is","value":true}`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if.op"},
		{"structured empty path", []string{approver}, cond(`{"participant":"approver@mgr.com","path":"","op":"=","value":true}`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if.path"},
		{"structured bad address", []string{approver}, cond(`{"participant":"approver","path":"ok","op":"=","value":true}`), amtp.CodeInvalidRecipient, "coordination.conditions[0].if.participant"},
		{"structured object value", []string{approver}, cond(`{"participant":"approver@mgr.com","path":"ok","op":"=","value":{}}`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if.value"},
		{"structured unknown member", []string{approver}, cond(`{"participant":"approver@mgr.com","path":"ok","op":"=","value":1,"else":[]}`), amtp.CodeInvalidMessageFormat, "coordination.conditions[0].if"},
		{"second condition malformed", []string{approver}, `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with ok=true"},{"if":"approver@mgr.com responds with ok = "}]}`, amtp.CodeInvalidMessageFormat, "coordination.conditions[1].if"},
		{"too many conditions", []string{approver}, `{"type":"conditional","conditions":[` + strings.TrimSuffix(strings.Repeat(`{"if":"approver@mgr.com responds with ok=true"},`, maxConditions+1), ",") + `]}`, amtp.CodeInvalidMessageFormat, "coordination.conditions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, acts, err := Start(message(t, tc.recipients, tc.coord), t0)
			require.Error(t, err)
			require.Equal(t, State{}, s)
			require.Nil(t, acts)
			e, ok := amtp.AsError(err)
			require.True(t, ok, "%v is an *amtp.Error", err)
			assert.Equal(t, tc.code, e.Code, e.Message)
			assert.Equal(t, tc.field, e.Details["field"], e.Message)
		})
	}
}

func cond(ifMember string) string {
	return fmt.Sprintf(`{"type":"conditional","conditions":[{"if":%s}]}`, ifMember)
}

// TestStartRefusesWhatParseWouldHave covers messages that did not come
// through amtp.Parse: Start must not trust its caller.
func TestStartRefusesWhatParseWouldHave(t *testing.T) {
	valid := func() *amtp.Message {
		return &amtp.Message{MessageID: wfID, Sender: initiator, Recipients: []string{a}, Coordination: json.RawMessage(`{"type":"parallel"}`)}
	}
	cases := []struct {
		name   string
		mutate func(m *amtp.Message)
		field  string
	}{
		{"no coordination", func(m *amtp.Message) { m.Coordination = nil }, "coordination"},
		{"no message id", func(m *amtp.Message) { m.MessageID = "" }, "message_id"},
		{"bad message id", func(m *amtp.Message) { m.MessageID = "42" }, "message_id"},
		{"bad sender", func(m *amtp.Message) { m.Sender = "boss" }, "sender"},
		{"no recipients", func(m *amtp.Message) { m.Recipients = nil }, "recipients"},
		{"bad recipient", func(m *amtp.Message) { m.Recipients = []string{a, "x"} }, "recipients[1]"},
		{"bad type", func(m *amtp.Message) { m.Coordination = json.RawMessage(`{"type":"round-robin"}`) }, "coordination.type"},
		{"negative timeout", func(m *amtp.Message) { m.Coordination = json.RawMessage(`{"type":"parallel","timeout":-1}`) }, "coordination.timeout"},
		{"null if", func(m *amtp.Message) {
			m.Coordination = json.RawMessage(`{"type":"conditional","conditions":[{"if":null}]}`)
		}, "coordination.conditions[0].if"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			_, _, err := Start(m, t0)
			require.NoError(t, err, "the base message is valid")
			m = valid()
			tc.mutate(m)
			_, _, err = Start(m, t0)
			e, ok := amtp.AsError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tc.field, e.Details["field"])
		})
	}
	_, _, err := Start(nil, t0)
	require.Error(t, err)
	_, _, err = Start(valid(), time.Time{})
	require.Error(t, err)
}
