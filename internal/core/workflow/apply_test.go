package workflow

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	a, b, c  = "a@x.com", "b@x.com", "c@x.com"
	approver = "approver@mgr.com"
	execute  = "exec@sys.com"
	rejecter = "reject@sys.com"
)

// step is one event and what must follow from it.
type step struct {
	ev       Event
	status   Status   // the workflow status afterwards
	send     []string // whom the step asks
	err      error    // a sentinel the step must fail with; the state stays as it was
	branches []string // conditional: the decisions so far, when checked
}

type scenario struct {
	name       string
	recipients []string
	coord      string
	firstSend  []string
	steps      []step
	end        map[string]ParticipantStatus
}

func TestScenarios(t *testing.T) {
	approverThen := `{"type":"conditional","timeout":600,"conditions":[{"if":"approver@mgr.com responds with approve=true","then":["exec@sys.com"],"else":["reject@sys.com"]}]}`
	approverStructured := `{"type":"conditional","conditions":[{"if":{"participant":"approver@mgr.com","path":"decision.approve","op":"==","value":true},"then":["exec@sys.com"],"else":["reject@sys.com"]}]}`
	condRcpts := []string{approver, execute, rejecter}

	cases := []scenario{
		{
			name:       "parallel, everyone required by default",
			recipients: []string{a, b},
			coord:      `{"type":"parallel","timeout":3600}`,
			firstSend:  []string{a, b},
			steps: []step{
				{ev: reply(a, `{"ok":1}`, 1), status: StatusInProgress},
				{ev: reply(b, `{"ok":2}`, 2), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantCompleted},
		},
		{
			name:       "parallel, no required list waits for all three",
			recipients: []string{a, b, c},
			coord:      `{"type":"parallel"}`,
			firstSend:  []string{a, b, c},
			steps: []step{
				{ev: reply(c, `{}`, 1), status: StatusInProgress},
				{ev: reply(a, `{}`, 2), status: StatusInProgress},
				{ev: reply(b, `{}`, 3), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantCompleted, c: ParticipantCompleted},
		},
		{
			name:       "parallel, two required and one optional: done without the optional, its late reply ignored",
			recipients: []string{a, b, c},
			coord:      `{"type":"parallel","required_responses":["a@x.com","b@x.com"],"optional_responses":["c@x.com"]}`,
			firstSend:  []string{a, b, c},
			steps: []step{
				{ev: reply(a, `{}`, 1), status: StatusInProgress},
				{ev: reply(b, `{}`, 2), status: StatusCompleted},
				{ev: reply(c, `{}`, 3), err: ErrFinished},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantCompleted, c: ParticipantSkipped},
		},
		{
			name:       "parallel, unlisted recipients are optional when a required list is given",
			recipients: []string{a, b},
			coord:      `{"type":"parallel","required_responses":["A@X.COM"]}`,
			firstSend:  []string{a, b},
			steps:      []step{{ev: reply(a, `{}`, 1), status: StatusCompleted}},
			end:        map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantSkipped},
		},
		{
			name:       "parallel, optional list only: the rest is required",
			recipients: []string{a, b, c},
			coord:      `{"type":"parallel","optional_responses":["c@x.com"]}`,
			firstSend:  []string{a, b, c},
			steps: []step{
				{ev: reply(a, `{}`, 1), status: StatusInProgress},
				{ev: reply(b, `{}`, 2), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantCompleted, c: ParticipantSkipped},
		},
		{
			name:       "parallel, a required workflow_error fails at once",
			recipients: []string{a, b},
			coord:      `{"type":"parallel"}`,
			firstSend:  []string{a, b},
			steps: []step{
				{ev: replyErr(a, `{"reason":"no stock"}`, 1), status: StatusFailed},
				{ev: reply(b, `{}`, 2), err: ErrFinished},
			},
			end: map[string]ParticipantStatus{a: ParticipantFailed, b: ParticipantSkipped},
		},
		{
			name:       "parallel, an optional workflow_error is recorded only",
			recipients: []string{a, b},
			coord:      `{"type":"parallel","required_responses":["a@x.com"],"optional_responses":["b@x.com"]}`,
			firstSend:  []string{a, b},
			steps: []step{
				{ev: replyErr(b, `{}`, 1), status: StatusInProgress},
				{ev: reply(a, `{}`, 2), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantFailed},
		},
		{
			name:       "parallel, a required participant that cannot be delivered to fails the workflow",
			recipients: []string{a, b},
			coord:      `{"type":"parallel","required_responses":["b@x.com"]}`,
			firstSend:  []string{a, b},
			steps:      []step{{ev: undeliverable(b, 1), status: StatusFailed}},
			end:        map[string]ParticipantStatus{a: ParticipantSkipped, b: ParticipantFailed},
		},
		{
			name:       "parallel, an optional participant that cannot be delivered to is recorded only",
			recipients: []string{a, b},
			coord:      `{"type":"parallel","required_responses":["a@x.com"]}`,
			firstSend:  []string{a, b},
			steps: []step{
				{ev: undeliverable(b, 1), status: StatusInProgress},
				{ev: reply(a, `{}`, 2), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantFailed},
		},
		{
			name:       "sequential, each asked after the previous answered",
			recipients: []string{a, b, c},
			coord:      `{"type":"sequential","sequence":["b@x.com","a@x.com","c@x.com"]}`,
			firstSend:  []string{b},
			steps: []step{
				{ev: reply(a, `{}`, 1), err: ErrNotAsked},
				{ev: reply(b, `{}`, 2), status: StatusInProgress, send: []string{a}},
				{ev: reply(a, `{}`, 3), status: StatusInProgress, send: []string{c}},
				{ev: reply(c, `{}`, 4), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantCompleted, c: ParticipantCompleted},
		},
		{
			name:       "sequential, stop_on_failure stops at the first error",
			recipients: []string{a, b, c},
			coord:      `{"type":"sequential","sequence":["a@x.com","b@x.com","c@x.com"],"stop_on_failure":true}`,
			firstSend:  []string{a},
			steps: []step{
				{ev: reply(a, `{}`, 1), status: StatusInProgress, send: []string{b}},
				{ev: replyErr(b, `{"reason":"x"}`, 2), status: StatusFailed},
			},
			end: map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantFailed, c: ParticipantSkipped},
		},
		{
			name:       "sequential, without stop_on_failure an error is recorded and the sequence goes on",
			recipients: []string{a, b, c},
			coord:      `{"type":"sequential","sequence":["a@x.com","b@x.com","c@x.com"]}`,
			firstSend:  []string{a},
			steps: []step{
				{ev: replyErr(a, `{}`, 1), status: StatusInProgress, send: []string{b}},
				{ev: undeliverable(b, 2), status: StatusInProgress, send: []string{c}},
				{ev: reply(c, `{}`, 3), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{a: ParticipantFailed, b: ParticipantFailed, c: ParticipantCompleted},
		},
		{
			name:       "sequential, an undeliverable participant with stop_on_failure fails",
			recipients: []string{a, b},
			coord:      `{"type":"sequential","sequence":["a@x.com","b@x.com"],"stop_on_failure":true}`,
			firstSend:  []string{a},
			steps:      []step{{ev: undeliverable(a, 1), status: StatusFailed}},
			end:        map[string]ParticipantStatus{a: ParticipantFailed, b: ParticipantSkipped},
		},
		{
			name:       "conditional, text form, approve=true takes then",
			recipients: condRcpts,
			coord:      approverThen,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(execute, `{}`, 1), err: ErrNotAsked},
				{ev: reply(approver, `{"approve":true}`, 2), status: StatusInProgress, send: []string{execute}, branches: []string{BranchThen}},
				{ev: reply(rejecter, `{}`, 3), err: ErrNotAsked},
				{ev: reply(execute, `{"done":true}`, 4), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{approver: ParticipantCompleted, execute: ParticipantCompleted, rejecter: ParticipantSkipped},
		},
		{
			name:       "conditional, text form, approve=false takes else",
			recipients: condRcpts,
			coord:      approverThen,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(approver, `{"approve":false}`, 1), status: StatusInProgress, send: []string{rejecter}, branches: []string{BranchElse}},
				{ev: reply(rejecter, `{}`, 2), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{approver: ParticipantCompleted, execute: ParticipantSkipped, rejecter: ParticipantCompleted},
		},
		{
			name:       "conditional, text form, a string \"true\" is not true",
			recipients: condRcpts,
			coord:      approverThen,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(approver, `{"approve":"true"}`, 1), status: StatusInProgress, send: []string{rejecter}, branches: []string{BranchElse}},
			},
		},
		{
			name:       "conditional, text form, a missing path takes else",
			recipients: condRcpts,
			coord:      approverThen,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(approver, `{"approved":true}`, 1), status: StatusInProgress, send: []string{rejecter}, branches: []string{BranchElse}},
			},
		},
		{
			name:       "conditional, structured form, nested path true takes then",
			recipients: condRcpts,
			coord:      approverStructured,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(approver, `{"decision":{"approve":true}}`, 1), status: StatusInProgress, send: []string{execute}, branches: []string{BranchThen}},
				{ev: reply(execute, `{}`, 2), status: StatusCompleted},
			},
		},
		{
			name:       "conditional, structured form, false takes else",
			recipients: condRcpts,
			coord:      approverStructured,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(approver, `{"decision":{"approve":false}}`, 1), status: StatusInProgress, send: []string{rejecter}, branches: []string{BranchElse}},
			},
		},
		{
			name:       "conditional, an empty branch completes at once",
			recipients: []string{approver, execute},
			coord:      `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with approve = true","then":["exec@sys.com"]}]}`,
			firstSend:  []string{approver},
			steps:      []step{{ev: reply(approver, `{"approve":false}`, 1), status: StatusCompleted, branches: []string{BranchElse}}},
			end:        map[string]ParticipantStatus{approver: ParticipantCompleted, execute: ParticipantSkipped},
		},
		{
			name:       "conditional, a workflow_error from the condition participant fails",
			recipients: condRcpts,
			coord:      approverThen,
			firstSend:  []string{approver},
			steps:      []step{{ev: replyErr(approver, `{"approve":true}`, 1), status: StatusFailed}},
			end:        map[string]ParticipantStatus{approver: ParticipantFailed, execute: ParticipantSkipped, rejecter: ParticipantSkipped},
		},
		{
			name:       "conditional, a workflow_error in the branch fails",
			recipients: condRcpts,
			coord:      approverThen,
			firstSend:  []string{approver},
			steps: []step{
				{ev: reply(approver, `{"approve":true}`, 1), status: StatusInProgress, send: []string{execute}},
				{ev: replyErr(execute, `{}`, 2), status: StatusFailed},
			},
			end: map[string]ParticipantStatus{approver: ParticipantCompleted, execute: ParticipantFailed, rejecter: ParticipantSkipped},
		},
		{
			name:       "conditional, two conditions run in order and reuse an answer",
			recipients: []string{approver, execute, rejecter, a},
			coord: `{"type":"conditional","conditions":[
				{"if":"approver@mgr.com responds with amount > 1000","then":["a@x.com"]},
				{"if":"approver@mgr.com responds with approve = true","then":["exec@sys.com"],"else":["reject@sys.com"]}]}`,
			firstSend: []string{approver},
			steps: []step{
				{ev: reply(approver, `{"amount":5000,"approve":true}`, 1), status: StatusInProgress, send: []string{a}, branches: []string{BranchThen}},
				{ev: reply(a, `{}`, 2), status: StatusInProgress, send: []string{execute}, branches: []string{BranchThen, BranchThen}},
				{ev: reply(execute, `{}`, 3), status: StatusCompleted},
			},
			end: map[string]ParticipantStatus{approver: ParticipantCompleted, a: ParticipantCompleted, execute: ParticipantCompleted, rejecter: ParticipantSkipped},
		},
		{
			name:       "conditional, a branch member that already answered is not asked again",
			recipients: []string{approver, execute},
			coord: `{"type":"conditional","conditions":[
				{"if":"approver@mgr.com responds with ok = true","then":["approver@mgr.com"],"else":["exec@sys.com"]},
				{"if":"approver@mgr.com responds with ok = true","then":["exec@sys.com"]}]}`,
			firstSend: []string{approver},
			steps: []step{
				{ev: reply(approver, `{"ok":true}`, 1), status: StatusInProgress, send: []string{execute}, branches: []string{BranchThen, BranchThen}},
				{ev: reply(execute, `{}`, 2), status: StatusCompleted},
			},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, acts := mustStart(t, tc.recipients, tc.coord)
			require.Equal(t, StatusInProgress, s.Status)
			require.Equal(t, []ActionKind{ActionScheduleTimeout, ActionSend}, kinds(acts))
			require.Equal(t, s.Deadline, acts[0].At)
			require.ElementsMatch(t, tc.firstSend, sent(acts))
			results := 0
			for i, st := range tc.steps {
				next, acts, err := Apply(s, st.ev)
				if st.err != nil {
					require.ErrorIs(t, err, st.err, "step %d", i)
					require.Equal(t, s, next, "step %d: a refused event changes nothing", i)
					require.Empty(t, acts, "step %d", i)
					continue
				}
				require.NoError(t, err, "step %d", i)
				require.Equal(t, s.Version+1, next.Version, "step %d", i)
				require.Equal(t, st.status, next.Status, "step %d", i)
				if st.status.Terminal() {
					requireEnd(t, next, acts, st.status)
					results++
				} else {
					require.ElementsMatch(t, st.send, sent(acts), "step %d", i)
					for _, act := range acts {
						require.Equal(t, ActionSend, act.Kind, "step %d: only sends while running", i)
					}
				}
				if st.branches != nil {
					require.Equal(t, st.branches, next.Branches, "step %d", i)
				}
				s = next
			}
			require.LessOrEqual(t, results, 1, "one result at most")
			if tc.end != nil {
				require.True(t, s.Status.Terminal())
				require.Equal(t, 1, results, "exactly one result")
				require.Equal(t, tc.end, statuses(s))
			}
		})
	}
}

func TestReplyIsRecorded(t *testing.T) {
	s, _ := mustStart(t, []string{a, b}, `{"type":"parallel"}`)
	ev := reply("A@x.com", `{ "price" : 10, "note": "<b>&</b>" }`, 5)
	s, _, err := Apply(s, ev)
	require.NoError(t, err)
	p := participant(t, s, a)
	assert.Equal(t, ParticipantCompleted, p.Status)
	assert.JSONEq(t, `{"price":10,"note":"<b>&</b>"}`, string(p.Response))
	assert.Nil(t, p.Error)
	assert.Equal(t, ev.MessageID, p.ReplyID)
	assert.Equal(t, at(5), p.RespondedAt)
	assert.Equal(t, at(5), s.UpdatedAt)

	s, _, err = Apply(s, replyErr(b, `{"code":"E1"}`, 6))
	require.NoError(t, err)
	p = participant(t, s, b)
	assert.Equal(t, ParticipantFailed, p.Status)
	assert.JSONEq(t, `{"code":"E1"}`, string(p.Error))
	assert.Nil(t, p.Response)
}

func TestDeliveryFailureIsRecorded(t *testing.T) {
	s, _ := mustStart(t, []string{a, b}, `{"type":"parallel","required_responses":["a@x.com"]}`)
	s, acts, err := Apply(s, undeliverable(b, 1))
	require.NoError(t, err)
	require.Empty(t, acts)
	assert.JSONEq(t, `{"error_code":"RECIPIENT_NOT_FOUND","error_message":"no such agent"}`, string(participant(t, s, b).Error))
}

func TestApplyRefusals(t *testing.T) {
	s, _ := mustStart(t, []string{a, b}, `{"type":"parallel"}`)
	answered, _, err := Apply(s, reply(a, `{"first":true}`, 1))
	require.NoError(t, err)

	cases := []struct {
		name      string
		state     State
		ev        Event
		sentinel  error
		forbidden bool
		code      amtp.Code
	}{
		{name: "stranger", state: s, ev: reply("mallory@evil.com", `{}`, 1), sentinel: ErrNotParticipant, forbidden: true},
		{name: "unparsable sender", state: s, ev: reply("not an address", `{}`, 1), sentinel: ErrNotParticipant, forbidden: true},
		{name: "stranger's delivery failure", state: s, ev: undeliverable("mallory@evil.com", 1), sentinel: ErrNotParticipant, forbidden: true},
		{name: "duplicate reply, first answer wins", state: answered, ev: reply(a, `{"second":true}`, 2), sentinel: ErrDuplicate},
		{name: "duplicate as an error", state: answered, ev: replyErr(a, `{}`, 2), sentinel: ErrDuplicate},
		{name: "delivery failure after the answer", state: answered, ev: undeliverable(a, 2), sentinel: ErrDuplicate},
		{name: "timeout before the deadline", state: s, ev: timeout(10), sentinel: ErrEarlyTimeout},
		{name: "no response type", state: s, ev: func() Event { e := reply(a, `{}`, 1); e.ResponseType = ""; return e }(), code: amtp.CodeInvalidMessageFormat},
		{name: "result is not a reply", state: s, ev: func() Event { e := reply(a, `{}`, 1); e.ResponseType = amtp.ResponseWorkflowResult; return e }(), code: amtp.CodeInvalidMessageFormat},
		{name: "payload not JSON", state: s, ev: reply(a, `{`, 1), code: amtp.CodeInvalidMessageFormat},
		{name: "other workflow", state: s, ev: func() Event { e := reply(a, `{}`, 1); e.WorkflowID = "01H8X9Z2K3M4N5P6Q7R8S9T1AB"; return e }()},
		{name: "no time", state: s, ev: func() Event { e := reply(a, `{}`, 1); e.At = time.Time{}; return e }()},
		{name: "unknown kind", state: s, ev: Event{Kind: "poke", At: at(1)}},
		{name: "empty state", state: State{}, ev: reply(a, `{}`, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := json.Marshal(tc.state)
			require.NoError(t, err)
			next, acts, err := Apply(tc.state, tc.ev)
			require.Error(t, err)
			require.Equal(t, tc.state, next)
			require.Empty(t, acts)
			after, merr := json.Marshal(tc.state)
			require.NoError(t, merr)
			require.JSONEq(t, string(before), string(after), "the input state is not touched")
			if tc.sentinel != nil {
				require.ErrorIs(t, err, tc.sentinel)
			}
			ignored := errors.Is(tc.sentinel, ErrDuplicate) || errors.Is(tc.sentinel, ErrEarlyTimeout) || errors.Is(tc.sentinel, ErrFinished)
			require.Equal(t, ignored, errors.Is(err, ErrIgnored), "only harmless cases are ErrIgnored")
			e, isAMTP := amtp.AsError(err)
			if tc.forbidden {
				require.True(t, isAMTP)
				require.Equal(t, amtp.CodeForbidden, e.Code)
			}
			if tc.code != "" {
				require.True(t, isAMTP)
				require.Equal(t, tc.code, e.Code)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	seq := `{"type":"sequential","timeout":60,"sequence":["a@x.com","b@x.com","c@x.com"]}`
	cases := []struct {
		name  string
		coord string
		rcpts []string
		pre   []Event
		ev    Event
		end   map[string]ParticipantStatus
	}{
		{
			name:  "parallel: those still awaited time out",
			coord: `{"type":"parallel","timeout":60}`,
			rcpts: []string{a, b},
			pre:   []Event{reply(a, `{}`, 10)},
			ev:    timeout(60),
			end:   map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantTimedOut},
		},
		{
			name:  "sequential: the one asked times out, the rest were never asked",
			coord: seq,
			rcpts: []string{a, b, c},
			pre:   []Event{reply(a, `{}`, 10)},
			ev:    timeout(61),
			end:   map[string]ParticipantStatus{a: ParticipantCompleted, b: ParticipantTimedOut, c: ParticipantSkipped},
		},
		{
			name:  "a reply after the deadline times out instead of counting",
			coord: seq,
			rcpts: []string{a, b, c},
			ev:    reply(a, `{}`, 60),
			end:   map[string]ParticipantStatus{a: ParticipantTimedOut, b: ParticipantSkipped, c: ParticipantSkipped},
		},
		{
			name:  "no timeout given: seven days",
			coord: `{"type":"parallel"}`,
			rcpts: []string{a},
			ev:    timeout(amtp.MaxCoordinationTimeout),
			end:   map[string]ParticipantStatus{a: ParticipantTimedOut},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := mustStart(t, tc.rcpts, tc.coord)
			var err error
			for _, e := range tc.pre {
				s, _, err = Apply(s, e)
				require.NoError(t, err)
			}
			early, acts, err := Apply(s, Event{Kind: EventTimeout, At: s.Deadline.Add(-time.Millisecond)})
			require.ErrorIs(t, err, ErrEarlyTimeout)
			require.Equal(t, s, early)
			require.Empty(t, acts)

			s, acts, err = Apply(s, tc.ev)
			require.NoError(t, err)
			requireEnd(t, s, acts, StatusTimedOut)
			require.Equal(t, tc.end, statuses(s))

			_, acts, err = Apply(s, timeout(amtp.MaxCoordinationTimeout+1))
			require.ErrorIs(t, err, ErrFinished, "a second timer firing is ignored")
			require.Empty(t, acts)
		})
	}
}

func TestApplyDoesNotModifyItsInput(t *testing.T) {
	s, _ := mustStart(t, []string{approver, execute}, `{"type":"conditional","conditions":[{"if":"approver@mgr.com responds with ok = true","then":["exec@sys.com"]}]}`)
	snapshot, err := json.Marshal(s)
	require.NoError(t, err)
	next, _, err := Apply(s, reply(approver, `{"ok":true}`, 1))
	require.NoError(t, err)
	require.Equal(t, ParticipantCompleted, participant(t, next, approver).Status)
	again, err := json.Marshal(s)
	require.NoError(t, err)
	require.JSONEq(t, string(snapshot), string(again))
	require.Equal(t, ParticipantAwaiting, participant(t, s, approver).Status)
	require.Empty(t, s.Branches)
}

func TestApplyIsDeterministic(t *testing.T) {
	s, _ := mustStart(t, []string{a, b}, `{"type":"parallel"}`)
	e := reply(a, `{"x":1}`, 3)
	s1, a1, err1 := Apply(s, e)
	s2, a2, err2 := Apply(s, e)
	require.NoError(t, err1)
	require.NoError(t, err2)
	require.Equal(t, s1, s2)
	require.Equal(t, a1, a2)
}
