package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Apply returns the State after e and the Actions the caller must perform.
// It never modifies s. When it returns an error the State is s unchanged and
// there are no actions; errors.Is(err, ErrIgnored) marks the harmless cases.
func Apply(s State, e Event) (State, []Action, error) {
	if s.Status == "" || s.WorkflowID == "" {
		return s, nil, errors.New("workflow: apply: empty state")
	}
	if e.WorkflowID != "" && e.WorkflowID != s.WorkflowID {
		return s, nil, fmt.Errorf("workflow %s: event is for workflow %s", s.WorkflowID, e.WorkflowID)
	}
	if e.At.IsZero() {
		return s, nil, fmt.Errorf("workflow %s: event has no time", s.WorkflowID)
	}
	at := norm(e.At)

	idx := -1
	switch e.Kind {
	case EventTimeout:
	case EventReply, EventDeliveryFailed:
		if e.Kind == EventReply && e.ResponseType != amtp.ResponseWorkflowResponse && e.ResponseType != amtp.ResponseWorkflowError {
			return s, nil, fmt.Errorf("workflow %s: %w", s.WorkflowID,
				amtp.FieldError("response_type", "a reply to a workflow needs response_type workflow_response or workflow_error"))
		}
		if len(e.Payload) > 0 && !json.Valid(e.Payload) {
			return s, nil, fmt.Errorf("workflow %s: %w", s.WorkflowID, amtp.FieldError("payload", "payload is not valid JSON"))
		}
		// Strangers are refused even after the end: whether an address may
		// answer does not depend on timing.
		if a, err := amtp.ParseAddress(e.From); err == nil {
			idx = s.index(a.Key())
		}
		if idx < 0 {
			return s, nil, forbidden(ErrNotParticipant, "%s is not a participant of workflow %s", e.From, s.WorkflowID)
		}
	default:
		return s, nil, fmt.Errorf("workflow %s: unknown event kind %q", s.WorkflowID, e.Kind)
	}

	if s.Status.Terminal() {
		return s, nil, fmt.Errorf("workflow %s: %s: %w", s.WorkflowID, describe(e), ErrFinished)
	}
	if !at.Before(s.Deadline) {
		n := s.clone()
		n.touch(at)
		return n, n.finish(StatusTimedOut), nil
	}
	if e.Kind == EventTimeout {
		return s, nil, fmt.Errorf("workflow %s: timeout at %s, deadline %s: %w", s.WorkflowID, amtp.FormatTime(at), amtp.FormatTime(s.Deadline), ErrEarlyTimeout)
	}

	switch p := s.Participants[idx]; p.Status {
	case ParticipantAwaiting:
	case ParticipantCompleted, ParticipantFailed:
		return s, nil, fmt.Errorf("workflow %s: %s: %w", s.WorkflowID, describe(e), ErrDuplicate)
	default:
		return s, nil, forbidden(ErrNotAsked, "%s has not been sent the message of workflow %s", p.Address, s.WorkflowID)
	}

	n := s.clone()
	p := &n.Participants[idx]
	payload := storable(e.Payload)
	if e.Kind == EventReply && e.ResponseType == amtp.ResponseWorkflowResponse {
		p.Status, p.Response = ParticipantCompleted, payload
	} else {
		p.Status, p.Error = ParticipantFailed, payload
	}
	p.ReplyID = e.MessageID
	p.RespondedAt = at
	n.touch(at)
	return n, n.progress(), nil
}

// describe names an event in log-friendly words.
func describe(e Event) string {
	if e.Kind == EventTimeout {
		return "timeout"
	}
	return fmt.Sprintf("%s from %s", e.Kind, e.From)
}

// forbidden is a rejection both matchable as sentinel and answerable as a
// 403 by way of amtp.AsError.
func forbidden(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %w", sentinel, amtp.Errorf(amtp.CodeForbidden, format, args...))
}

// storable is payload as json.Marshal writes a RawMessage (compact, HTML
// characters escaped): stored like this, a State survives any JSON round
// trip unchanged, and a result message built before or after storage is the
// same message.
func storable(payload json.RawMessage) json.RawMessage {
	if len(payload) == 0 {
		return nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, payload); err != nil {
		return nil // unreachable: Apply checked json.Valid
	}
	var out bytes.Buffer
	json.HTMLEscape(&out, compact.Bytes())
	return out.Bytes()
}

// touch records a change. UpdatedAt never goes back: events may carry
// slightly skewed clocks of different workers.
func (s *State) touch(at time.Time) {
	if at.After(s.UpdatedAt) {
		s.UpdatedAt = at
	}
	s.Version++
}

// progress moves the workflow as far as the answers so far allow and
// returns the resulting actions: whom to ask now, or the end.
func (s *State) progress() []Action {
	var ask []string
	var end Status
	switch s.Type {
	case amtp.CoordinationParallel:
		ask, end = s.progressParallel()
	case amtp.CoordinationSequential:
		ask, end = s.progressSequential()
	case amtp.CoordinationConditional:
		ask, end = s.progressConditional()
	default:
		// A damaged stored State: failing it tells the initiator, where
		// leaving it open would only wait for the deadline.
		end = StatusFailed
	}
	if end != "" {
		return s.finish(end)
	}
	if len(ask) == 0 {
		return nil
	}
	return []Action{{Kind: ActionSend, To: ask}}
}

// askIfPending marks p as sent to and reports whether it has to be sent now.
func askIfPending(p *Participant) bool {
	if p.Status != ParticipantPending {
		return false
	}
	p.Status = ParticipantAwaiting
	return true
}

func (s *State) progressParallel() ([]string, Status) {
	var ask []string
	for i := range s.Participants {
		if askIfPending(&s.Participants[i]) {
			ask = append(ask, s.Participants[i].Address)
		}
	}
	done := true
	for _, p := range s.Participants {
		if !p.Required {
			continue
		}
		switch p.Status {
		case ParticipantFailed:
			return nil, StatusFailed
		case ParticipantCompleted:
		default:
			done = false
		}
	}
	if done {
		return nil, StatusCompleted
	}
	return ask, ""
}

func (s *State) progressSequential() ([]string, Status) {
	for s.Step < len(s.Participants) {
		p := &s.Participants[s.Step]
		if askIfPending(p) {
			return []string{p.Address}, ""
		}
		switch p.Status {
		case ParticipantAwaiting:
			return nil, ""
		case ParticipantFailed:
			if s.StopOnFailure {
				return nil, StatusFailed
			}
		}
		s.Step++
	}
	return nil, StatusCompleted
}

func (s *State) progressConditional() ([]string, Status) {
	var ask []string
	// waitFor asks whoever in addrs has not been asked and reports whether
	// the step must wait, or that one of them failed.
	waitFor := func(addrs ...string) (wait, failed bool) {
		for _, addr := range addrs {
			i := s.index(addrKey(addr))
			if i < 0 {
				return false, true // a damaged State: see progress
			}
			p := &s.Participants[i]
			if askIfPending(p) {
				ask = append(ask, p.Address)
			}
			switch p.Status {
			case ParticipantAwaiting:
				wait = true
			case ParticipantFailed, ParticipantTimedOut, ParticipantSkipped:
				return false, true
			}
		}
		return wait, false
	}
	for s.Step < len(s.Conditions) {
		c := s.Conditions[s.Step]
		wait, failed := waitFor(c.If.Participant)
		if failed {
			return nil, StatusFailed
		}
		if wait {
			return ask, ""
		}
		if len(s.Branches) == s.Step {
			answer := s.Participants[s.index(addrKey(c.If.Participant))].Response
			branch := BranchElse
			if c.If.Eval(answer) {
				branch = BranchThen
			}
			s.Branches = append(s.Branches, branch)
		}
		targets := c.Else
		if s.Branches[s.Step] == BranchThen {
			targets = c.Then
		}
		wait, failed = waitFor(targets...)
		if failed {
			return nil, StatusFailed
		}
		if wait {
			return ask, ""
		}
		s.Step++
	}
	return nil, StatusCompleted
}

// finish ends the workflow and returns the one result and the one timer
// cancellation that every end produces.
func (s *State) finish(status Status) []Action {
	s.Status = status
	for i := range s.Participants {
		p := &s.Participants[i]
		switch {
		case p.Status == ParticipantAwaiting && status == StatusTimedOut:
			p.Status = ParticipantTimedOut
		case p.Status == ParticipantAwaiting, p.Status == ParticipantPending:
			p.Status = ParticipantSkipped
		}
	}
	v := s.View()
	return []Action{
		{Kind: ActionResult, To: []string{s.Initiator}, Result: &v},
		{Kind: ActionCancelTimeout},
	}
}
