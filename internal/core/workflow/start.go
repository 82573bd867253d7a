package workflow

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// maxConditions bounds the conditions of one workflow. Every condition names
// a recipient, and there are at most that many of those.
const maxConditions = amtp.DefaultMaxRecipients

// Start validates a coordinated message and returns the workflow's first
// State and Actions. Anything wrong with the coordination is an *amtp.Error
// (400 INVALID_MESSAGE_FORMAT, INVALID_RECIPIENT or COORDINATION_FAILED)
// with details.field, so the accept path can answer it as it is. Start is
// cheap and pure: the accept path may call it once to validate and again to
// begin.
func Start(msg *amtp.Message, now time.Time) (State, []Action, error) {
	if msg == nil {
		return State{}, nil, errors.New("workflow: start: no message")
	}
	if now.IsZero() {
		return State{}, nil, errors.New("workflow: start: no time given")
	}
	if len(msg.Coordination) == 0 {
		return State{}, nil, amtp.FieldError("coordination", "the message has no coordination")
	}
	if !amtp.ValidMessageID(msg.MessageID) {
		return State{}, nil, amtp.FieldError("message_id", "a coordinated message needs a message_id: it is the workflow id")
	}
	initiator, err := amtp.ParseAddress(msg.Sender)
	if err != nil {
		return State{}, nil, amtp.FieldError("sender", "sender is not a valid address")
	}
	c, err := amtp.ParseCoordination(msg.Coordination)
	if err != nil {
		return State{}, nil, fmt.Errorf("workflow %s: %w", msg.MessageID, err)
	}
	rcpts, err := newRecipientSet(msg.Recipients)
	if err != nil {
		return State{}, nil, fmt.Errorf("workflow %s: %w", msg.MessageID, err)
	}

	now = norm(now)
	timeout := c.Timeout
	if timeout == 0 {
		timeout = amtp.MaxCoordinationTimeout
	}
	s := State{
		WorkflowID: msg.MessageID,
		Initiator:  initiator.String(),
		Type:       c.Type,
		Status:     StatusInProgress,
		CreatedAt:  now,
		UpdatedAt:  now,
		Deadline:   now.Add(time.Duration(timeout) * time.Second),
		Version:    1,
	}
	switch c.Type {
	case amtp.CoordinationParallel:
		err = compileParallel(&s, c, rcpts)
	case amtp.CoordinationSequential:
		err = compileSequential(&s, c, rcpts)
	case amtp.CoordinationConditional:
		err = compileConditional(&s, c, rcpts)
	default:
		err = amtp.FieldError("coordination.type", "coordination type must be parallel, sequential or conditional")
	}
	if err != nil {
		return State{}, nil, fmt.Errorf("workflow %s: %w", msg.MessageID, err)
	}

	// The timer is armed before anything goes out, so a driver that performs
	// actions in order never has a participant asked without a deadline.
	actions := []Action{{Kind: ActionScheduleTimeout, At: s.Deadline}}
	return s, append(actions, s.progress()...), nil
}

// recipientSet is the message's recipients, by address key.
type recipientSet struct {
	list  []amtp.Address
	byKey map[string]string // key → the recipient as the message spells it
}

func newRecipientSet(recipients []string) (recipientSet, error) {
	if len(recipients) == 0 {
		return recipientSet{}, amtp.FieldError("recipients", "recipients must not be empty")
	}
	rs := recipientSet{byKey: make(map[string]string, len(recipients))}
	for i, r := range recipients {
		a, err := amtp.ParseAddress(r)
		if err != nil {
			return recipientSet{}, amtp.Errorf(amtp.CodeInvalidRecipient, "recipients[%d] is not a valid address", i).WithDetail("field", fmt.Sprintf("recipients[%d]", i))
		}
		if _, dup := rs.byKey[a.Key()]; dup {
			continue
		}
		rs.byKey[a.Key()] = a.String()
		rs.list = append(rs.list, a)
	}
	return rs, nil
}

// resolve maps an address named by the coordination to the recipient it
// stands for. ParseCoordination has checked the syntax already.
func (rs recipientSet) resolve(addr, field string) (string, error) {
	a, err := amtp.ParseAddress(addr)
	if err != nil {
		return "", amtp.Errorf(amtp.CodeInvalidRecipient, "%s is not a valid address", field).WithDetail("field", field)
	}
	r, ok := rs.byKey[a.Key()]
	if !ok {
		return "", coordErr(field, "%s is not a recipient of the message; every participant must be one", a)
	}
	return r, nil
}

// requireAllNamed refuses recipients the coordination never mentions.
func (rs recipientSet) requireAllNamed(named map[string]bool, what string) error {
	for i, a := range rs.list {
		if !named[a.Key()] {
			return coordErr(fmt.Sprintf("recipients[%d]", i), "%s is a recipient but is not named by %s, so it would never be asked", a, what)
		}
	}
	return nil
}

func coordErr(field, format string, args ...any) *amtp.Error {
	return amtp.Errorf(amtp.CodeCoordinationFailed, format, args...).WithDetail("field", field)
}

// refuseForeign rejects members that belong to another coordination type:
// a client that sets them expects an effect it would not get.
func refuseForeign(c *amtp.Coordination) error {
	type member struct {
		field string
		set   bool
		only  string
	}
	members := []member{
		{"coordination.required_responses", len(c.RequiredResponses) > 0, amtp.CoordinationParallel},
		{"coordination.optional_responses", len(c.OptionalResponses) > 0, amtp.CoordinationParallel},
		{"coordination.sequence", len(c.Sequence) > 0, amtp.CoordinationSequential},
		{"coordination.stop_on_failure", c.StopOnFailure, amtp.CoordinationSequential},
		{"coordination.conditions", len(c.Conditions) > 0, amtp.CoordinationConditional},
	}
	for _, m := range members {
		if m.set && m.only != c.Type {
			return coordErr(m.field, "%s applies only to %s workflows, not %s", m.field, m.only, c.Type)
		}
	}
	return nil
}

func compileParallel(s *State, c *amtp.Coordination, rs recipientSet) error {
	if err := refuseForeign(c); err != nil {
		return err
	}
	required := make(map[string]bool, len(c.RequiredResponses))
	for i, addr := range c.RequiredResponses {
		r, err := rs.resolve(addr, fmt.Sprintf("coordination.required_responses[%d]", i))
		if err != nil {
			return err
		}
		required[addrKey(r)] = true
	}
	optional := make(map[string]bool, len(c.OptionalResponses))
	for i, addr := range c.OptionalResponses {
		field := fmt.Sprintf("coordination.optional_responses[%d]", i)
		r, err := rs.resolve(addr, field)
		if err != nil {
			return err
		}
		if required[addrKey(r)] {
			return coordErr(field, "%s is listed as both required and optional", r)
		}
		optional[addrKey(r)] = true
	}
	anyRequired := false
	for _, a := range rs.list {
		req := !optional[a.Key()]
		if len(required) > 0 {
			req = required[a.Key()]
		}
		anyRequired = anyRequired || req
		s.Participants = append(s.Participants, Participant{Address: rs.byKey[a.Key()], Status: ParticipantPending, Required: req})
	}
	if !anyRequired {
		return coordErr("coordination.optional_responses", "every recipient is optional: at least one must be required, or the workflow could only time out")
	}
	return nil
}

func compileSequential(s *State, c *amtp.Coordination, rs recipientSet) error {
	if err := refuseForeign(c); err != nil {
		return err
	}
	named := make(map[string]bool, len(c.Sequence))
	for i, addr := range c.Sequence {
		field := fmt.Sprintf("coordination.sequence[%d]", i)
		r, err := rs.resolve(addr, field)
		if err != nil {
			return err
		}
		if named[addrKey(r)] {
			return coordErr(field, "%s appears more than once in the sequence", r)
		}
		named[addrKey(r)] = true
		s.Participants = append(s.Participants, Participant{Address: r, Status: ParticipantPending, Required: true})
	}
	s.StopOnFailure = c.StopOnFailure
	return rs.requireAllNamed(named, "the sequence")
}

func compileConditional(s *State, c *amtp.Coordination, rs recipientSet) error {
	if err := refuseForeign(c); err != nil {
		return err
	}
	if len(c.Conditions) > maxConditions {
		return amtp.FieldError("coordination.conditions", "at most %d conditions", maxConditions)
	}
	named := make(map[string]bool)
	add := func(r string) {
		if !named[addrKey(r)] {
			named[addrKey(r)] = true
			s.Participants = append(s.Participants, Participant{Address: r, Status: ParticipantPending, Required: true})
		}
	}
	for i, cond := range c.Conditions {
		base := fmt.Sprintf("coordination.conditions[%d]", i)
		pred, err := parseIf(cond.If)
		if err != nil {
			return conditionFieldError(base+".if", err)
		}
		participantField := base + ".if"
		if len(cond.If) > 0 && cond.If[0] == '{' {
			participantField += ".participant"
		}
		r, err := rs.resolve(pred.Participant, participantField)
		if err != nil {
			return err
		}
		add(r)
		pred.Participant = r
		compiled := Condition{If: pred}
		for _, br := range []struct {
			name string
			in   []string
			out  *[]string
		}{{BranchThen, cond.Then, &compiled.Then}, {BranchElse, cond.Else, &compiled.Else}} {
			inBranch := make(map[string]bool, len(br.in))
			for j, addr := range br.in {
				r, err := rs.resolve(addr, fmt.Sprintf("%s.%s[%d]", base, br.name, j))
				if err != nil {
					return err
				}
				add(r)
				// Folded like recipients are: a repeat changes nothing.
				if !inBranch[addrKey(r)] {
					inBranch[addrKey(r)] = true
					*br.out = append(*br.out, r)
				}
			}
		}
		s.Conditions = append(s.Conditions, compiled)
	}
	return rs.requireAllNamed(named, "any condition")
}

// conditionFieldError turns a condition parse error into the 400 the
// client sees, pointing at the member at fault.
func conditionFieldError(field string, err error) error {
	var ce *conditionError
	if !errors.As(err, &ce) {
		return amtp.FieldError(field, "%s", err.Error())
	}
	if ce.member != "" {
		field += "." + ce.member
	}
	return amtp.Errorf(ce.code, "%s: %s", field, ce.msg).WithDetail("field", field)
}

// Addresses lists every address a sequential or conditional coordination
// names (sequence, condition participants, then and else), in order of
// first mention. The draft's examples do not repeat them in recipients;
// the gateway adds them there, so that they are authorised (relay rule,
// policy, rate limits) exactly as recipients are. A parallel coordination
// names only recipients. Malformed conditions are skipped here: Start
// reports them.
func Addresses(c *amtp.Coordination) []string {
	var out []string
	switch c.Type {
	case amtp.CoordinationSequential:
		out = append(out, c.Sequence...)
	case amtp.CoordinationConditional:
		for _, cond := range c.Conditions {
			if pred, err := parseIf(cond.If); err == nil {
				out = append(out, pred.Participant)
			}
			out = append(out, cond.Then...)
			out = append(out, cond.Else...)
		}
	}
	return out
}
