package gateway

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// DeadLetterStore keeps the dead-letter records (draft §8.2.1) for
// operators: the embedded store writes them with its queue's DeadLetter,
// the AWS store when the dead-letter queue's consumer settles a record.
// Records are ordered by DLQTimestamp, then task id, oldest first.
type DeadLetterStore interface {
	// ListDeadLetters pages through the records q selects. Like
	// ListMessages it may return a short (even empty) page with a cursor
	// when the filters are selective: only an empty cursor means the end.
	// Every record returned has its ID set.
	ListDeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, string, error)
	// GetDeadLetter returns the record id names (DeadLetterID), with its
	// ID set; ErrNotFound when there is none.
	GetDeadLetter(ctx context.Context, id string) (DeadLetter, error)
	// RemoveDeadLetter deletes the record; ErrNotFound when there is none.
	RemoveDeadLetter(ctx context.Context, id string) error
}

// DeadLetterQuery selects dead letters. Empty fields do not filter.
type DeadLetterQuery struct {
	Recipient string    // one of the record's recipients (any case)
	Domain    string    // the domain of one of its recipients (any case)
	Code      string    // its failure_reason, an AMTP error code (any case)
	Since     time.Time // dead-lettered at or after
	Until     time.Time // dead-lettered before
	Limit     int       // page size; stores apply PageLimit
	Cursor    string    // opaque, from a previous page
}

// Matches reports whether d is selected by q's filters (not its times,
// which stores apply to their keys).
func (q DeadLetterQuery) Matches(d DeadLetter) bool {
	if q.Code != "" && !strings.EqualFold(q.Code, d.FailureReason) {
		return false
	}
	if q.Recipient == "" && q.Domain == "" {
		return true
	}
	for _, r := range d.Recipients {
		_, dom, _ := strings.Cut(r, "@")
		if (q.Recipient == "" || strings.EqualFold(q.Recipient, r)) && (q.Domain == "" || strings.EqualFold(q.Domain, dom)) {
			return true
		}
	}
	return false
}

// DeadLetterID is the id of the record dead-lettered at `at` for taskID:
// base64url of the time's Unix nanoseconds (8 bytes, big-endian) and the
// task id. Both stores key records by the same pair, so the id finds a
// record without an index.
func DeadLetterID(at time.Time, taskID string) string {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(taskID)), uint64(at.UnixNano()))
	return base64.RawURLEncoding.EncodeToString(append(b, taskID...))
}

// ParseDeadLetterID splits an id of DeadLetterID; ErrNotFound for anything
// else, since no record can have it.
func ParseDeadLetterID(id string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) <= 8 || len(b) > 8+maxTaskIDBytes {
		return time.Time{}, "", fmt.Errorf("dead letter %q: %w", id, ErrNotFound)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC(), string(b[8:]), nil
}

// maxTaskIDBytes bounds the task id an id may carry: a message id, "|"
// and an address or a domain with its address.
const maxTaskIDBytes = 1024

// WithID is d with its ID set from its time and task.
func (d DeadLetter) WithID() DeadLetter {
	d.ID = DeadLetterID(d.DLQTimestamp, d.TaskID)
	return d
}

// FilledFrom is d with what it leaves empty taken from the task it
// records, and its time now when it has none: what every TaskQueue's
// DeadLetter keeps.
func (d DeadLetter) FilledFrom(t Task, now time.Time) DeadLetter {
	if d.TaskID == "" {
		d.TaskID = t.ID
	}
	if d.MessageID == "" {
		d.MessageID = t.MessageID
	}
	if d.Recipients == nil {
		d.Recipients = t.Recipients
	}
	if d.Kind == "" {
		d.Kind, d.Domain = t.Kind, t.Domain
	}
	if d.Attempts == 0 {
		d.Attempts = t.Attempt
	}
	if d.DLQTimestamp.IsZero() {
		d.DLQTimestamp = now
	}
	return d
}

// Dead-letter pages are smaller than message pages: each carries the
// original messages.
const (
	defaultDeadLetterPage = 50
	maxDeadLetterPage     = 100
)

// DeadLetterView is a dead letter as operators see it (draft §8.2.1): the
// record and the original message.
type DeadLetterView struct {
	DeadLetter
	OriginalMessage json.RawMessage `json:"original_message,omitempty"`
}

// Redriven is what one redrive did.
type Redriven struct {
	ID         string    `json:"id"`
	MessageID  string    `json:"message_id"`
	TaskID     string    `json:"task_id"`
	Recipients []string  `json:"recipients"`
	RedrivenAt time.Time `json:"redriven_at"`
}

// RedriveBatch is what a bulk redrive did; NextCursor continues it.
type RedriveBatch struct {
	Redriven   []Redriven `json:"redriven"`
	Count      int        `json:"count"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// redriveStatuses is what DeadLetters needs of the MessageStore.
type redriveStatuses interface {
	GetMessage(ctx context.Context, id string) (*StoredMessage, error)
	GetStatuses(ctx context.Context, id string) ([]RecipientStatus, error)
	UpdateStatuses(ctx context.Context, id string, updates []RecipientStatus) error
}

// DeadLetters lets the admin see the deliveries that were given up and put
// them back into delivery (redrive) with a fresh retry window.
type DeadLetters struct {
	letters  DeadLetterStore
	messages redriveStatuses
	queue    taskEnqueuer
	site     site
	clock    clock
	log      opsLog
}

// ready refuses every call of a composition without a dead-letter store.
func (s *DeadLetters) ready(p Principal) error {
	if err := RequireAdmin(p); err != nil {
		return err
	}
	if s.letters == nil {
		return amtp.Errorf(amtp.CodeNotFound, "this gateway keeps no dead letters")
	}
	return nil
}

// ListDeadLetters pages through the dead letters q selects, oldest first.
func (s *DeadLetters) ListDeadLetters(ctx context.Context, p Principal, q DeadLetterQuery) ([]DeadLetterView, string, error) {
	if err := s.ready(p); err != nil {
		return nil, "", err
	}
	q.Limit = deadLetterPage(q.Limit)
	list, next, err := s.letters.ListDeadLetters(ctx, q)
	if err != nil {
		return nil, "", s.log.listError("list dead letters", err)
	}
	out := make([]DeadLetterView, 0, len(list))
	for _, d := range list {
		v, err := s.view(ctx, d)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

func deadLetterPage(n int) int {
	if n <= 0 {
		return defaultDeadLetterPage
	}
	return min(n, maxDeadLetterPage)
}

// GetDeadLetter returns one dead letter.
func (s *DeadLetters) GetDeadLetter(ctx context.Context, p Principal, id string) (*DeadLetterView, error) {
	if err := s.ready(p); err != nil {
		return nil, err
	}
	d, err := s.find(ctx, id)
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, d)
	return &v, err
}

func (s *DeadLetters) find(ctx context.Context, id string) (DeadLetter, error) {
	d, err := s.letters.GetDeadLetter(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return d, amtp.Errorf(amtp.CodeNotFound, "no dead letter %q", id)
	}
	if err != nil {
		return d, s.log.unavailable("read dead letter", err)
	}
	return d, nil
}

// view adds the original message; a message its retention removed is left
// out.
func (s *DeadLetters) view(ctx context.Context, d DeadLetter) (DeadLetterView, error) {
	v := DeadLetterView{DeadLetter: d}
	v.MessageID = MessageIDOf(d.MessageID)
	sm, err := s.messages.GetMessage(ctx, d.MessageID)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return v, s.log.unavailable("read dead-lettered message", err)
	default:
		v.OriginalMessage = sm.Raw
	}
	return v, nil
}

// RedriveDeadLetter puts one dead letter back into delivery. A record already
// redriven is gone: a second redrive of it answers NOT_FOUND.
func (s *DeadLetters) RedriveDeadLetter(ctx context.Context, p Principal, id string) (*Redriven, error) {
	if err := s.ready(p); err != nil {
		return nil, err
	}
	d, err := s.find(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.redrive(ctx, d)
}

// RedriveDeadLetters redrives up to one page of the dead letters q selects (at
// most 100 a call); NextCursor continues where it stopped.
func (s *DeadLetters) RedriveDeadLetters(ctx context.Context, p Principal, q DeadLetterQuery) (*RedriveBatch, error) {
	if err := s.ready(p); err != nil {
		return nil, err
	}
	q.Limit = deadLetterPage(q.Limit)
	list, next, err := s.letters.ListDeadLetters(ctx, q)
	if err != nil {
		return nil, s.log.listError("list dead letters", err)
	}
	out := &RedriveBatch{Redriven: make([]Redriven, 0, len(list)), NextCursor: next}
	for _, d := range list {
		r, err := s.redrive(ctx, d)
		if e, ok := amtp.AsError(err); ok && e.Code == amtp.CodeNotFound {
			// Its message is no longer kept: the record is dropped.
			continue
		}
		if err != nil {
			return nil, err
		}
		out.Redriven = append(out.Redriven, *r)
	}
	out.Count = len(out.Redriven)
	return out, nil
}

// redrive makes d's recipients pending again (recorded in their history),
// queues its task with a retry window starting now, and removes the
// record. Each step may be repeated: should one fail, the record stays and
// the next redrive does it all again (the queue does not add a task twice).
func (s *DeadLetters) redrive(ctx context.Context, d DeadLetter) (*Redriven, error) {
	now := s.clock.stamp()
	if len(d.Recipients) > 0 {
		if err := s.reopen(ctx, d, now); err != nil {
			return nil, err
		}
	}
	return s.requeue(ctx, d, now)
}

// requeue queues d's task again with a retry window from now and removes
// the record.
func (s *DeadLetters) requeue(ctx context.Context, d DeadLetter, now time.Time) (*Redriven, error) {
	t := Task{ID: d.TaskID, MessageID: d.MessageID, Kind: d.Kind, Domain: d.Domain, Recipients: d.Recipients, Attempt: d.Attempts, CreatedAt: now}
	if t.Kind == "" {
		t.Kind, t.Domain = s.kindOf(d.Recipients)
	}
	if err := s.queue.Enqueue(ctx, t); err != nil {
		return nil, s.log.unavailable("redrive", err)
	}
	if err := s.letters.RemoveDeadLetter(ctx, d.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, s.log.unavailable("redrive", err)
	}
	s.log.InfoContext(ctx, "dead letter redriven", "message_id", d.MessageID, "task", d.TaskID, "recipients", d.Recipients)
	return &Redriven{ID: d.ID, MessageID: MessageIDOf(d.MessageID), TaskID: d.TaskID, Recipients: d.Recipients, RedrivenAt: now}, nil
}

// reopen sets the failed recipients of d back to queued, keeping their
// attempt count, with the redrive in their history.
func (s *DeadLetters) reopen(ctx context.Context, d DeadLetter, now time.Time) error {
	_, err := s.messages.GetMessage(ctx, d.MessageID)
	if errors.Is(err, ErrNotFound) {
		// Its retention is over: nothing is left to deliver, and the
		// record can never be redriven.
		if err := s.letters.RemoveDeadLetter(ctx, d.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return s.log.unavailable("redrive", err)
		}
		return amtp.Errorf(amtp.CodeNotFound, "the message of dead letter %s is no longer kept", d.ID)
	}
	if err != nil {
		return s.log.unavailable("redrive", err)
	}
	statuses, err := s.messages.GetStatuses(ctx, d.MessageID)
	if err != nil {
		return s.log.unavailable("redrive", err)
	}
	var ups []RecipientStatus
	for _, st := range statuses {
		if st.Status != StateFailed || !containsFold(d.Recipients, st.Address) {
			continue
		}
		ups = append(ups, st.redriven(now))
	}
	if len(ups) == 0 {
		return nil
	}
	if err := s.messages.UpdateStatuses(ctx, d.MessageID, ups); err != nil {
		return s.log.unavailable("redrive", err)
	}
	return nil
}

// kindOf is the task kind of a record written before records kept it: a
// local recipient's task, or a remote domain's.
func (s *DeadLetters) kindOf(rcpts []string) (TaskKind, string) {
	if len(rcpts) == 0 {
		return "", ""
	}
	_, dom, _ := strings.Cut(strings.ToLower(rcpts[0]), "@")
	if dom == s.site.domain {
		return TaskLocal, ""
	}
	return TaskRemote, dom
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
