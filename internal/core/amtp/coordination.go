package amtp

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Coordination types (draft §7.1).
const (
	CoordinationParallel    = "parallel"
	CoordinationSequential  = "sequential"
	CoordinationConditional = "conditional"
)

// MaxCoordinationTimeout bounds a workflow's life (seconds): the delivery
// retry window, so that no workflow outlives the guarantee that carries it.
const MaxCoordinationTimeout = 7 * 24 * 3600

// Coordination is the parsed view of a message's coordination member. The
// message keeps the raw JSON; this view is what the gateway reasons about.
type Coordination struct {
	Type              string      `json:"type"`
	Timeout           int64       `json:"timeout,omitempty"`
	RequiredResponses []string    `json:"required_responses,omitempty"`
	OptionalResponses []string    `json:"optional_responses,omitempty"`
	Sequence          []string    `json:"sequence,omitempty"`
	StopOnFailure     bool        `json:"stop_on_failure,omitempty"`
	Conditions        []Condition `json:"conditions,omitempty"`
}

// Condition is one branch rule of a conditional workflow. If is either the
// draft's text form or the structured object form; the workflow package
// interprets it.
type Condition struct {
	If   json.RawMessage `json:"if"`
	Then []string        `json:"then,omitempty"`
	Else []string        `json:"else,omitempty"`
}

// ParseCoordination decodes and structurally validates a coordination
// member: known type, positive bounded timeout, well-formed addresses.
// Members it does not know are tolerated (a newer peer may add some).
func ParseCoordination(raw json.RawMessage) (*Coordination, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, FieldError("coordination", "coordination must be an object")
	}
	var c Coordination
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&c); err != nil {
		return nil, FieldError("coordination", "coordination is malformed: %s", jsonErrText(err))
	}
	switch c.Type {
	case CoordinationParallel, CoordinationSequential, CoordinationConditional:
	default:
		return nil, FieldError("coordination.type", "coordination type must be parallel, sequential or conditional")
	}
	if c.Timeout < 0 || c.Timeout > MaxCoordinationTimeout {
		return nil, FieldError("coordination.timeout", "coordination timeout must be between 1 and %d seconds", MaxCoordinationTimeout)
	}
	lists := []struct {
		name string
		list []string
	}{
		{"coordination.required_responses", c.RequiredResponses},
		{"coordination.optional_responses", c.OptionalResponses},
		{"coordination.sequence", c.Sequence},
	}
	for i, cond := range c.Conditions {
		lists = append(lists,
			struct {
				name string
				list []string
			}{fmt.Sprintf("coordination.conditions[%d].then", i), cond.Then},
			struct {
				name string
				list []string
			}{fmt.Sprintf("coordination.conditions[%d].else", i), cond.Else})
		if len(cond.If) == 0 || isJSONNull(cond.If) {
			return nil, FieldError(fmt.Sprintf("coordination.conditions[%d].if", i), "condition needs an if")
		}
	}
	for _, l := range lists {
		if len(l.list) > DefaultMaxRecipients {
			return nil, FieldError(l.name, "at most %d addresses", DefaultMaxRecipients)
		}
		for j, a := range l.list {
			if _, err := ParseAddress(a); err != nil {
				return nil, Errorf(CodeInvalidRecipient, "%s[%d] is not a valid address", l.name, j).WithDetail("field", fmt.Sprintf("%s[%d]", l.name, j))
			}
		}
	}
	if c.Type == CoordinationSequential && len(c.Sequence) == 0 {
		return nil, FieldError("coordination.sequence", "a sequential workflow needs a sequence")
	}
	if c.Type == CoordinationConditional && len(c.Conditions) == 0 {
		return nil, FieldError("coordination.conditions", "a conditional workflow needs conditions")
	}
	return &c, nil
}
