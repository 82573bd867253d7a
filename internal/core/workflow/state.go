package workflow

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Status is the state of a whole workflow.
type Status string

// Workflow statuses (PROTOCOL.md "Coordination").
const (
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusTimedOut   Status = "timed_out"
)

// Terminal reports whether nothing can change the workflow any more.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusTimedOut
}

// ParticipantStatus is where one participant stands.
type ParticipantStatus string

// Participant statuses.
const (
	// Pending: not sent the message yet (a later sequence member, a branch
	// not yet decided).
	ParticipantPending ParticipantStatus = "pending"
	// Awaiting: sent the message, no answer yet.
	ParticipantAwaiting ParticipantStatus = "awaiting"
	// Completed: answered workflow_response.
	ParticipantCompleted ParticipantStatus = "completed"
	// Failed: answered workflow_error, or could not be delivered to.
	ParticipantFailed ParticipantStatus = "failed"
	// Skipped: the workflow ended without needing this participant's answer.
	ParticipantSkipped ParticipantStatus = "skipped"
	// TimedOut: was still expected to answer when the deadline passed.
	ParticipantTimedOut ParticipantStatus = "timed_out"
)

// Participant is one address taking part in a workflow. Response and Error
// are stored in the form json.Marshal writes, so a stored State reads back
// byte for byte.
type Participant struct {
	Address     string            `json:"address"`
	Status      ParticipantStatus `json:"status"`
	Required    bool              `json:"required,omitempty"`
	Response    json.RawMessage   `json:"response,omitempty"`
	Error       json.RawMessage   `json:"error,omitempty"`
	ReplyID     string            `json:"reply_id,omitempty"` // message_id of the answer
	RespondedAt time.Time         `json:"responded_at,omitzero"`
}

// State is the whole of a workflow. It is a value: Apply never modifies the
// State it is given.
type State struct {
	WorkflowID    string        `json:"workflow_id"` // the coordination message's message_id
	Initiator     string        `json:"initiator"`
	Type          string        `json:"type"` // amtp.CoordinationParallel, …Sequential, …Conditional
	Status        Status        `json:"status"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	Deadline      time.Time     `json:"deadline"`
	Participants  []Participant `json:"participants"`
	StopOnFailure bool          `json:"stop_on_failure,omitempty"`
	Conditions    []Condition   `json:"conditions,omitempty"`
	// Step is the current sequence position (sequential) or condition
	// (conditional).
	Step int `json:"step,omitempty"`
	// Branches holds "then" or "else" for each condition decided so far.
	Branches []string `json:"branches,omitempty"`
	// Version grows by one with every change, for optimistic concurrency
	// in the store.
	Version int `json:"version"`
	// Driver is the driver's own bookkeeping (for instance the Step
	// Functions task tokens), kept here so that it is written in the same
	// conditional write as the state it belongs to. This package never
	// reads it and Apply carries it over unchanged.
	Driver json.RawMessage `json:"driver,omitempty"`
}

// Branch names recorded in State.Branches.
const (
	BranchThen = "then"
	BranchElse = "else"
)

// EventKind says what happened.
type EventKind string

// Event kinds.
const (
	EventReply          EventKind = "reply"
	EventTimeout        EventKind = "timeout"
	EventDeliveryFailed EventKind = "delivery_failed"
)

// Event is one thing that happened to a workflow.
type Event struct {
	Kind EventKind `json:"kind"`
	// WorkflowID, when set, must match the state: a guard against
	// applying an event to the wrong workflow.
	WorkflowID   string          `json:"workflow_id,omitempty"`
	From         string          `json:"from,omitempty"`          // the replying or undeliverable participant
	ResponseType string          `json:"response_type,omitempty"` // replies: workflow_response | workflow_error
	Payload      json.RawMessage `json:"payload,omitempty"`
	MessageID    string          `json:"message_id,omitempty"` // of the reply
	At           time.Time       `json:"at"`
}

// ReplyEvent is the Event for a reply message received at at.
func ReplyEvent(m *amtp.Message, at time.Time) Event {
	return Event{
		Kind:         EventReply,
		WorkflowID:   cmp.Or(m.WorkflowID, m.InReplyTo),
		From:         m.Sender,
		ResponseType: m.ResponseType,
		Payload:      m.Payload,
		MessageID:    m.MessageID,
		At:           at,
	}
}

// DeliveryFailedEvent is the Event for a permanent failure to deliver the
// coordination message to recipient. The error is recorded with the draft's
// §8.2.2 member names.
func DeliveryFailedEvent(workflowID, recipient string, code amtp.Code, reason string, at time.Time) Event {
	payload, _ := json.Marshal(map[string]string{"error_code": string(code), "error_message": reason}) // strings always marshal
	return Event{Kind: EventDeliveryFailed, WorkflowID: workflowID, From: recipient, Payload: payload, At: at}
}

// ActionKind says what the caller must do.
type ActionKind string

// Action kinds.
const (
	ActionSend            ActionKind = "send"
	ActionResult          ActionKind = "result"
	ActionScheduleTimeout ActionKind = "schedule_timeout"
	ActionCancelTimeout   ActionKind = "cancel_timeout"
)

// Action is one thing the caller must do after persisting the new State.
type Action struct {
	Kind   ActionKind `json:"kind"`
	To     []string   `json:"to,omitempty"`     // send: who gets the coordination message; result: the initiator
	At     time.Time  `json:"at,omitzero"`      // schedule_timeout: when to Apply an EventTimeout
	Result *View      `json:"result,omitempty"` // result: the payload of the workflow_result message
}

// Errors of Apply. The rejections also carry a 403 FORBIDDEN *amtp.Error for
// the HTTP answer; everything matching ErrIgnored is harmless and only worth
// a log line.
var (
	ErrNotParticipant = errors.New("not a participant of this workflow")
	ErrNotAsked       = errors.New("participant has not been sent the workflow message")

	ErrIgnored      = errors.New("event ignored")
	ErrDuplicate    = fmt.Errorf("%w: the participant has already answered", ErrIgnored)
	ErrFinished     = fmt.Errorf("%w: the workflow has already ended", ErrIgnored)
	ErrEarlyTimeout = fmt.Errorf("%w: the timeout came before the deadline", ErrIgnored)
)

// norm is how every time is stored: UTC, milliseconds, no monotonic
// reading, so that a State compares equal after a JSON round trip.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// clone copies what Apply changes, so the caller's State stays as it was.
func (s State) clone() State {
	s.Participants = append([]Participant(nil), s.Participants...)
	if s.Branches != nil {
		s.Branches = append([]string(nil), s.Branches...)
	}
	return s
}

// index finds a participant by address key; -1 when there is none.
func (s *State) index(key string) int {
	for i := range s.Participants {
		if addrKey(s.Participants[i].Address) == key {
			return i
		}
	}
	return -1
}

// addrKey is the comparison form of an address, "" for one that does not
// parse (a damaged stored State must not panic the driver).
func addrKey(addr string) string {
	a, err := amtp.ParseAddress(addr)
	if err != nil {
		return ""
	}
	return a.Key()
}
