package sqsq

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// FormatVersion is the "v" of every body this package writes. A reader
// refuses other versions rather than guess at their meaning, so a newer
// writer's records end up in the dead-letter queue instead of being
// delivered wrongly.
const FormatVersion = 1

// ErrMalformed marks a body that is not a task (or dead-letter record) of
// a version this package reads: a poison record.
var ErrMalformed = errors.New("malformed queue record")

// taskBody is the delivery queue's message body: the task's own JSON plus
// what only this adapter needs.
type taskBody struct {
	V int `json:"v"`
	gateway.Task
	// Due is when a retried copy may be received. It is separate from
	// NotBefore, which bounds only the first attempt: the Immediate Path
	// sets NotBefore, and its retries must not wait for it.
	Due time.Time `json:"due,omitzero"`
	// Early says the copy was sent with the longest delay SQS allows, which
	// fell short of its due time: its first receive is a hold-back, not a
	// delivery, and must not count as an attempt.
	Early bool `json:"early,omitempty"`
}

// due is when the copy may be handed to a worker.
func (b *taskBody) due() time.Time {
	if !b.Due.IsZero() {
		return b.Due
	}
	return b.NotBefore
}

// deadLetterBody is what DeadLetter writes to the dead-letter queue.
type deadLetterBody struct {
	V          int                 `json:"v"`
	DeadLetter *gateway.DeadLetter `json:"dead_letter"`
	Task       *gateway.Task       `json:"task"`
}

func parseTaskBody(body string) (taskBody, error) {
	var b taskBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return b, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if b.V != FormatVersion {
		return b, fmt.Errorf("%w: format version %d, want %d", ErrMalformed, b.V, FormatVersion)
	}
	if b.ID == "" || b.MessageID == "" || b.Kind == "" {
		return b, fmt.Errorf("%w: task without id, message_id or kind", ErrMalformed)
	}
	return b, nil
}

// ParseTask reads a delivery queue body as this package writes it. The
// task's Attempt is the one in the body: it does not know how often SQS
// handed this copy out (Queue.Admit does), and Lease is left empty.
func ParseTask(body string) (gateway.Task, error) {
	b, err := parseTaskBody(body)
	if err != nil {
		return gateway.Task{}, err
	}
	return b.Task, nil
}

// ParseDeadLetterRecord reads a dead-letter queue body. A record that
// DeadLetter wrote gives the task and its DeadLetter; a task body that
// SQS's redrive policy moved there (a task that was handed out
// maxReceiveCount times without being settled) gives the task and a nil
// DeadLetter: nobody has settled it, so the caller must. Anything else is
// ErrMalformed.
func ParseDeadLetterRecord(body string) (gateway.Task, *gateway.DeadLetter, error) {
	var probe struct {
		V          int             `json:"v"`
		DeadLetter json.RawMessage `json:"dead_letter"`
	}
	if err := json.Unmarshal([]byte(body), &probe); err != nil {
		return gateway.Task{}, nil, fmt.Errorf("dead-letter record: %w: %w", ErrMalformed, err)
	}
	if len(probe.DeadLetter) == 0 {
		t, err := ParseTask(body)
		if err != nil {
			return gateway.Task{}, nil, fmt.Errorf("dead-letter record: %w", err)
		}
		return t, nil, nil
	}
	if probe.V != FormatVersion {
		return gateway.Task{}, nil, fmt.Errorf("dead-letter record: %w: format version %d, want %d", ErrMalformed, probe.V, FormatVersion)
	}
	var rec deadLetterBody
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		return gateway.Task{}, nil, fmt.Errorf("dead-letter record: %w: %w", ErrMalformed, err)
	}
	if rec.DeadLetter == nil || rec.Task == nil || rec.Task.ID == "" {
		return gateway.Task{}, nil, fmt.Errorf("dead-letter record: %w: no task or dead_letter", ErrMalformed)
	}
	return *rec.Task, rec.DeadLetter, nil
}

func encodeDeadLetter(t gateway.Task, d gateway.DeadLetter) (string, error) {
	t.Lease = ""
	b, err := json.Marshal(deadLetterBody{V: FormatVersion, DeadLetter: &d, Task: &t})
	if err != nil {
		return "", fmt.Errorf("encode dead-letter record of %s: %w", t.ID, err)
	}
	return string(b), nil
}
