package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
)

// Workflows owns coordinated workflows (docs/workflows.md): it begins one
// with the message that asks for it, counts replies, drives it from the
// workflow tasks of the delivery queue, hears of participants that cannot
// be reached, submits its result, and shows it to its initiator.
// internal/core/workflow decides everything; the driver stores its States
// and carries out its Actions. Two runtimes share it: in process (the
// local gateway: sends are delivery tasks, the deadline is a queue task
// due at it), and with a WorkflowRunner (Step Functions: each participant
// step is a task token waiting on the delivery queue; the driver hands
// every decision to the waiting steps, workflowrunner.go).
type Workflows struct {
	store    WorkflowStore  // nil: this gateway runs no workflows
	runner   WorkflowRunner // nil: steps run in process
	queue    taskEnqueuer
	inbox    inboxWriter
	agents   agentReader
	statuses statusWriter
	results  systemSubmitter
	metrics  Metrics
	notify   *Notifier // tells subscribers of a workflow's end
	site     site
	clock    clock
	log      opsLog
}

// taskEnqueuer is what Workflows needs of the TaskQueue.
type taskEnqueuer interface {
	Enqueue(ctx context.Context, tasks ...Task) error
}

// inboxWriter is what Workflows needs of the InboxStore.
type inboxWriter interface {
	DeliverToInbox(ctx context.Context, recipient string, messageID string, status RecipientStatus) error
}

// statusWriter is what Workflows needs of the MessageStore.
type statusWriter interface {
	UpdateStatuses(ctx context.Context, id string, updates []RecipientStatus) error
}

// systemSubmitter accepts the mail the gateway writes itself (the intake).
type systemSubmitter interface {
	SubmitSystem(ctx context.Context, m *amtp.Message) (*AcceptResult, error)
}

// maxWorkflowAttempts bounds the read-apply-write loop under contention:
// every participant answering at once is at most DefaultMaxRecipients
// writers, and each loses at most once per other writer's success.
const maxWorkflowAttempts = 2*amtp.DefaultMaxRecipients + 8

// begin makes the state of a coordinated message. The state is
// stored by the message's own Accept with one workflow_start task, so the
// workflow begins only once the message is durable, and a crash between
// the two cannot happen.
func (s *Workflows) begin(m *amtp.Message, now time.Time) (*workflow.State, Task, error) {
	if s.store == nil {
		return nil, Task{}, amtp.Errorf(amtp.CodeCoordinationFailed, "this gateway does not run workflows").WithDetail("field", "coordination")
	}
	st, _, err := workflow.Start(m, now)
	if err != nil {
		return nil, Task{}, err
	}
	if s.runner != nil {
		st.Driver = runnerBook{Round: 1}.encode()
	}
	t := Task{ID: TaskID(st.WorkflowID, "workflow-start"), MessageID: st.WorkflowID, Kind: TaskWorkflowStart, CreatedAt: now}
	return &st, t, nil
}

// HandleWorkflowTask carries out a workflow task taken from the delivery
// queue. A non-zero time asks for the task back at that time; an error
// asks for a retry with backoff.
func (s *Workflows) HandleWorkflowTask(ctx context.Context, t Task) (time.Time, error) {
	if s.store == nil {
		return time.Time{}, errors.New("this gateway has no workflow store")
	}
	switch t.Kind {
	case TaskWorkflowStart:
		return time.Time{}, s.startWorkflow(ctx, t.MessageID)
	case TaskWorkflowTimeout:
		st, err := s.applyWorkflow(ctx, t.MessageID, workflow.Event{Kind: workflow.EventTimeout, WorkflowID: t.MessageID, At: s.clock.stamp()})
		switch {
		case errors.Is(err, workflow.ErrEarlyTimeout):
			// A timer that fired early (another host's clock, SQS
			// rounding): come back at the deadline.
			return st.Deadline, nil
		case errors.Is(err, workflow.ErrIgnored), errors.Is(err, ErrNotFound):
			return time.Time{}, nil
		}
		return time.Time{}, err
	case TaskWorkflowStep:
		return time.Time{}, s.workflowStep(ctx, t)
	}
	return time.Time{}, fmt.Errorf("task %s: %q is not a workflow task", t.ID, t.Kind)
}

// startWorkflow asks the first participants and arms the deadline. Run
// again (a redelivered task) it repeats both, which is harmless: delivery
// tasks are skipped for recipients already delivered to, the timer task
// has a fixed id, and the runner starts one execution per workflow.
func (s *Workflows) startWorkflow(ctx context.Context, id string) error {
	st, err := s.store.GetWorkflow(ctx, id)
	if errors.Is(err, ErrNotFound) {
		s.log.WarnContext(ctx, "start of a workflow that is not stored; dropping it", "workflow_id", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("start workflow %s: %w", id, err)
	}
	if st.Status.Terminal() {
		return s.repair(ctx, st)
	}
	ask := awaiting(st)
	if s.runner == nil {
		timer := Task{ID: TaskID(id, "workflow-timeout"), MessageID: id, Kind: TaskWorkflowTimeout, NotBefore: st.Deadline, CreatedAt: s.clock.stamp()}
		if err := s.queue.Enqueue(ctx, timer); err != nil {
			return fmt.Errorf("start workflow %s: arm the deadline: %w", id, err)
		}
		return s.sendWorkflow(ctx, st, ask)
	}
	book, err := readBook(st)
	if err != nil {
		return err
	}
	d := s.decision(st, book.Round, ask)
	if err := s.runner.Run(ctx, d); err != nil {
		return fmt.Errorf("start workflow %s: run: %w", id, err)
	}
	s.log.InfoContext(ctx, "workflow started", "workflow_id", id, "type", st.Type, "asked", len(ask))
	return nil
}

// awaiting lists the participants that have been sent the message and not
// answered: at the start, the ones the first actions asked.
func awaiting(st workflow.State) []string {
	var out []string
	for _, p := range st.Participants {
		if p.Status == workflow.ParticipantAwaiting {
			out = append(out, p.Address)
		}
	}
	return out
}

// applyWorkflow applies e to the stored workflow and carries out what it
// asks for. It retries on write conflicts (concurrent replies) and
// returns the state it ended with. When Apply ignores the event (a
// duplicate, a late timer) the state's last actions are performed again:
// the driver that stored them may have died before it could.
func (s *Workflows) applyWorkflow(ctx context.Context, id string, e workflow.Event) (workflow.State, error) {
	for range maxWorkflowAttempts {
		cur, err := s.store.GetWorkflow(ctx, id)
		if err != nil {
			return cur, fmt.Errorf("workflow %s: %w", id, err)
		}
		next, actions, err := workflow.Apply(cur, e)
		if err != nil {
			if errors.Is(err, workflow.ErrIgnored) {
				if perr := s.repair(ctx, cur); perr != nil {
					return cur, perr
				}
			}
			return cur, err
		}
		if s.runner != nil {
			if next.Driver, err = s.decide(cur, next, actions); err != nil {
				return cur, err
			}
		}
		err = s.store.UpdateWorkflow(ctx, next, cur.Version)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return cur, fmt.Errorf("workflow %s: store: %w", id, err)
		}
		s.log.InfoContext(ctx, "workflow event applied", "workflow_id", id, "event", string(e.Kind), "from", e.From, "status", string(next.Status), "actions", len(actions))
		return next, s.perform(ctx, next, actions)
	}
	return workflow.State{}, fmt.Errorf("workflow %s: gave up after %d conflicting writes", id, maxWorkflowAttempts)
}

// perform carries out the actions of a stored change: ask the
// participants they name (or hand the runner its decision), and submit
// the result when the workflow ended.
func (s *Workflows) perform(ctx context.Context, st workflow.State, actions []workflow.Action) error {
	result := false
	var ask []string
	for _, a := range actions {
		switch a.Kind {
		case workflow.ActionSend:
			ask = append(ask, a.To...)
		case workflow.ActionResult:
			result = true
		}
	}
	if s.runner != nil {
		if len(actions) > 0 {
			if err := s.release(ctx, st); err != nil {
				return err
			}
		}
	} else if err := s.sendWorkflow(ctx, st, ask); err != nil {
		return err
	}
	if !result {
		return nil
	}
	return s.submitResult(ctx, st)
}

// repair redoes what a stored state implies when Apply ignored an event
// (the driver that stored the state may have died before it acted): ask
// whoever is awaiting, hand over the last decision, send the result.
func (s *Workflows) repair(ctx context.Context, st workflow.State) error {
	if s.runner != nil {
		if err := s.release(ctx, st); err != nil {
			return err
		}
	} else if !st.Status.Terminal() {
		if err := s.sendWorkflow(ctx, st, awaiting(st)); err != nil {
			return err
		}
	}
	if !st.Status.Terminal() {
		return nil
	}
	return s.submitResult(ctx, st)
}

// submitResult submits the result message of an ended workflow to its
// initiator.
func (s *Workflows) submitResult(ctx context.Context, st workflow.State) error {
	msg, err := workflow.ResultMessage(st, s.site.domain, st.UpdatedAt)
	if err != nil {
		return err
	}
	// The result's id and key derive from the workflow, so a repeated
	// submission is answered from the idempotency record. Once that record
	// has expired the store still holds the result under its id, and the
	// conflict says just that: the result was submitted before.
	if _, err := s.results.SubmitSystem(ctx, msg); err != nil && !amtp.IsCode(err, amtp.CodeIdempotencyConflict) {
		return fmt.Errorf("workflow %s: submit result: %w", st.WorkflowID, err)
	}
	// After the result, so that a failure here repeats both: the result's
	// submission is idempotent and the notification's task id is fixed.
	if err := s.notify.Notify(ctx, st.Initiator, WorkflowNotification(st)); err != nil {
		return fmt.Errorf("workflow %s: %w", st.WorkflowID, err)
	}
	return nil
}

// WorkflowDeliveryFailed tells the workflow id that its message could not
// be delivered to recipients, for good. Recipients that are not
// participants, or no longer waiting, change nothing.
func (s *Workflows) WorkflowDeliveryFailed(ctx context.Context, id string, recipients []string, code amtp.Code, reason string) error {
	if s.store == nil {
		return nil
	}
	for _, r := range recipients {
		_, err := s.applyWorkflow(ctx, id, workflow.DeliveryFailedEvent(id, r, code, reason, s.clock.stamp()))
		switch {
		case err == nil, errors.Is(err, workflow.ErrIgnored), errors.Is(err, ErrNotFound),
			errors.Is(err, workflow.ErrNotParticipant), errors.Is(err, workflow.ErrNotAsked):
		default:
			return fmt.Errorf("workflow %s: delivery failure of %s: %w", id, r, err)
		}
	}
	return nil
}

// applyReply applies a reply to a workflow this gateway runs, before the
// reply itself is accepted: a refused reply (not a participant) is refused
// whole, and an accepted one has been counted before its sender hears 202.
// Messages that merely look like replies (to a workflow that is not ours,
// or not addressed to its initiator, or from an agent registered since the
// workflow began; since is the sending agent's CreatedAt, zero for other
// senders) are ordinary mail.
func (s *Workflows) applyReply(ctx context.Context, m *amtp.Message, now, since time.Time) error {
	if s.store == nil || (m.WorkflowID == "" && m.InReplyTo == "") ||
		(m.ResponseType != amtp.ResponseWorkflowResponse && m.ResponseType != amtp.ResponseWorkflowError) {
		return nil
	}
	st, err := s.correlate(ctx, m)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return s.log.unavailable("correlate reply", err)
	}
	if st.CreatedAt.Before(since) {
		// From an agent registered at a participant's address after the
		// workflow began: not the participant it asked (predates).
		return nil
	}
	toInitiator := false
	for _, r := range m.RecipientAddresses() {
		if strings.EqualFold(r.String(), st.Initiator) {
			toInitiator = true
		}
	}
	if !toInitiator {
		return nil
	}
	ev := workflow.ReplyEvent(m, now)
	ev.WorkflowID = st.WorkflowID
	_, err = s.applyWorkflow(ctx, st.WorkflowID, ev)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, workflow.ErrIgnored):
		s.log.InfoContext(ctx, "workflow reply ignored", "workflow_id", st.WorkflowID, "from", m.Sender, "reason", err.Error())
		return nil
	}
	if ae, ok := amtp.AsError(err); ok {
		return ae
	}
	return s.log.unavailable("apply reply", err)
}

// correlate finds the workflow a reply answers: by its workflow_id, else
// by in_reply_to (PROTOCOL.md "Message fields").
func (s *Workflows) correlate(ctx context.Context, m *amtp.Message) (workflow.State, error) {
	for _, id := range []string{m.WorkflowID, m.InReplyTo} {
		if id == "" {
			continue
		}
		if st, err := s.store.GetWorkflow(ctx, id); !errors.Is(err, ErrNotFound) {
			return st, err
		}
	}
	return workflow.State{}, ErrNotFound
}

// WorkflowView is GET /v1/workflows/{id}: the initiator and the admin may
// read a workflow; anyone else gets 404, so ids cannot be probed.
func (s *Workflows) WorkflowView(ctx context.Context, p Principal, id string) (*workflow.View, error) {
	if p.Kind == Anonymous {
		return nil, amtp.Errorf(amtp.CodeAuthenticationRequired, "reading a workflow needs the initiator's key or the admin key")
	}
	notFound := amtp.Errorf(amtp.CodeNotFound, "no workflow %q", id)
	id = amtp.NormalizeMessageID(id) // ids compare case-insensitively
	if s.store == nil || !amtp.ValidMessageID(id) {
		return nil, notFound
	}
	st, err := s.store.GetWorkflow(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, s.log.unavailable("read workflow", err)
	}
	// An agent registered at the initiator's address since the workflow
	// began is not its initiator (predates).
	if p.Kind == AgentCaller && (!strings.EqualFold(p.Agent.Address, st.Initiator) || predates(st.CreatedAt, p.Agent)) {
		return nil, notFound
	}
	v := st.View()
	return &v, nil
}
