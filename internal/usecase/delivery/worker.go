package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Reporter accepts messages the gateway writes itself (failure reports).
type Reporter interface {
	SubmitSystem(ctx context.Context, m *amtp.Message) (*gateway.AcceptResult, error)
}

// Config configures a Worker.
type Config struct {
	Domain string
	Retry  RetryPolicy
	// Concurrency bounds the deliveries in progress, default 64. A
	// delivery holds its slot for the whole exchange (the peer's accept,
	// its own first attempt) and the recording of the outcome, so the
	// gateway's outbound rate is at most Concurrency divided by that
	// time: 16 slots at a 100 ms WAN round trip would cap every peer
	// together at 160 messages a second.
	Concurrency      int
	AttemptTimeout   time.Duration // one HTTP attempt, default 30s
	MaxResponseBytes int64         // bytes read from an agent or peer, default 1 MiB
	MaxReplyBytes    int           // a synchronous reply kept in the status, default 64 KiB
	Now              func() time.Time
	Logger           *slog.Logger
	// Metrics receives delivery events (docs/metrics.md); nil means none
	// are published.
	Metrics Metrics
	// Bridge configures the SMTP bridge (with Deps.Email).
	Bridge BridgeConfig
	// Domains bounds the deliveries in progress per destination domain
	// (domains.go).
	Domains DomainLimits
	// WebhookDisableAfter is how long a notification subscription may
	// fail before it is disabled, default DefaultWebhookDisableAfter.
	WebhookDisableAfter time.Duration
}

// Metrics receives the worker's delivery events, named after the metrics
// of docs/metrics.md (MessagesDelivered with DeliveryLatencyMs,
// DeliveryRetries, DeliveryFailures). The worker declares this port so
// that it never depends on how the numbers are published. Each method is
// called once per event, after the outcome is durably recorded, and never
// for a redelivered copy of a task that is already settled;
// implementations must be safe for concurrent use and must not block.
type Metrics interface {
	// MessageDelivered: one recipient's delivery completed (via "inbox",
	// "webhook", "amtp" or "smtp"); latency is the delivery time minus the
	// message's acceptance time, negative when unknown.
	MessageDelivered(ctx context.Context, messageID, recipient, via string, latency time.Duration)
	// DeliveryRetried: a transient failure and the next attempt of the
	// task is scheduled; attempt is the attempt that failed.
	DeliveryRetried(ctx context.Context, messageID string, attempt int, code string)
	// DeliveryFailed: one recipient failed for good (a permanent error,
	// the retry window over, a poison task).
	DeliveryFailed(ctx context.Context, messageID, recipient, code string)
}

// noMetrics stands in for a nil Config.Metrics, so that the worker calls
// the port unconditionally.
type noMetrics struct{}

func (noMetrics) MessageDelivered(context.Context, string, string, string, time.Duration) {}
func (noMetrics) DeliveryRetried(context.Context, string, int, string)                    {}
func (noMetrics) DeliveryFailed(context.Context, string, string, string)                  {}

// Deps are the ports a Worker uses.
type Deps struct {
	Messages gateway.MessageStore
	Inbox    gateway.InboxStore
	Agents   gateway.AgentStore
	Queue    gateway.TaskQueue
	Discover gateway.Discoverer
	Reporter Reporter
	Client   *http.Client // outbound, from netguard
	// Signer signs every message forwarded to another domain's gateway.
	// nil forwards unsigned, which receivers requiring signatures refuse:
	// only unit tests leave it unset; both compositions set it.
	Signer MessageSigner
	// Workflows carries out workflow tasks and hears of participants that
	// cannot be delivered to; nil drops workflow tasks as dead letters.
	// gateway.Service implements it.
	Workflows Workflows
	// Email is the outbound leg of the SMTP bridge: a recipient whose
	// domain has no AMTP record but mail exchangers is sent an email
	// through it. nil bridges nothing: such recipients fail.
	Email EmailTransport
	// MX answers whether a domain with an AMTP record also receives
	// email, for Config.Bridge.Fallback; nil makes no fallback.
	MX MailExchangers
	// Notifier hears of every recorded outcome (webhook subscriptions),
	// and Webhooks holds the subscriptions notification tasks go to; nil
	// notifies nobody, and drops notification tasks.
	Notifier Notifier
	Webhooks gateway.WebhookStore
}

// Workflows is the workflow driver as the worker sees it.
type Workflows interface {
	// HandleWorkflowTask carries out one workflow task; a non-zero time
	// asks for the task back then, an error for a retry with backoff.
	HandleWorkflowTask(ctx context.Context, t gateway.Task) (time.Time, error)
	// WorkflowDeliveryFailed: the coordination message of workflow id
	// will never reach recipients.
	WorkflowDeliveryFailed(ctx context.Context, id string, recipients []string, code amtp.Code, reason string) error
}

// MessageSigner signs the exact body the worker is about to send to
// another gateway and returns the body to send instead. The worker
// declares the port so that where the key lives (a PEM file, Secrets
// Manager, a KMS) stays in the composition. An error is retried: a key
// that cannot be read now may be readable after the operator fixes it,
// and the message is kept meanwhile.
type MessageSigner interface {
	SignMessage(ctx context.Context, raw []byte) ([]byte, error)
}

// Worker delivers tasks. One Worker serves both the local process (Run)
// and the Lambda deliver function (Process per SQS record).
type Worker struct {
	cfg Config
	d   Deps
	log *slog.Logger
	// settler is d.Queue when it also stores d.Messages' statuses (see
	// gateway.Settler); nil otherwise.
	settler gateway.Settler
	domains *domainSlots
}

// New builds a Worker.
func New(cfg Config, d Deps) (*Worker, error) {
	if d.Messages == nil || d.Inbox == nil || d.Agents == nil || d.Queue == nil || d.Client == nil {
		return nil, errors.New("delivery: stores, queue and client are required")
	}
	cfg.Retry = cfg.Retry.withDefaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 30 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	if cfg.MaxReplyBytes <= 0 {
		cfg.MaxReplyBytes = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.WebhookDisableAfter <= 0 {
		cfg.WebhookDisableAfter = DefaultWebhookDisableAfter
	}
	cfg.Domains = cfg.Domains.WithDefaults(cfg.Concurrency)
	wk := &Worker{cfg: cfg, d: d, log: cfg.Logger, domains: newDomainSlots(cfg.Domains)}
	if s, ok := d.Queue.(gateway.Settler); ok && any(d.Queue) == any(d.Messages) {
		wk.settler = s
	}
	return wk, nil
}

// Run receives and delivers tasks until ctx is cancelled, then waits for
// the deliveries in flight to finish (graceful shutdown).
func (w *Worker) Run(ctx context.Context) error {
	var (
		wg       sync.WaitGroup
		inflight atomic.Int64
		slotFree = make(chan struct{}, 1)
	)
	work := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		free := int64(w.cfg.Concurrency) - inflight.Load()
		if free <= 0 {
			select {
			case <-slotFree:
			case <-ctx.Done():
			}
			continue
		}
		tasks, err := w.d.Queue.Receive(ctx, int(free), time.Second)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.log.Error("receive tasks", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		for _, t := range tasks {
			inflight.Add(1)
			wg.Add(1)
			go func(t gateway.Task) {
				defer wg.Done()
				defer func() {
					inflight.Add(-1)
					select {
					case slotFree <- struct{}{}:
					default:
					}
				}()
				if err := w.Process(work, t); err != nil {
					w.log.ErrorContext(logctx.WithMessageID(work, t.MessageID), "process task", "task", t.ID, "err", err)
				}
			}(t)
		}
	}
	wg.Wait()
	return nil //nolint:nilerr // a receive that failed as ctx ended is the stop asked for
}

// outcome of one attempt for the recipients of a task.
type outcome struct {
	results    map[string]result // by recipient address; settled recipients
	transient  *amtp.Error       // set when the whole attempt should be retried
	retryAfter time.Duration     // peer-requested minimum delay
	// detail is the whole error behind a failure, for the operator's log
	// only: the sender reads the AMTP errors above (see errtext.go).
	detail string
}

type result struct {
	delivered bool
	via       string
	reply     json.RawMessage
	err       *amtp.Error
}

func settledAll(rcpts []string, code amtp.Code, msg string) outcome {
	o := outcome{results: map[string]result{}}
	for _, r := range rcpts {
		o.results[r] = result{err: amtp.Errorf(code, "%s", msg)}
	}
	return o
}

func deliveredAll(rcpts []string, via string, reply json.RawMessage) outcome {
	o := outcome{results: map[string]result{}}
	for _, r := range rcpts {
		o.results[r] = result{delivered: true, via: via, reply: reply}
	}
	return o
}

// Process delivers one task and settles it with the queue: Ack when every
// recipient is settled, Retry with backoff on a transient failure,
// DeadLetter (plus a failure report) when a recipient failed for good. It
// returns an error only when the queue or store could not record the
// result, in which case the task will come back.
func (w *Worker) Process(ctx context.Context, t gateway.Task) error {
	_, err := w.process(ctx, t, queueWorker)
	return err
}

// DeliverNow is the Immediate Path: the first attempt of a push delivery,
// made while the submitting client waits. The task was enqueued with a
// NotBefore past the window, so no queue worker races it.
func (w *Worker) DeliverNow(ctx context.Context, t gateway.Task, acc gateway.Accepted) (gateway.ImmediateResult, error) {
	if acc.Stored == nil || acc.Message == nil || t.Kind.IsWorkflow() {
		return w.process(ctx, t, submitter)
	}
	ctx = logctx.WithMessageID(ctx, t.MessageID)
	return w.attempt(ctx, t, submitter, acc.Stored, acc.Statuses, acc.Message)
}

func (w *Worker) process(ctx context.Context, t gateway.Task, h holder) (gateway.ImmediateResult, error) {
	var ir gateway.ImmediateResult
	// Every log line about this task carries the message id, so that the
	// accept and the deliveries of one message can be found together.
	ctx = logctx.WithMessageID(ctx, t.MessageID)
	if t.Kind.IsWorkflow() {
		return ir, w.workflowTask(ctx, t, h)
	}
	if t.Kind == gateway.TaskNotify {
		return ir, w.notifyTask(ctx, t, h)
	}
	sm, err := w.d.Messages.GetMessage(ctx, t.MessageID)
	if errors.Is(err, gateway.ErrNotFound) {
		w.log.WarnContext(ctx, "task for a message that is not stored; dropping it", "task", t.ID)
		return ir, w.d.Queue.Ack(ctx, t)
	}
	if err != nil {
		return ir, fmt.Errorf("load message %s: %w", t.MessageID, err)
	}
	statuses, err := w.d.Messages.GetStatuses(ctx, t.MessageID)
	if err != nil {
		return ir, fmt.Errorf("load status %s: %w", t.MessageID, err)
	}
	return w.attempt(ctx, t, h, sm, statuses, nil)
}

// attempt makes one attempt of task t on the loaded message (m is its
// parsed form when the caller has it, else it is parsed here).
func (w *Worker) attempt(ctx context.Context, t gateway.Task, h holder, sm *gateway.StoredMessage, statuses []gateway.RecipientStatus, m *amtp.Message) (gateway.ImmediateResult, error) {
	var ir gateway.ImmediateResult
	// A redelivered task (crash after the attempt, an SQS duplicate, the
	// Immediate Path having settled it) must not deliver again.
	pending, prevAttempts := pendingRecipients(t.Recipients, statuses)
	if len(pending) == 0 {
		return ir, w.d.Queue.Ack(ctx, t)
	}
	if t.Attempt < prevAttempts {
		// A stale copy of a task whose retry is already scheduled (an
		// at-least-once queue can hold two copies, for instance after the
		// Immediate Path scheduled its retry): put it back at that time
		// rather than attempting early and starting a second chain.
		if next := earliestRetry(pending, statuses); next.After(w.cfg.Now()) {
			t.Attempt = prevAttempts
			return ir, h.queueFailed(w.d.Queue.Retry(ctx, t, next), "reschedule stale copy of "+t.ID)
		}
	}
	attempt := max(t.Attempt, prevAttempts) + 1
	if m == nil {
		var err error
		if m, err = amtp.Parse(sm.Raw, amtp.Limits{MaxRecipients: 1 << 16}); err != nil {
			// Stored messages were validated on the way in; this is corruption.
			return ir, fmt.Errorf("stored message %s does not parse: %w", t.MessageID, err)
		}
	}

	var o outcome
	switch t.Kind {
	case gateway.TaskLocal:
		o = w.deliverLocal(ctx, m, sm, pending[0], attempt)
	case gateway.TaskRemote:
		o = w.deliverRemote(ctx, m, t.Domain, pending)
	default:
		o = settledAll(pending, amtp.CodeTemporaryFailure, "unknown task kind "+string(t.Kind))
	}
	return w.finish(ctx, job{task: t, msg: m, acceptedAt: sm.AcceptedAt, pending: pending, attempt: attempt, prior: statuses}, o, h)
}

// workflowTask hands a workflow task to the driver and settles it with
// the queue by the driver's answer.
func (w *Worker) workflowTask(ctx context.Context, t gateway.Task, h holder) error {
	if w.d.Workflows == nil {
		now := w.cfg.Now().UTC()
		w.log.ErrorContext(ctx, "workflow task and no workflow driver configured", "task", t.ID)
		dl := gateway.DeadLetter{MessageID: t.MessageID, TaskID: t.ID, FailureReason: string(amtp.CodeTemporaryFailure), ErrorMessage: "no workflow driver configured", Attempts: t.Attempt, FirstAttempt: t.CreatedAt, LastAttempt: now, DLQTimestamp: now}
		return w.d.Queue.DeadLetter(ctx, t, dl)
	}
	again, err := w.d.Workflows.HandleWorkflowTask(ctx, t)
	if err != nil {
		attempt := t.Attempt + 1
		next := w.cfg.Now().Add(w.cfg.Retry.Delay(attempt))
		if !t.CreatedAt.IsZero() && next.Sub(t.CreatedAt) > w.cfg.Retry.Window {
			now := w.cfg.Now().UTC()
			w.log.ErrorContext(ctx, "workflow task failed for the whole retry window; giving up", "task", t.ID, "kind", string(t.Kind), "attempt", attempt, "err", err)
			dl := gateway.DeadLetter{MessageID: t.MessageID, TaskID: t.ID, FailureReason: string(amtp.CodeTemporaryFailure), ErrorMessage: redact(err), Attempts: attempt, FirstAttempt: t.CreatedAt, LastAttempt: now, DLQTimestamp: now}
			return w.d.Queue.DeadLetter(ctx, t, dl)
		}
		w.log.WarnContext(ctx, "workflow task failed; will retry", "task", t.ID, "kind", string(t.Kind), "attempt", attempt, "err", err)
		t.Attempt = attempt
		return h.queueFailed(w.d.Queue.Retry(ctx, t, next), "schedule retry of "+t.ID)
	}
	if !again.IsZero() {
		return h.queueFailed(w.d.Queue.Retry(ctx, t, again), "reschedule "+t.ID)
	}
	return h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
}

// FailPoison settles a task that the queue gave up on without our worker
// ever settling it (SQS moved it to the dead-letter queue after it crashed
// its worker too often): its pending recipients fail and the sender gets a
// report. A task already settled is left alone.
func (w *Worker) FailPoison(ctx context.Context, t gateway.Task, reason string) error {
	ctx = logctx.WithMessageID(ctx, t.MessageID)
	if t.Kind == gateway.TaskNotify {
		w.log.WarnContext(ctx, "notification given up by the queue", "task", t.ID, "reason", reason)
		return nil
	}
	if t.Kind.IsWorkflow() {
		// Nobody to report to: the workflow's deadline still ends it.
		w.log.ErrorContext(ctx, "workflow task given up by the queue", "task", t.ID, "kind", string(t.Kind), "reason", reason)
		return nil
	}
	sm, err := w.d.Messages.GetMessage(ctx, t.MessageID)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load message %s: %w", t.MessageID, err)
	}
	statuses, err := w.d.Messages.GetStatuses(ctx, t.MessageID)
	if err != nil {
		return fmt.Errorf("load status %s: %w", t.MessageID, err)
	}
	pending, prevAttempts := pendingRecipients(t.Recipients, statuses)
	if len(pending) == 0 {
		return nil
	}
	m, err := amtp.Parse(sm.Raw, amtp.Limits{MaxRecipients: 1 << 16})
	if err != nil {
		return fmt.Errorf("stored message %s does not parse: %w", t.MessageID, err)
	}
	o := settledAll(pending, amtp.CodeTemporaryFailure, reason)
	j := job{task: t, msg: m, acceptedAt: sm.AcceptedAt, pending: pending, attempt: max(t.Attempt, prevAttempts), prior: statuses}
	now := w.stamp()
	s, err := w.recordSettled(ctx, j, o, now)
	if err != nil {
		return err
	}
	// Every pending recipient failed; the queue already gave the task up,
	// so there is nothing to settle with it.
	w.failedForGood(ctx, j, s, o.detail, now)
	return nil
}

// job is one attempt of a task on its pending recipients: what recording
// the attempt's outcome needs.
type job struct {
	task       gateway.Task
	msg        *amtp.Message
	acceptedAt time.Time // the message's acceptance, origin of the delivery latency
	pending    []string
	attempt    int
	// prior are the statuses before the attempt: each recipient's
	// history goes on with the attempt's outcome.
	prior []gateway.RecipientStatus
}

// holder is who holds a task while it is attempted, which decides what a
// queue that refuses to settle the task means.
type holder int

const (
	// queueWorker holds the task's lease (Process): a settlement the queue
	// refused is an error, and the task comes back to be settled again.
	queueWorker holder = iota
	// submitter is the Immediate Path (DeliverNow): the queue holds the
	// task back past the window, so a settlement it refused is left to the
	// queue worker that receives the task then.
	submitter
)

// queueFailed is what the error of a queue operation (what, for the
// message) means to the holder's caller.
func (h holder) queueFailed(err error, what string) error {
	if err == nil || h == submitter {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// settled is an outcome that settles every pending recipient, as recorded.
type settled struct {
	ir     gateway.ImmediateResult
	ups    []gateway.RecipientStatus
	failed []string
	first  *amtp.Error // the first failure's error; nil when none failed
	acked  bool        // the store's write also acked the task
}

// finish records an attempt's outcome and settles the task with the
// queue: a transient failure is retried while the retry window lasts, and
// any other outcome is acked when every recipient was delivered and
// dead-lettered otherwise.
func (w *Worker) finish(ctx context.Context, j job, o outcome, h holder) (gateway.ImmediateResult, error) {
	now := w.stamp()
	if o.transient != nil {
		next := now.Add(max(w.cfg.Retry.Delay(j.attempt), o.retryAfter))
		if t := j.task; t.CreatedAt.IsZero() || next.Sub(t.CreatedAt) <= w.cfg.Retry.Window {
			return w.retryLater(ctx, j, o, now, next, h)
		}
		o = w.fallBack(ctx, j, o)
	}
	s, err := w.recordSettled(ctx, j, o, now)
	if err != nil {
		return s.ir, err
	}
	t := j.task
	if len(s.failed) == 0 {
		// Typed attributes: the same line without boxing each value (this
		// runs for every delivered message).
		w.log.LogAttrs(ctx, slog.LevelInfo, "delivered", slog.String("task", t.ID), slog.Int("attempt", j.attempt), slog.String("via", s.ups[0].Via))
		if s.acked {
			return s.ir, nil
		}
		return s.ir, h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
	}
	w.failedForGood(ctx, j, s, o.detail, now)
	dl := gateway.DeadLetter{MessageID: t.MessageID, TaskID: t.ID, Recipients: s.failed, FailureReason: string(s.first.Code), ErrorMessage: s.first.Message, Attempts: j.attempt, FirstAttempt: t.CreatedAt, LastAttempt: now, DLQTimestamp: now}
	return s.ir, h.queueFailed(w.d.Queue.DeadLetter(ctx, t, dl), "dead-letter "+t.ID)
}

// stamp is the time of recording an outcome: AMTP times are UTC
// milliseconds.
func (w *Worker) stamp() time.Time {
	return w.cfg.Now().UTC().Truncate(time.Millisecond)
}

// giveUp makes the last transient error of a task out of time final.
func giveUp(j job, o outcome) outcome {
	final := settledAll(j.pending, o.transient.Code, "gave up after "+fmt.Sprint(j.attempt)+" attempts: "+o.transient.Message)
	final.detail = o.detail
	return final
}

// retryLater records that the pending recipients will be tried again at
// next and schedules the task then.
func (w *Worker) retryLater(ctx context.Context, j job, o outcome, now, next time.Time, h holder) (gateway.ImmediateResult, error) {
	var ir gateway.ImmediateResult
	t := j.task
	ups := make([]gateway.RecipientStatus, 0, len(j.pending))
	for _, r := range j.pending {
		n := next
		ups = append(ups, gateway.RecipientStatus{Address: r, Status: gateway.StateRetrying, Attempts: j.attempt, UpdatedAt: now, NextRetry: &n, ErrorCode: string(o.transient.Code), ErrorMessage: o.transient.Message}.After(j.prior))
	}
	t.Attempt = j.attempt
	if err := w.scheduleRetry(ctx, t, ups, next, h); err != nil {
		return ir, err
	}
	ir.Recorded = ups
	// Counted once the retry is scheduled: a failed Retry returns the task
	// to the queue, and its next copy finds the retry already recorded and
	// only reschedules it.
	w.cfg.Metrics.DeliveryRetried(ctx, t.MessageID, j.attempt, string(o.transient.Code))
	w.notifyOutcome(ctx, j.msg, t.MessageID, ups)
	w.log.InfoContext(ctx, "delivery will be retried", "message_id", t.MessageID, "recipients", j.pending, "task", t.ID, "attempt", j.attempt, "next_retry", next,
		"error_code", string(o.transient.Code), "error", o.transient.Message, "detail", o.detail)
	return ir, nil
}

// scheduleRetry stores the retrying statuses and puts t back in the queue
// until next: in one write when the queue also stores the statuses.
func (w *Worker) scheduleRetry(ctx context.Context, t gateway.Task, ups []gateway.RecipientStatus, next time.Time, h holder) error {
	if w.settler != nil {
		if err := w.settler.UpdateAndRetry(ctx, t.MessageID, ups, t, next); err != nil {
			return fmt.Errorf("record retry of %s: %w", t.ID, err)
		}
		return nil
	}
	if err := w.d.Messages.UpdateStatuses(ctx, t.MessageID, ups); err != nil {
		return fmt.Errorf("record retry of %s: %w", t.ID, err)
	}
	return h.queueFailed(w.d.Queue.Retry(ctx, t, next), "schedule retry of "+t.ID)
}

// recordSettled records an outcome that settles every pending recipient
// and publishes its metrics; it leaves the task in the queue unless the
// store's write acks it too. A workflow this gateway runs hears first of
// a participant it cannot reach: should telling it fail, the task comes
// back with the recipient still pending and it is told again.
func (w *Worker) recordSettled(ctx context.Context, j job, o outcome, now time.Time) (settled, error) {
	s := w.settledStatuses(j, o, now)
	if len(s.failed) > 0 && len(j.msg.Coordination) > 0 && j.msg.SenderAddress().Domain == w.cfg.Domain && w.d.Workflows != nil {
		if err := w.d.Workflows.WorkflowDeliveryFailed(ctx, j.msg.MessageID, s.failed, s.first.Code, s.first.Message); err != nil {
			return s, fmt.Errorf("tell workflow %s of failed delivery: %w", j.msg.MessageID, err)
		}
	}
	acked, err := w.storeSettled(ctx, j, s)
	if err != nil {
		return s, err
	}
	s.acked = acked
	s.ir.Recorded = s.ups
	// The outcome is durable: count it now. Should the queue settlement
	// that follows fail, the redelivered task finds these recipients
	// settled and counts nothing again.
	w.recordOutcome(ctx, j.task.MessageID, j.acceptedAt, now, s.ups)
	w.notifyOutcome(ctx, j.msg, j.task.MessageID, s.ups)
	return s, nil
}

// settledStatuses are the final statuses of the pending recipients by o;
// a recipient o does not report on has failed.
func (w *Worker) settledStatuses(j job, o outcome, now time.Time) settled {
	s := settled{ups: make([]gateway.RecipientStatus, 0, len(j.pending))}
	for _, r := range j.pending {
		res, ok := o.results[r]
		if !ok {
			res = result{err: amtp.Errorf(amtp.CodeRecipientUnavailable, "the destination did not report on this recipient")}
		}
		st := gateway.RecipientStatus{Address: r, Attempts: j.attempt, UpdatedAt: now}
		if res.delivered {
			n := now
			st.Status, st.DeliveredAt, st.Via = gateway.StateDelivered, &n, res.via
			if len(res.reply) > 0 && len(res.reply) <= w.cfg.MaxReplyBytes {
				st.Response = res.reply
				s.ir.Reply = res.reply
			}
			s.ir.Delivered = true
		} else {
			st.Status, st.ErrorCode, st.ErrorMessage = gateway.StateFailed, string(res.err.Code), res.err.Message
			s.failed = append(s.failed, r)
			if s.first == nil {
				s.first = res.err
			}
		}
		s.ups = append(s.ups, st.After(j.prior))
	}
	return s
}

// storeSettled writes the settled statuses: a message delivered to an
// inbox goes there, and an outcome without failures is acked in the same
// write when the queue also stores the statuses (acked reports so).
func (w *Worker) storeSettled(ctx context.Context, j job, s settled) (acked bool, err error) {
	t := j.task
	switch {
	case t.Kind == gateway.TaskLocal && s.ups[0].Status == gateway.StateDelivered && s.ups[0].Via == "inbox":
		if err := w.d.Inbox.DeliverToInbox(ctx, j.pending[0], t.MessageID, s.ups[0]); err != nil {
			return false, fmt.Errorf("deliver %s to inbox of %s: %w", t.MessageID, j.pending[0], err)
		}
		return false, nil
	case len(s.failed) == 0 && w.settler != nil:
		if err := w.settler.UpdateAndAck(ctx, t.MessageID, s.ups, t); err != nil {
			return false, fmt.Errorf("record outcome of %s: %w", t.ID, err)
		}
		return true, nil
	}
	if err := w.d.Messages.UpdateStatuses(ctx, t.MessageID, s.ups); err != nil {
		return false, fmt.Errorf("record outcome of %s: %w", t.ID, err)
	}
	return false, nil
}

// failedForGood logs the recipients of s that failed for good and sends
// the sender a failure report.
func (w *Worker) failedForGood(ctx context.Context, j job, s settled, detail string, now time.Time) {
	t := j.task
	w.log.WarnContext(ctx, "delivery failed", "message_id", t.MessageID, "failed", s.failed, "task", t.ID, "attempt", j.attempt,
		"error_code", string(s.first.Code), "error", s.first.Message, "detail", detail)
	w.report(ctx, j.msg, t, s.failed, s.first, j.attempt, now)
}

// recordOutcome publishes one event per settled recipient.
func (w *Worker) recordOutcome(ctx context.Context, messageID string, acceptedAt, now time.Time, ups []gateway.RecipientStatus) {
	latency := time.Duration(-1) // unknown without an acceptance time
	if !acceptedAt.IsZero() {
		// Clocks of different hosts may disagree by a little; a delivery
		// is never earlier than its acceptance.
		latency = max(now.Sub(acceptedAt), 0)
	}
	for _, st := range ups {
		switch st.Status {
		case gateway.StateDelivered:
			w.cfg.Metrics.MessageDelivered(ctx, messageID, st.Address, st.Via, latency)
		case gateway.StateFailed:
			w.cfg.Metrics.DeliveryFailed(ctx, messageID, st.Address, st.ErrorCode)
		}
	}
}

// earliestRetry is the soonest next_retry among the pending recipients
// (zero when none has one).
func earliestRetry(pending []string, statuses []gateway.RecipientStatus) time.Time {
	var at time.Time
	for _, s := range statuses {
		if s.NextRetry == nil || s.Status.Terminal() {
			continue
		}
		for _, p := range pending {
			if strings.EqualFold(p, s.Address) && (at.IsZero() || s.NextRetry.Before(at)) {
				at = *s.NextRetry
			}
		}
	}
	return at
}

// pendingRecipients are the task's recipients not yet delivered or failed,
// and the most attempts any of them has had.
func pendingRecipients(rcpts []string, statuses []gateway.RecipientStatus) ([]string, int) {
	by := make(map[string]gateway.RecipientStatus, len(statuses))
	for _, s := range statuses {
		by[strings.ToLower(s.Address)] = s
	}
	var out []string
	most := 0
	for _, r := range rcpts {
		s, ok := by[strings.ToLower(r)]
		if ok && s.Status.Terminal() {
			continue
		}
		if s.Attempts > most {
			most = s.Attempts
		}
		out = append(out, r)
	}
	return out, most
}

// ---- local ----

func (w *Worker) deliverLocal(ctx context.Context, m *amtp.Message, sm *gateway.StoredMessage, rcpt string, attempt int) outcome {
	a, err := amtp.ParseAddress(rcpt)
	if err != nil {
		return settledAll([]string{rcpt}, amtp.CodeInvalidRecipient, err.Error())
	}
	ag, err := w.d.Agents.GetAgent(ctx, a.Key())
	if err != nil && !errors.Is(err, gateway.ErrNotFound) {
		return outcome{transient: amtp.Errorf(amtp.CodeTemporaryFailure, "agent registry unavailable")}
	}
	// An agent registered after the message was accepted is not the one
	// it was accepted for, which was deleted meanwhile: its address was
	// registered again. Both stored times are compared, not this host's
	// clock; the accept raised the message's time to its recipients'
	// registration, so a difference of clocks cannot fail its own agent.
	if err != nil || sm.AcceptedAt.Before(ag.CreatedAt) {
		return settledAll([]string{rcpt}, amtp.CodeAgentUnknown, "no agent "+rcpt+" is registered at this gateway")
	}
	switch ag.DeliveryMode {
	case gateway.ModePull:
		return deliveredAll([]string{rcpt}, "inbox", nil)
	case gateway.ModePush:
		return w.push(ctx, ag, sm, m.MessageID, rcpt)
	}
	return settledAll([]string{rcpt}, amtp.CodeAgentUnknown, "agent "+rcpt+" has no delivery mode")
}

// HeaderSenderVerification tells a push agent how the sender was verified
// (PROTOCOL.md "Domain signatures": the result of draft §9.3.4).
const HeaderSenderVerification = "X-AMTP-Sender-Verification"

// push POSTs the message to a webhook, signed with Standard Webhooks.
func (w *Worker) push(ctx context.Context, ag *gateway.Agent, sm *gateway.StoredMessage, messageID, rcpt string) outcome {
	body := sm.Raw
	now := w.cfg.Now()
	sig, err := SignWebhook(ag.WebhookSecret, messageID, now, body)
	if err != nil {
		o := settledAll([]string{rcpt}, amtp.CodeAuthenticationFailed, "the recipient's webhook secret at this gateway is unusable")
		o.detail = "sign webhook: " + err.Error()
		return o
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ag.WebhookURL, bytes.NewReader(body))
	if err != nil {
		o := settledAll([]string{rcpt}, amtp.CodeRecipientUnavailable, "the recipient's webhook URL is unusable")
		o.detail = "webhook request: " + redact(err)
		return o
	}
	// The agent's own headers first, so that none of ours can be replaced
	// (registration refuses their names too).
	for k, v := range ag.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderWebhookID, messageID)
	req.Header.Set(HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(HeaderWebhookSignature, sig)
	if sm.Verification != nil {
		req.Header.Set(HeaderSenderVerification, string(sm.Verification.Result))
	}
	resp, err := w.d.Client.Do(req)
	if err != nil {
		return w.networkFailure([]string{rcpt}, targetWebhook, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, w.cfg.MaxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return deliveredAll([]string{rcpt}, "webhook", syncReply(data))
	}
	return w.httpFailure([]string{rcpt}, targetWebhook, resp, data)
}

// syncReply extracts {"status":"accepted","response":{…}} from a webhook
// answer; anything else is no reply.
func syncReply(data []byte) json.RawMessage {
	if len(data) == 0 || data[0] != '{' {
		return nil
	}
	var r struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	if json.Unmarshal(data, &r) != nil || r.Status != "accepted" || len(r.Response) == 0 || string(r.Response) == "null" {
		return nil
	}
	// encoding/json keeps a RawMessage's bytes as they came, and the reply
	// is passed on in our own answers: JSON that is not UTF-8 is no reply.
	if !utf8.Valid(r.Response) {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, r.Response) != nil {
		return nil
	}
	return buf.Bytes()
}

// networkFailure classifies an exchange with target that got no HTTP
// answer: a refused address fails for good, anything else is retried.
func (w *Worker) networkFailure(rcpts []string, target string, err error) outcome {
	e, permanent := transportError(target, err)
	if permanent {
		o := settledAll(rcpts, e.Code, e.Message)
		o.detail = redact(err)
		return o
	}
	return outcome{transient: e, detail: redact(err)}
}

// httpFailure classifies a non-2xx answer: 408, 429 and 5xx are retried,
// every other status is final.
// The peer's own error text is passed on, made safe by peerText.
func (w *Worker) httpFailure(rcpts []string, target string, resp *http.Response, body []byte) outcome {
	code := resp.StatusCode
	msg := fmt.Sprintf("%s answered %d %s", target, code, http.StatusText(code))
	if e := peerError(body); e != nil {
		if t := peerText(e.Message); t != "" {
			msg += ": " + t
		}
	}
	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		return outcome{
			transient:  amtp.Errorf(amtp.CodeRecipientUnavailable, "%s", msg),
			retryAfter: retryAfter(resp.Header, w.cfg.Now(), w.cfg.Retry.Max),
		}
	}
	c := amtp.CodeRecipientUnavailable
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		c = amtp.CodeAuthenticationFailed
	case http.StatusNotFound, http.StatusGone:
		c = amtp.CodeRecipientNotFound
	}
	if e := peerError(body); e != nil && e.Code != "" {
		c = e.Code
	}
	return settledAll(rcpts, c, msg)
}

// peerError reads an AMTP error body.
func peerError(body []byte) *amtp.Error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if len(body) == 0 || json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return nil //nolint:nilerr // a body that is no AMTP error names no peer error
	}
	return &amtp.Error{Code: amtp.Code(sanitizeCode(e.Error.Code)), Message: e.Error.Message}
}

// sanitizeCode keeps a peer's error code only if it looks like one.
func sanitizeCode(c string) string {
	if len(c) > 64 {
		return string(amtp.CodeRecipientUnavailable)
	}
	for i := 0; i < len(c); i++ {
		if !(c[i] >= 'A' && c[i] <= 'Z' || c[i] == '_') {
			return string(amtp.CodeRecipientUnavailable)
		}
	}
	return c
}

// redact keeps the query of a URL in err (which may hold a token of the
// webhook's owner) and any password out of logs and dead letters.
// (URL.Redacted hides the password only.)
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
			return ue.Op + " " + u.Redacted() + ": " + ue.Err.Error()
		}
	}
	return err.Error()
}

// ---- remote ----

func (w *Worker) deliverRemote(ctx context.Context, m *amtp.Message, domain string, rcpts []string) outcome {
	if w.d.Discover == nil {
		return outcome{transient: amtp.Errorf(amtp.CodeTemporaryFailure, "discovery is not configured")}
	}
	route, err := w.d.Discover.Discover(ctx, domain)
	if err != nil {
		// The error names our resolver; the sender learns only the kind.
		return outcome{transient: amtp.Errorf(amtp.CodeTemporaryFailure, "the recipient's domain %s could not be looked up in DNS", domain),
			detail: "discover " + domain + ": " + err.Error()}
	}
	if !route.Found && !w.bridges(route) {
		return noRoute(rcpts, domain, route)
	}
	// We never relay, so every message we forward (or bridge to email) was
	// written in our domain and is ours to sign. Anything else means a bug
	// upstream: fail it rather than sign another domain's mail or send it
	// unsigned.
	if sd := m.SenderAddress().Domain; sd != w.cfg.Domain {
		return settledAll(rcpts, amtp.CodeForbidden, fmt.Sprintf("refusing to forward a message from %s: this gateway only forwards mail of %s", sd, w.cfg.Domain))
	}
	fwd, body, failed := w.outboundBody(ctx, m, domain, rcpts)
	if failed != nil {
		return *failed
	}
	// A domain's deliveries share its slots however they reach it: a burst
	// bridged to its mail exchangers floods them as one to its gateway would.
	release, busy := w.domains.acquire(ctx, domain)
	if busy != nil {
		return *busy
	}
	defer release()
	if !route.Found {
		return w.bridge(ctx, fwd, body, domain, rcpts)
	}
	if route.MaxSize > 0 && int64(len(body)) > route.MaxSize {
		return settledAll(rcpts, amtp.CodeMessageTooLarge, fmt.Sprintf("message is %d bytes; %s accepts at most %d", len(body), domain, route.MaxSize))
	}
	target, err := messagesURL(route.Gateway)
	if err != nil {
		return settledAll(rcpts, amtp.CodeRecipientNotFound, "gateway URL of "+domain+" is unusable")
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return settledAll(rcpts, amtp.CodeRecipientNotFound, "gateway URL of "+domain+" is unusable")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.d.Client.Do(req)
	if err != nil {
		return w.networkFailure(rcpts, targetGateway, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, w.cfg.MaxResponseBytes))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return w.httpFailure(rcpts, targetGateway, resp, data)
	}
	o := deliveredAll(rcpts, "amtp", nil)
	// The peer may have refused some recipients synchronously (an unknown
	// agent among several); believe it about those.
	var ans struct {
		Recipients []gateway.RecipientStatus `json:"recipients"`
	}
	if json.Unmarshal(data, &ans) == nil {
		for _, r := range ans.Recipients {
			if r.Status != gateway.StateFailed {
				continue
			}
			for _, mine := range rcpts {
				if strings.EqualFold(mine, r.Address) {
					code := sanitizeCode(r.ErrorCode)
					if code == "" {
						code = string(amtp.CodeRecipientUnavailable)
					}
					o.results[mine] = result{err: &amtp.Error{Code: amtp.Code(code), Message: domain + " refused: " + peerText(r.ErrorMessage)}}
				}
			}
		}
	}
	return o
}

// outboundBody is the message for rcpts as it leaves this gateway: one
// POST (or email) per domain carries just that domain's recipients, signed
// last, over exactly the bytes that go on the wire. A failure to sign is
// the outcome instead.
func (w *Worker) outboundBody(ctx context.Context, m *amtp.Message, domain string, rcpts []string) (*amtp.Message, []byte, *outcome) {
	fwd := *m
	fwd.Recipients = rcpts
	body := fwd.AppendJSON(make([]byte, 0, 512+len(m.Payload)))
	if w.d.Signer == nil {
		return &fwd, body, nil
	}
	signed, err := w.d.Signer.SignMessage(ctx, body)
	if err != nil {
		// Logged here, at error level, as the operator has to act.
		w.log.ErrorContext(ctx, "cannot sign outbound message", "domain", domain, "err", err)
		return nil, nil, &outcome{transient: amtp.Errorf(amtp.CodeTemporaryFailure, "this gateway could not sign the message")}
	}
	return &fwd, signed, nil
}

// noRoute fails the recipients of a domain without a usable AMTP record.
// The record is public, but the reason the parser gave is ours (package
// names, quoting): it goes to the log.
func noRoute(rcpts []string, domain string, route gateway.Route) outcome {
	if route.Invalid != "" {
		o := settledAll(rcpts, amtp.CodeRecipientNotFound, "the recipient's domain "+domain+" publishes an unusable AMTP record")
		o.detail = route.Invalid
		return o
	}
	why := "the recipient's domain " + domain + " has no AMTP gateway"
	if len(route.MX) > 0 {
		why += ", and this gateway does not bridge to email"
	}
	return settledAll(rcpts, amtp.CodeRecipientNotFound, why)
}

func messagesURL(gw string) (string, error) {
	u, err := url.Parse(gw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("bad gateway URL")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/messages"
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// ---- failure reports ----

// IsReport reports whether m is a delivery failure report, about which no
// further report is ever sent.
func IsReport(m *amtp.Message) bool {
	if strings.EqualFold(m.SenderAddress().Local, "postmaster") {
		return true
	}
	return m.Headers["amtp-report"] == "delivery_failure"
}

func (w *Worker) report(ctx context.Context, orig *amtp.Message, t gateway.Task, failed []string, cause *amtp.Error, attempts int, at time.Time) {
	if w.d.Reporter == nil || IsReport(orig) {
		return
	}
	// Mail from a name the gateway itself sends as (the email bridge's
	// address, for an unproven From) has no agent to tell.
	if from := orig.SenderAddress(); from.Domain == w.cfg.Domain && amtp.IsReservedLocalPart(from.Local) {
		return
	}
	payload, _ := json.Marshal(map[string]any{
		"version":             amtp.Version,
		"message_type":        "delivery_failure",
		"original_message_id": orig.MessageID,
		"failed_recipients":   failed,
		"error_code":          string(cause.Code),
		"error_message":       cause.Message,
		"retry_count":         attempts - 1,
		"final_attempt":       amtp.FormatTime(at),
	})
	// A deterministic key: a re-processed task yields the same report,
	// which the accept path then de-duplicates.
	sum := sha256.Sum256([]byte(t.ID))
	subject := "Delivery failure"
	if orig.Subject != "" {
		subject += ": " + orig.Subject
	}
	subject = amtp.ClipSubject(subject)
	rep := &amtp.Message{
		Version:        amtp.Version,
		IdempotencyKey: "dsn-" + hex.EncodeToString(sum[:16]),
		Sender:         "postmaster@" + w.cfg.Domain,
		Recipients:     []string{orig.Sender},
		Subject:        subject,
		InReplyTo:      orig.MessageID,
		Headers:        map[string]string{"amtp-report": "delivery_failure"},
		Payload:        payload,
	}
	if _, err := w.d.Reporter.SubmitSystem(ctx, rep); err != nil && !amtp.IsCode(err, amtp.CodeIdempotencyConflict) {
		w.log.WarnContext(ctx, "could not send delivery failure report", "message_id", orig.MessageID, "to", orig.Sender, "err", err)
	}
}
