// Package sqsq is the delivery queue (gateway.TaskQueue) on Amazon SQS,
// through the real aws-sdk-go-v2 client, for a standard (not FIFO) queue
// with a redrive policy to a dead-letter queue (awsres defines both).
//
// # Message format
//
// A message body is the task's JSON (gateway.Task; Lease is not part of
// it) with "v":1, plus "due" on retried copies and "early" on copies sent
// before they are due (below). Readers refuse other versions. Receive sets
// Task.Lease to the SQS receipt handle. ParseTask reads a body;
// ParseDeadLetterRecord reads the dead-letter queue, where DeadLetter
// writes {"v":1,"dead_letter":{…},"task":{…}} and SQS's redrive policy
// moves plain task bodies.
//
// # Scheduling
//
// SQS delays a message by at most 15 minutes. Enqueue sends a task with
// DelaySeconds = its NotBefore rounded up to whole seconds; a task due
// later is sent with the full 15 minutes and marked early. A copy that is
// received before it is due is never handed out: on its first receive it
// is hidden until due with ChangeMessageVisibility (at most 11 hours, under
// SQS's 12-hour cap); received early again, it is replaced by a fresh copy,
// so that holding a task back never walks it towards the redrive limit.
//
// Retry sends a new copy carrying the new attempt count and due time, then
// deletes the received one. Changing the received message's visibility
// instead would be one call, but SQS bodies are immutable, so the attempt
// count would be lost; every retry would raise ApproximateReceiveCount, so
// the redrive limit would have to exceed the ~180 attempts of the 7-day
// schedule and would no longer catch poison tasks; and the Lambda event
// source deletes a record its handler reports as done. With a copy per
// retry, maxReceiveCount (awsres.MaxReceiveCount) counts only the receives
// of one copy: one hold-back plus the crashes of workers that received it.
// A Retry whose receipt has expired still sends its copy and returns nil;
// the old copy may then be delivered too, which the worker tolerates (it
// skips recipients whose status is settled).
//
// A task that was never received (the Immediate Path settles its task
// without leasing it) still has its queued copy, due at NotBefore: Ack of
// it does nothing, DeadLetter only writes the record, and Retry does
// nothing when `at` is not after NotBefore, because that copy then is the
// retry (sending another would start a second chain of attempts); a later
// `at` gets a copy of its own.
//
// Task.Attempt, as received, is the body's attempt count plus the number
// of times SQS handed out this copy before without it being settled (hold
// backs excepted), so that a task that crashed its worker still counts
// those attempts.
//
// # Duplicates
//
// A standard queue neither de-duplicates nor keeps order, and SQS can
// deliver a message twice. Enqueue drops repeated ids within one call.
// Across calls, a Queue remembers the tasks it has out on lease; a copy of
// such a task received meanwhile (a second Enqueue of a queued task, an
// SQS duplicate) is deleted instead of being handed out, and of several
// copies received together the one sent first is kept. That covers one
// process only: tasks leased by other processes are not known, so a task
// enqueued twice may be delivered twice, and the worker's status check is
// what makes that harmless.
//
// # Poison records
//
// A body that does not parse is not handed out and not deleted: Receive
// logs it and leaves it to the redrive policy, which moves it to the
// dead-letter queue after maxReceiveCount receives. The Lambda deliver
// function does the same through Admit (reporting the record as a batch
// item failure); the dead-letter function then gets ErrMalformed from
// ParseDeadLetterRecord.
package sqsq

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// SQS limits and our margins under them.
const (
	maxBatch       = 10               // entries per SendMessageBatch and messages per ReceiveMessage
	maxBatchBytes  = 256 << 10        // payload per SendMessageBatch on queues that still have the old limit
	maxWaitSeconds = 20               // longest long poll
	maxDelay       = 15 * time.Minute // DelaySeconds
	// maxHold stays an hour under the 12-hour visibility cap, which SQS
	// (and moto) count from when the message was sent or first received.
	maxHold = 11 * time.Hour
	// maxVisibility is the visibility timeout SQS accepts at all.
	maxVisibility = 12 * time.Hour

	sendTries = 3
	// housekeeping bounds the calls Receive makes for messages it does not
	// hand out, which run even when the receiver is being cancelled.
	housekeeping = 10 * time.Second
	// leaseSweepAt is the size of the lease map at which expired entries
	// are first swept out; it doubles with the live entries.
	leaseSweepAt = 1024
)

// Config configures a Queue.
type Config struct {
	QueueURL      string // the delivery queue
	DeadLetterURL string // where DeadLetter writes its records
	// VisibilityTimeout is the lease of a received task; default
	// awsres.VisibilityTimeoutSeconds.
	VisibilityTimeout time.Duration
	// Now is the clock that due times (NotBefore, Retry's `at`) are
	// compared with; default time.Now. SQS's own timers (delays,
	// visibility) run on real time whatever it says.
	Now func() time.Time
	// Logger gets what Receive cannot return: poison records and failed
	// clean-up calls. Default slog.Default().
	Logger *slog.Logger
}

// Queue is a gateway.TaskQueue on SQS. It is safe for concurrent use.
type Queue struct {
	client     calls
	url, dlq   string
	visibility time.Duration
	now        func() time.Time
	log        *slog.Logger
	// maxDelay and maxHold are the SQS limits above; tests shrink them to
	// exercise long schedules in seconds.
	maxDelay, maxHold time.Duration

	mu      sync.Mutex
	leases  map[string]lease // task id → the copy this process holds
	sweepAt int
}

type lease struct {
	messageID, receipt string
	until              time.Time
	// callerDeletes: the record is deleted by whoever handed it to Admit
	// once the task is settled (Record.CallerDeletes).
	callerDeletes bool
}

var _ gateway.TaskQueue = (*Queue)(nil)

// calls are the SQS operations a Queue makes, as method values of the
// client rather than the *sqs.Client itself, so that the api function does
// not link every other operation (why:
// functions/TestFunctionsDoNotLinkUnusedAWSOperations).
type calls struct {
	SendMessageBatch        func(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	SendMessage             func(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage          func(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	ChangeMessageVisibility func(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	DeleteMessage           func(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

func callsOf(c *sqs.Client) calls {
	return calls{
		SendMessageBatch:        c.SendMessageBatch,
		SendMessage:             c.SendMessage,
		ReceiveMessage:          c.ReceiveMessage,
		ChangeMessageVisibility: c.ChangeMessageVisibility,
		DeleteMessage:           c.DeleteMessage,
	}
}

// New returns a Queue. It makes no network call.
func New(client *sqs.Client, cfg Config) (*Queue, error) {
	if client == nil {
		return nil, errors.New("sqsq: an SQS client is required")
	}
	if cfg.QueueURL == "" || cfg.DeadLetterURL == "" {
		return nil, errors.New("sqsq: the delivery queue URL and the dead-letter queue URL are required")
	}
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = awsres.VisibilityTimeoutSeconds * time.Second
	}
	if cfg.VisibilityTimeout < time.Second || cfg.VisibilityTimeout > maxVisibility {
		return nil, fmt.Errorf("sqsq: visibility timeout %s is outside SQS's 1s to 12h", cfg.VisibilityTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Queue{
		client:     callsOf(client),
		url:        cfg.QueueURL,
		dlq:        cfg.DeadLetterURL,
		visibility: time.Duration(ceilSeconds(cfg.VisibilityTimeout)) * time.Second,
		now:        cfg.Now,
		log:        cfg.Logger,
		maxDelay:   maxDelay,
		maxHold:    maxHold,
		leases:     make(map[string]lease),
		sweepAt:    leaseSweepAt,
	}, nil
}

// outgoing is one message about to be sent to the delivery queue.
type outgoing struct {
	taskID string
	body   string
	delay  int32
}

// encode builds the message for t; a zero due means "at NotBefore".
func (q *Queue) encode(t gateway.Task, due, now time.Time) (outgoing, error) {
	t.Lease = ""
	b := taskBody{V: FormatVersion, Task: t, Due: due}
	wait := b.due().Sub(now)
	b.Early = wait > q.maxDelay
	data, err := json.Marshal(b)
	if err != nil {
		return outgoing{}, fmt.Errorf("encode task %s: %w", t.ID, err)
	}
	if len(data) > awsres.MaxQueueBody {
		return outgoing{}, fmt.Errorf("task %s: body of %d bytes is over the SQS limit of %d", t.ID, len(data), awsres.MaxQueueBody)
	}
	return outgoing{taskID: t.ID, body: string(data), delay: ceilSeconds(min(wait, q.maxDelay))}, nil
}

// Enqueue sends the tasks in batches. Ids repeated within the call are
// sent once. On error some tasks may already be queued; enqueueing them
// again can queue them twice (see Duplicates in the package doc).
func (q *Queue) Enqueue(ctx context.Context, tasks ...gateway.Task) error {
	now := q.now()
	seen := make(map[string]bool, len(tasks))
	var (
		batch []outgoing
		size  int
	)
	for _, t := range tasks {
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		m, err := q.encode(t, time.Time{}, now)
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		if len(batch) == maxBatch || (len(batch) > 0 && size+len(m.body) > maxBatchBytes) {
			if err := q.sendBatch(ctx, batch); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			batch, size = nil, 0
		}
		batch = append(batch, m)
		size += len(m.body)
	}
	if len(batch) > 0 {
		if err := q.sendBatch(ctx, batch); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	return nil
}

// sendBatch sends up to maxBatch messages, sending again the entries SQS
// failed through no fault of ours; every entry is sent or reported.
func (q *Queue) sendBatch(ctx context.Context, msgs []outgoing) error {
	var refused []string
	pending := msgs
	for try := 1; ; try++ {
		entries := make([]types.SendMessageBatchRequestEntry, len(pending))
		for i, m := range pending {
			entries[i] = types.SendMessageBatchRequestEntry{
				Id:           aws.String(strconv.Itoa(i)), // task ids hold characters SQS does not allow here
				MessageBody:  aws.String(m.body),
				DelaySeconds: m.delay,
			}
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			return fmt.Errorf("send %d tasks (first %s): %w", len(pending), pending[0].taskID, err)
		}
		var again []outgoing
		var failures []string
		for _, f := range out.Failed {
			i, err := strconv.Atoi(aws.ToString(f.Id))
			if err != nil || i < 0 || i >= len(pending) {
				return fmt.Errorf("send tasks: SQS reported a failure for entry %q, which was not sent", aws.ToString(f.Id))
			}
			why := fmt.Sprintf("%s (%s: %s)", pending[i].taskID, aws.ToString(f.Code), aws.ToString(f.Message))
			if f.SenderFault {
				refused = append(refused, why)
				continue
			}
			again = append(again, pending[i])
			failures = append(failures, why)
		}
		switch {
		case len(again) == 0 && len(refused) == 0:
			return nil
		case len(again) == 0:
			return fmt.Errorf("send tasks: SQS refused %s", strings.Join(refused, ", "))
		case try == sendTries:
			return fmt.Errorf("send tasks: still failing after %d tries: %s", sendTries, strings.Join(append(failures, refused...), ", "))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("send tasks: %d not sent: %w", len(again)+len(refused), ctx.Err())
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
		pending = again
	}
}

func (q *Queue) send(ctx context.Context, url string, m outgoing) error {
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(url),
		MessageBody:  aws.String(m.body),
		DelaySeconds: m.delay,
	})
	if err != nil {
		return fmt.Errorf("send task %s: %w", m.taskID, err)
	}
	return nil
}

// Receive long-polls for up to max due tasks (at most 10 per call, SQS's
// limit). SQS waits in whole seconds, so a wait under a second still polls
// for one. Messages that are not handed out (not due yet, duplicates,
// poison) do not end the wait while a second or more of it is left.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]gateway.Task, error) {
	if max <= 0 {
		return nil, nil
	}
	deadline := time.Now().Add(wait)
	// A zero WaitTimeSeconds is not sent at all, and the queue's default
	// (20 s) would apply; so never ask for less than one second.
	secs := clampInt32(ceilSeconds(wait), 1, maxWaitSeconds)
	for {
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(q.url),
			MaxNumberOfMessages: int32(min(max, maxBatch)),
			WaitTimeSeconds:     secs,
			VisibilityTimeout:   int32(q.visibility / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount,
				types.MessageSystemAttributeNameSentTimestamp,
			},
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("receive tasks from %s: %w", q.url, err)
		}
		if tasks := q.admitAll(ctx, out.Messages); len(tasks) > 0 {
			// Handed out even if ctx ended meanwhile: they are leased now,
			// and dropping them would only delay them by a lease.
			return tasks, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		left := time.Until(deadline)
		if left < time.Second {
			return nil, nil
		}
		secs = clampInt32(int32(left/time.Second), 1, maxWaitSeconds)
	}
}

func (q *Queue) admitAll(ctx context.Context, msgs []types.Message) []gateway.Task {
	if len(msgs) == 0 {
		return nil
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), housekeeping)
	defer cancel()
	// Of two copies of one task in a batch, the older one is kept.
	slices.SortStableFunc(msgs, func(a, b types.Message) int {
		return cmp.Compare(sentAt(a.Attributes), sentAt(b.Attributes))
	})
	var tasks []gateway.Task
	for _, m := range msgs {
		r := Record{
			MessageID:     aws.ToString(m.MessageId),
			ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body:          aws.ToString(m.Body),
			Attributes:    m.Attributes,
		}
		t, ok, err := q.Admit(hctx, r)
		switch {
		case errors.Is(err, ErrMalformed):
			q.log.Warn("poison delivery record left for the redrive policy", "sqs_message_id", r.MessageID, "receive_count", receiveCount(r.Attributes), "err", err)
		case err != nil:
			q.log.Error("delivery record not handled; it will come back after the visibility timeout", "sqs_message_id", r.MessageID, "err", err)
		case ok:
			tasks = append(tasks, t)
		}
	}
	return tasks
}

// Record is one received SQS message: from ReceiveMessage, or from a
// Lambda SQS event (events.SQSMessage's MessageId, ReceiptHandle, Body and
// Attributes).
type Record struct {
	MessageID     string
	ReceiptHandle string
	Body          string
	// Attributes are the message's system attributes; Admit reads
	// ApproximateReceiveCount (missing means 1).
	Attributes map[string]string
	// CallerDeletes says the caller deletes the record itself when the
	// task is settled without error, as Lambda's event source mapping
	// deletes every record not reported as a batch item failure. Ack,
	// Retry and DeadLetter then leave the delete to it: a second delete
	// of the same message would be one more billed request per task.
	CallerDeletes bool
}

// Admit turns a received record into a leased task when it is due, as
// Receive does for each message; the Lambda deliver function calls it for
// each record of its batch. ok is false for a record that is not to be
// processed now: not due yet (it has been hidden until due, or replaced
// by a fresh copy) or a duplicate of a task leased here (it has been
// deleted). An error means the record could not be handled: ErrMalformed
// for a poison body, else an SQS failure. Whenever ok is false the caller
// must leave the record in the queue (report it as a batch item failure):
// a hidden record must not be deleted, and leaving one that is already
// gone is harmless.
func (q *Queue) Admit(ctx context.Context, r Record) (gateway.Task, bool, error) {
	b, err := parseTaskBody(r.Body)
	if err != nil {
		return gateway.Task{}, false, fmt.Errorf("sqs message %s: %w", r.MessageID, err)
	}
	count := receiveCount(r.Attributes)
	if wait := b.due().Sub(q.now()); wait > 0 {
		if err := q.holdBack(ctx, r, b, count, wait); err != nil {
			return gateway.Task{}, false, fmt.Errorf("hold back task %s until %s: %w", b.ID, b.due().Format(time.RFC3339), err)
		}
		return gateway.Task{}, false, nil
	}
	if !q.lease(b.ID, r.MessageID, r.ReceiptHandle, r.CallerDeletes) {
		// The task is already out on lease here, so it is queued: this
		// copy adds nothing, and handing it out would deliver twice.
		if err := q.deleteMessage(ctx, r.ReceiptHandle); err != nil {
			return gateway.Task{}, false, fmt.Errorf("drop duplicate of task %s: %w", b.ID, err)
		}
		return gateway.Task{}, false, nil
	}
	t := b.Task
	redelivered := count - 1
	if b.Early {
		redelivered--
	}
	if redelivered > 0 {
		t.Attempt += redelivered
	}
	t.Lease = r.ReceiptHandle
	return t, true, nil
}

// holdBack keeps a copy that came before its due time out of sight.
func (q *Queue) holdBack(ctx context.Context, r Record, b taskBody, count int, wait time.Duration) error {
	if count <= 1 {
		_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl:          aws.String(q.url),
			ReceiptHandle:     aws.String(r.ReceiptHandle),
			VisibilityTimeout: ceilSeconds(min(wait, q.maxHold)),
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("change visibility: %w", err)
		}
		q.log.Warn("could not hide a task until due; sending a fresh copy", "task", b.ID, "err", err)
	}
	// A fresh copy starts again at receive count zero, so that holding a
	// task back for long never walks it towards the redrive limit.
	m, err := q.encode(b.Task, b.Due, q.now())
	if err != nil {
		return err
	}
	if err := q.send(ctx, q.url, m); err != nil {
		return err
	}
	if err := q.deleteMessage(ctx, r.ReceiptHandle); err != nil {
		return fmt.Errorf("delete the copy replaced: %w", err)
	}
	return nil
}

// lease records that this process holds taskID through the given message,
// unless it holds another copy of the task whose lease has not lapsed.
func (q *Queue) lease(taskID, messageID, receipt string, callerDeletes bool) bool {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if l, ok := q.leases[taskID]; ok && l.messageID != messageID && now.Before(l.until) {
		return false
	}
	if len(q.leases) >= q.sweepAt {
		// Entries of tasks that were never settled here (their worker
		// failed) would otherwise stay for the life of the process.
		for id, l := range q.leases {
			if !now.Before(l.until) {
				delete(q.leases, id)
			}
		}
		q.sweepAt = max(leaseSweepAt, 2*len(q.leases))
	}
	q.leases[taskID] = lease{messageID: messageID, receipt: receipt, until: now.Add(q.visibility), callerDeletes: callerDeletes}
	return true
}

// release forgets the lease of taskID if it is the one with this receipt.
func (q *Queue) release(taskID, receipt string) (lease, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l, ok := q.leases[taskID]
	if !ok || l.receipt != receipt {
		return lease{}, false
	}
	delete(q.leases, taskID)
	return l, true
}

// restore puts back a released lease that is still held after all.
func (q *Queue) restore(taskID string, l lease) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.leases[taskID]; !ok {
		q.leases[taskID] = l
	}
}

// deleteMessage deletes a received message; one that is gone already, or
// whose receipt has expired, is no error: either it is settled, or it is
// out with another worker, which will find its recipients settled.
func (q *Queue) deleteMessage(ctx context.Context, receipt string) error {
	_, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receipt)})
	if err != nil && !receiptGone(err) {
		return fmt.Errorf("delete message: %w", err)
	}
	return nil
}

// Ack deletes a received task. A task never received (empty Lease) has
// nothing to delete here: its queued copy comes back at NotBefore and the
// worker, finding it settled, acks that.
func (q *Queue) Ack(ctx context.Context, t gateway.Task) error {
	if t.Lease == "" {
		return nil
	}
	if l, ok := q.release(t.ID, t.Lease); ok && l.callerDeletes {
		return nil
	}
	if err := q.deleteMessage(ctx, t.Lease); err != nil {
		return fmt.Errorf("ack task %s: %w", t.ID, err)
	}
	return nil
}

// Retry sends a copy of t (with its Attempt) due at `at`, then deletes the
// received copy; see Scheduling in the package doc.
func (q *Queue) Retry(ctx context.Context, t gateway.Task, at time.Time) error {
	now := q.now()
	if at.IsZero() {
		at = now
	}
	if t.Lease == "" && !at.After(t.NotBefore) {
		return nil
	}
	m, err := q.encode(t, at, now)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	// Released before the copy is sent: a Receive here that got the new
	// copy while the old lease was still recorded would take it for a
	// duplicate and delete it.
	held, wasHeld := q.release(t.ID, t.Lease)
	if err := q.send(ctx, q.url, m); err != nil {
		if wasHeld {
			q.restore(t.ID, held)
		}
		return fmt.Errorf("retry: %w", err)
	}
	if t.Lease == "" || (wasHeld && held.callerDeletes) {
		return nil
	}
	if err := q.deleteMessage(ctx, t.Lease); err != nil {
		return fmt.Errorf("retry task %s: the new copy is queued, the old one not deleted: %w", t.ID, err)
	}
	return nil
}

// DeadLetter writes the record to the dead-letter queue, then deletes the
// received task (a task never received has its queued copy, which the
// worker will find settled).
func (q *Queue) DeadLetter(ctx context.Context, t gateway.Task, d gateway.DeadLetter) error {
	body, err := encodeDeadLetter(t, d)
	if err != nil {
		return err
	}
	if _, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.dlq), MessageBody: aws.String(body)}); err != nil {
		return fmt.Errorf("dead-letter task %s: %w", t.ID, err)
	}
	if t.Lease == "" {
		return nil
	}
	if l, ok := q.release(t.ID, t.Lease); ok && l.callerDeletes {
		return nil
	}
	if err := q.deleteMessage(ctx, t.Lease); err != nil {
		return fmt.Errorf("dead-letter task %s: the record is written, the task not deleted: %w", t.ID, err)
	}
	return nil
}

// receiptGone recognises SQS's answers for a receipt handle that no
// longer refers to a message we hold: ReceiptHandleIsInvalid (moto, and
// SQS for a deleted message) and InvalidParameterValue "The receipt handle
// has expired" (SQS).
func receiptGone(err error) bool {
	var invalid *types.ReceiptHandleIsInvalid
	if errors.As(err, &invalid) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidParameterValue" {
		msg := strings.ToLower(api.ErrorMessage())
		return strings.Contains(msg, "receipt handle") || strings.Contains(msg, "receipthandle")
	}
	return false
}

func receiveCount(attrs map[string]string) int {
	n, err := strconv.Atoi(attrs[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func sentAt(attrs map[string]string) int64 {
	n, _ := strconv.ParseInt(attrs[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	return n
}

// ceilSeconds rounds d up to whole seconds, so that a message never
// becomes visible before its time; negative durations are zero.
func ceilSeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32((d + time.Second - 1) / time.Second)
}

func clampInt32(v, lo, hi int32) int32 {
	return min(max(v, lo), hi)
}
