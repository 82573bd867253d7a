package dynamo

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The tasks of a keyed acceptance ride on its message item (aMsgTasks), so
// that a retry which finds the acceptance unfinished can enqueue exactly
// them. They used to be on the idempotency record, where a fan-out to 100
// made every submission of its sender write some 27 KB into one partition;
// on the message item they cost one message's partition a few bytes a
// task. Each task keeps only what the message does not already say: a
// local task to one of the message's recipients, created when the message
// was accepted, is {"x":<position + 1>}.
type storedTask struct {
	ID         *string  `json:"i,omitempty"` // when not TaskID(message, lower(recipient))
	MessageID  *string  `json:"m,omitempty"` // when not the message's id
	Kind       *string  `json:"k,omitempty"` // when not local
	To         int      `json:"x,omitempty"` // 1 + the position in the message's recipients of the task's only recipient
	Recipients []string `json:"r,omitempty"` // otherwise
	Domain     *string  `json:"d,omitempty"` // when not the recipient's domain (remote) or none (other kinds)
	Attempt    int      `json:"a,omitempty"`
	// Created is CreatedAt as nanoseconds after the message's accepted_at,
	// CreatedAbs the time itself when that is not exact.
	Created    int64  `json:"c,omitempty"`
	CreatedAbs string `json:"ca,omitempty"`
	// After is NotBefore as nanoseconds after CreatedAt, NotBefore the
	// time itself when that is not exact; neither when it is zero.
	After     *int64 `json:"n,omitempty"`
	NotBefore string `json:"na,omitempty"`
	Token     string `json:"t,omitempty"`
	Round     int    `json:"o,omitempty"`
}

// maxStoredTasks bounds the tasks one message item may name: a message
// has at most a few hundred recipients, and a task at least one.
const maxStoredTasks = 10000

// unless is &v when v differs from what the decoder assumes, else nil.
func unless(v, assumed string) *string {
	if v == assumed {
		return nil
	}
	return &v
}

func taskDefaults(t gateway.Task, id string) (taskID, domain string) {
	if len(t.Recipients) == 1 {
		taskID = gateway.TaskID(id, strings.ToLower(t.Recipients[0]))
		if t.Kind == gateway.TaskRemote {
			_, domain, _ = strings.Cut(t.Recipients[0], "@")
		}
	}
	return taskID, domain
}

// tasksAttr encodes the tasks of the message id, with recipients to, accepted at.
func tasksAttr(tasks []gateway.Task, id string, to []string, at time.Time) (string, error) {
	pos := make(map[string]int, len(to))
	for i, r := range to {
		if _, ok := pos[r]; !ok {
			pos[r] = i + 1
		}
	}
	out := make([]storedTask, len(tasks))
	for i, t := range tasks {
		taskID, domain := taskDefaults(t, id)
		s := storedTask{
			ID: unless(t.ID, taskID), MessageID: unless(t.MessageID, id), Kind: unless(string(t.Kind), string(gateway.TaskLocal)),
			Domain: unless(t.Domain, domain), Attempt: t.Attempt, Token: t.Token, Round: t.Round,
		}
		if len(t.Recipients) == 1 && pos[t.Recipients[0]] > 0 {
			s.To = pos[t.Recipients[0]]
		} else {
			s.Recipients = t.Recipients
		}
		var err error
		if d := t.CreatedAt.Sub(at); at.Add(d).Equal(t.CreatedAt) {
			s.Created = int64(d)
		} else if s.CreatedAbs, err = textTime(t.CreatedAt); err != nil {
			return "", fmt.Errorf("encode tasks: task %s: %w", t.ID, err)
		}
		if !t.NotBefore.IsZero() {
			if d := t.NotBefore.Sub(t.CreatedAt); t.CreatedAt.Add(d).Equal(t.NotBefore) {
				n := int64(d)
				s.After = &n
			} else if s.NotBefore, err = textTime(t.NotBefore); err != nil {
				return "", fmt.Errorf("encode tasks: task %s: %w", t.ID, err)
			}
		}
		out[i] = s
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encode tasks: %w", err)
	}
	return string(b), nil
}

// textTime is t as JSON would have it, refusing what JSON refuses (years
// past 9999), so that a task the queue could not encode is not stored.
func textTime(t time.Time) (string, error) {
	b, err := t.MarshalText()
	return string(b), err
}

// decodeTasks reads the tasks a message item carries (none when it has
// no aMsgTasks).
func decodeTasks(id string, msg item) ([]gateway.Task, error) {
	raw := getStr(msg, aMsgTasks)
	if raw == "" {
		return nil, nil
	}
	var stored []storedTask
	if err := json.Unmarshal([]byte(raw), &stored); err != nil {
		return nil, fmt.Errorf("tasks of message %s: %w", id, err)
	}
	if len(stored) > maxStoredTasks {
		return nil, fmt.Errorf("tasks of message %s: %d, over %d", id, len(stored), maxStoredTasks)
	}
	to := getStrList(msg, aTo)
	at, err := getTime(msg, aAt)
	if err != nil {
		return nil, fmt.Errorf("tasks of message %s: %w", id, err)
	}
	out := make([]gateway.Task, len(stored))
	for i, s := range stored {
		if out[i], err = s.task(id, to, at); err != nil {
			return nil, fmt.Errorf("task %d of message %s: %w", i, id, err)
		}
	}
	return out, nil
}

func (s storedTask) task(id string, to []string, at time.Time) (gateway.Task, error) {
	t := gateway.Task{MessageID: id, Kind: gateway.TaskLocal, Recipients: s.Recipients, Attempt: s.Attempt, Token: s.Token, Round: s.Round}
	if s.To > 0 {
		if s.To > len(to) {
			return t, fmt.Errorf("recipient %d of %d", s.To, len(to))
		}
		t.Recipients = []string{to[s.To-1]}
	}
	if s.MessageID != nil {
		t.MessageID = *s.MessageID
	}
	if s.Kind != nil {
		t.Kind = gateway.TaskKind(*s.Kind)
	}
	t.ID, t.Domain = taskDefaults(t, id)
	if s.ID != nil {
		t.ID = *s.ID
	}
	if s.Domain != nil {
		t.Domain = *s.Domain
	}
	var err error
	t.CreatedAt = at.Add(time.Duration(s.Created))
	if s.CreatedAbs != "" {
		if t.CreatedAt, err = time.Parse(time.RFC3339Nano, s.CreatedAbs); err != nil {
			return t, fmt.Errorf("created_at: %w", err)
		}
	}
	switch {
	case s.After != nil:
		t.NotBefore = t.CreatedAt.Add(time.Duration(*s.After))
	case s.NotBefore != "":
		if t.NotBefore, err = time.Parse(time.RFC3339Nano, s.NotBefore); err != nil {
			return t, fmt.Errorf("not_before: %w", err)
		}
	}
	return t, nil
}
