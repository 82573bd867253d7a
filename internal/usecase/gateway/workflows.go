package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
)

// This file drives workflows (docs/workflows.md). internal/core/workflow decides
// everything; the driver stores its States and carries out its Actions.
// Two runtimes share it: in process (the local gateway: sends are delivery
// tasks, the deadline is a queue task due at it), and with a WorkflowRunner
// (Step Functions: each participant step is a task token waiting on the
// delivery queue; the driver hands every decision to the waiting steps).

// WorkflowRunner runs the steps of workflows outside the process. The
// gateway declares the port; internal/adapter/sfn implements it.
type WorkflowRunner interface {
	// Run starts the execution of workflow d.WorkflowID with d, the first
	// round's decision, as input. Starting a workflow that already has
	// its execution is not an error and starts nothing.
	Run(ctx context.Context, d Decision) error
	// Resume ends the step that waits with token and hands it d. A token
	// whose step has already ended (released before, timed out, the
	// execution stopped) is not an error.
	Resume(ctx context.Context, token string, d Decision) error
}

// Decision is what the Go core tells the runner after a change that ends a
// round: whom to ask next, or that the workflow is over. The runner's
// state machine routes on Next, Branch and Status only; it never judges a
// condition itself.
type Decision struct {
	WorkflowID string          `json:"workflow_id"`
	Next       string          `json:"next"` // DecisionAsk or DecisionDone
	Round      int             `json:"round"`
	Ask        []AskItem       `json:"ask"`    // never null: a Map state iterates it
	Branch     string          `json:"branch"` // then | else for a conditional step, "" otherwise
	Status     workflow.Status `json:"status"`
	// TimeoutSeconds bounds each step of the round: the time left until
	// the workflow's deadline, plus a second so that the timeout it
	// triggers finds the deadline passed.
	TimeoutSeconds int `json:"timeout_seconds"`
}

// AskItem is one participant to ask. An object rather than a bare string,
// which Map states handle everywhere (shared/LOCAL-AWS.md).
type AskItem struct {
	Address string `json:"address"`
}

// Decision.Next values.
const (
	DecisionAsk  = "ask"
	DecisionDone = "done"
)

// runnerBook is the driver's bookkeeping in State.Driver when a runner is
// configured. A round is the set of steps started by one decision; every
// step of a round gets the next decision, so that the runner's Map state
// ends with one answer for all of them.
type runnerBook struct {
	Round int `json:"round"`
	// Tokens of the steps of this round, by participant address key.
	Tokens map[string]string `json:"tokens,omitempty"`
	// Decision ended round Round-1; Release are the tokens it is for.
	// Kept so that a driver that died before handing it over, or a step
	// that reports after it was made, can still be given it.
	Decision *Decision `json:"decision,omitempty"`
	Release  []string  `json:"release,omitempty"`
}

func readBook(s workflow.State) (runnerBook, error) {
	var b runnerBook
	if len(s.Driver) == 0 {
		return runnerBook{Round: 1}, nil
	}
	if err := json.Unmarshal(s.Driver, &b); err != nil {
		return b, fmt.Errorf("workflow %s: driver record: %w", s.WorkflowID, err)
	}
	return b, nil
}

func (b runnerBook) encode() json.RawMessage {
	v, _ := json.Marshal(b) // strings, ints and maps of strings always marshal
	return v
}

// maxWorkflowAttempts bounds the read-apply-write loop under contention:
// every participant answering at once is at most DefaultMaxRecipients
// writers, and each loses at most once per other writer's success.
const maxWorkflowAttempts = 2*amtp.DefaultMaxRecipients + 8

// beginWorkflow makes the state of a coordinated message. The state is
// stored by the message's own Accept with one workflow_start task, so the
// workflow begins only once the message is durable, and a crash between
// the two cannot happen.
func (s *Service) beginWorkflow(m *amtp.Message, now time.Time) (*workflow.State, Task, error) {
	if s.workflows == nil {
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

// foldParticipants adds to m's recipients the addresses its sequential or
// conditional coordination names without listing them (the draft's
// examples do so), so that every participant is authorised, policed and
// rate-limited exactly as a recipient is, and has a status.
func (s *Service) foldParticipants(m *amtp.Message) error {
	c, err := amtp.ParseCoordination(m.Coordination)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(m.Recipients))
	for _, r := range m.Recipients {
		seen[amtp.KeyOf(r)] = true
	}
	for _, addr := range workflow.Addresses(c) {
		a, err := amtp.ParseAddress(addr)
		if err != nil || seen[a.Key()] {
			continue // a bad address is Start's to report, with its field
		}
		seen[a.Key()] = true
		m.Recipients = append(m.Recipients, a.String())
	}
	if len(m.Recipients) > s.cfg.MaxRecipients {
		return amtp.FieldError("recipients", "recipients and the participants the coordination names are more than %d", s.cfg.MaxRecipients).WithDetail("max", s.cfg.MaxRecipients)
	}
	return nil
}

// HandleWorkflowTask carries out a workflow task taken from the delivery
// queue. A non-zero time asks for the task back at that time; an error
// asks for a retry with backoff.
func (s *Service) HandleWorkflowTask(ctx context.Context, t Task) (time.Time, error) {
	if s.workflows == nil {
		return time.Time{}, errors.New("this gateway has no workflow store")
	}
	switch t.Kind {
	case TaskWorkflowStart:
		return time.Time{}, s.startWorkflow(ctx, t.MessageID)
	case TaskWorkflowTimeout:
		st, err := s.applyWorkflow(ctx, t.MessageID, workflow.Event{Kind: workflow.EventTimeout, WorkflowID: t.MessageID, At: s.now()})
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

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// startWorkflow asks the first participants and arms the deadline. Run
// again (a redelivered task) it repeats both, which is harmless: delivery
// tasks are skipped for recipients already delivered to, the timer task
// has a fixed id, and the runner starts one execution per workflow.
func (s *Service) startWorkflow(ctx context.Context, id string) error {
	st, err := s.workflows.GetWorkflow(ctx, id)
	if errors.Is(err, ErrNotFound) {
		s.log.WarnContext(ctx, "start of a workflow that is not stored; dropping it", "workflow_id", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("start workflow %s: %w", id, err)
	}
	if st.Status.Terminal() {
		return s.perform(ctx, st, nil, true)
	}
	ask := awaiting(st)
	if s.runner == nil {
		timer := Task{ID: TaskID(id, "workflow-timeout"), MessageID: id, Kind: TaskWorkflowTimeout, NotBefore: st.Deadline, CreatedAt: s.now()}
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

// decision is the runner's view of st after a round ended: ask (when not
// empty) the given participants, or stop.
func (s *Service) decision(st workflow.State, round int, ask []string) Decision {
	d := Decision{WorkflowID: st.WorkflowID, Round: round, Ask: []AskItem{}, Status: st.Status, Next: DecisionDone}
	if !st.Status.Terminal() && len(ask) > 0 {
		d.Next = DecisionAsk
		for _, a := range ask {
			d.Ask = append(d.Ask, AskItem{Address: a})
		}
		// Asking a branch's participants: the condition of this step has
		// been decided. (Asking the next condition's participant: not yet.)
		if st.Type == amtp.CoordinationConditional && st.Step < len(st.Branches) {
			d.Branch = st.Branches[st.Step]
		}
	}
	left := st.Deadline.Sub(s.now())
	d.TimeoutSeconds = max(int(math.Ceil(left.Seconds())), 0) + 1
	return d
}

// applyWorkflow applies e to the stored workflow and carries out what it
// asks for. It retries on write conflicts (concurrent replies) and
// returns the state it ended with. When Apply ignores the event (a
// duplicate, a late timer) the state's last actions are performed again:
// the driver that stored them may have died before it could.
func (s *Service) applyWorkflow(ctx context.Context, id string, e workflow.Event) (workflow.State, error) {
	for range maxWorkflowAttempts {
		cur, err := s.workflows.GetWorkflow(ctx, id)
		if err != nil {
			return cur, fmt.Errorf("workflow %s: %w", id, err)
		}
		next, actions, err := workflow.Apply(cur, e)
		if err != nil {
			if errors.Is(err, workflow.ErrIgnored) {
				if perr := s.perform(ctx, cur, nil, true); perr != nil {
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
		err = s.workflows.UpdateWorkflow(ctx, next, cur.Version)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return cur, fmt.Errorf("workflow %s: store: %w", id, err)
		}
		s.log.InfoContext(ctx, "workflow event applied", "workflow_id", id, "event", string(e.Kind), "from", e.From, "status", string(next.Status), "actions", len(actions))
		return next, s.perform(ctx, next, actions, false)
	}
	return workflow.State{}, fmt.Errorf("workflow %s: gave up after %d conflicting writes", id, maxWorkflowAttempts)
}

// decide updates the runner's bookkeeping for a change: a change that asks
// someone or ends the workflow ends the round, and its decision goes to
// every step of the round.
func (s *Service) decide(cur, next workflow.State, actions []workflow.Action) (json.RawMessage, error) {
	var ask []string
	ends := false
	for _, a := range actions {
		switch a.Kind {
		case workflow.ActionSend:
			ask = append(ask, a.To...)
			ends = true
		case workflow.ActionResult:
			ends = true
		}
	}
	if !ends {
		return cur.Driver, nil
	}
	book, err := readBook(cur)
	if err != nil {
		return nil, err
	}
	d := s.decision(next, book.Round+1, ask)
	release := make([]string, 0, len(book.Tokens))
	for _, tok := range book.Tokens {
		release = append(release, tok)
	}
	return runnerBook{Round: book.Round + 1, Decision: &d, Release: release}.encode(), nil
}

// perform carries out the actions of a stored change. With repair set (no
// actions: Apply ignored an event) it redoes what the state implies: ask
// whoever is awaiting, hand over the last decision, send the result.
func (s *Service) perform(ctx context.Context, st workflow.State, actions []workflow.Action, repair bool) error {
	result := repair && st.Status.Terminal()
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
		if repair || len(actions) > 0 {
			if err := s.release(ctx, st); err != nil {
				return err
			}
		}
	} else {
		if repair && !st.Status.Terminal() {
			ask = awaiting(st)
		}
		if err := s.sendWorkflow(ctx, st, ask); err != nil {
			return err
		}
	}
	if !result {
		return nil
	}
	msg, err := workflow.ResultMessage(st, s.cfg.Domain, st.UpdatedAt)
	if err != nil {
		return err
	}
	// The result's id and key derive from the workflow, so a repeated
	// submission is answered from the idempotency record. Once that record
	// has expired the store still holds the result under its id, and the
	// conflict says just that: the result was submitted before.
	if _, err := s.SubmitSystem(ctx, msg); err != nil && !amtp.IsCode(err, amtp.CodeIdempotencyConflict) {
		return fmt.Errorf("workflow %s: submit result: %w", st.WorkflowID, err)
	}
	return nil
}

// release hands the runner the last decision for every step it is for.
func (s *Service) release(ctx context.Context, st workflow.State) error {
	book, err := readBook(st)
	if err != nil {
		return err
	}
	if book.Decision == nil {
		return nil
	}
	for _, tok := range book.Release {
		if err := s.runner.Resume(ctx, tok, *book.Decision); err != nil {
			return fmt.Errorf("workflow %s: resume round %d: %w", st.WorkflowID, book.Decision.Round-1, err)
		}
	}
	return nil
}

// workflowStep records the task token of a runner's step waiting for one
// participant, then delivers the coordination message to it. A step that
// reports after its round was decided gets the decision at once.
func (s *Service) workflowStep(ctx context.Context, t Task) error {
	if s.runner == nil {
		return fmt.Errorf("task %s: a workflow step, and no workflow runner is configured", t.ID)
	}
	if t.Token == "" || len(t.Recipients) != 1 {
		return fmt.Errorf("task %s: a workflow step needs a token and one participant", t.ID)
	}
	addr, err := amtp.ParseAddress(t.Recipients[0])
	if err != nil {
		return fmt.Errorf("task %s: participant %q: %w", t.ID, t.Recipients[0], err)
	}
	for range maxWorkflowAttempts {
		st, err := s.workflows.GetWorkflow(ctx, t.MessageID)
		if errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "step of a workflow that is not stored; dropping it", "workflow_id", t.MessageID)
			return nil
		}
		if err != nil {
			return fmt.Errorf("workflow step %s: %w", t.ID, err)
		}
		book, err := readBook(st)
		if err != nil {
			return err
		}
		if t.Round < book.Round {
			if book.Decision == nil {
				return nil
			}
			return s.runner.Resume(ctx, t.Token, *book.Decision)
		}
		if t.Round > book.Round {
			return fmt.Errorf("task %s: round %d is ahead of the workflow's round %d", t.ID, t.Round, book.Round)
		}
		if book.Tokens[addr.Key()] != t.Token {
			if book.Tokens == nil {
				book.Tokens = map[string]string{}
			}
			book.Tokens[addr.Key()] = t.Token
			next := st
			next.Driver = book.encode()
			next.Version++
			err = s.workflows.UpdateWorkflow(ctx, next, st.Version)
			if errors.Is(err, ErrConflict) {
				continue
			}
			if err != nil {
				return fmt.Errorf("workflow step %s: store token: %w", t.ID, err)
			}
			st = next
		}
		// Only after the token is stored: the participant's answer must
		// find the step it completes.
		for _, p := range st.Participants {
			if strings.EqualFold(p.Address, addr.String()) && p.Status == workflow.ParticipantAwaiting {
				return s.sendWorkflow(ctx, st, []string{p.Address})
			}
		}
		return nil
	}
	return fmt.Errorf("workflow step %s: gave up after %d conflicting writes", t.ID, maxWorkflowAttempts)
}

// sendWorkflow delivers the coordination message to participants: into
// the inbox of a pull agent, by a delivery task otherwise. One task per
// participant (also per remote one), with an id of its own, so that asking
// a second participant of a domain never collides with the first one's
// task still in the queue.
func (s *Service) sendWorkflow(ctx context.Context, st workflow.State, to []string) error {
	if len(to) == 0 {
		return nil
	}
	id := st.WorkflowID
	now := s.now()
	var (
		tasks   []Task
		unknown []string
		gone    []RecipientStatus
	)
	for _, raw := range to {
		a, err := amtp.ParseAddress(raw)
		if err != nil {
			return fmt.Errorf("workflow %s: participant %q: %w", id, raw, err)
		}
		if !s.isLocal(a) {
			tasks = append(tasks, Task{ID: TaskID(id, "@"+a.Domain+"/"+a.Key()), MessageID: id, Kind: TaskRemote, Recipients: []string{a.String()}, Domain: a.Domain, CreatedAt: now})
			continue
		}
		ag, err := s.agents.GetAgent(ctx, a.Key())
		switch {
		case errors.Is(err, ErrNotFound):
			unknown = append(unknown, a.String())
		case err != nil:
			return fmt.Errorf("workflow %s: look up %s: %w", id, a, err)
		case predates(st.CreatedAt, ag):
			// The participant was deleted, and its address registered
			// again, since the workflow started: the new agent is not it.
			unknown = append(unknown, a.String())
			gone = append(gone, RecipientStatus{Address: a.String(), Status: StateFailed, Attempts: 1, UpdatedAt: now,
				ErrorCode: string(amtp.CodeAgentUnknown), ErrorMessage: "no agent " + a.String() + " is registered at this gateway"})
		case ag.DeliveryMode == ModePull:
			st := RecipientStatus{Address: a.String(), Status: StateDelivered, Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "inbox"}
			if err := s.inbox.DeliverToInbox(ctx, a.Key(), id, st); err != nil {
				return fmt.Errorf("workflow %s: deliver to the inbox of %s: %w", id, a, err)
			}
			s.cfg.Metrics.MessageDelivered(ctx, id, a.String(), "inbox", 0)
		default:
			tasks = append(tasks, Task{ID: TaskID(id, a.Key()), MessageID: id, Kind: TaskLocal, Recipients: []string{a.String()}, CreatedAt: now})
		}
	}
	if len(tasks) > 0 {
		if err := s.queue.Enqueue(ctx, tasks...); err != nil {
			return fmt.Errorf("workflow %s: enqueue %d deliveries: %w", id, len(tasks), err)
		}
	}
	// The accept failed the recipients it found no agent for; those whose
	// agent was replaced since fail now. The workflow learns of both as a
	// delivery failure, as it would from a worker.
	if len(gone) > 0 {
		if err := s.messages.UpdateStatuses(ctx, id, gone); err != nil {
			return fmt.Errorf("workflow %s: record %d replaced participants: %w", id, len(gone), err)
		}
	}
	for _, r := range unknown {
		if err := s.WorkflowDeliveryFailed(ctx, id, []string{r}, amtp.CodeAgentUnknown, "no agent "+r+" is registered at this gateway"); err != nil {
			return err
		}
	}
	return nil
}

// WorkflowDeliveryFailed tells the workflow id that its message could not
// be delivered to recipients, for good. Recipients that are not
// participants, or no longer waiting, change nothing.
func (s *Service) WorkflowDeliveryFailed(ctx context.Context, id string, recipients []string, code amtp.Code, reason string) error {
	if s.workflows == nil {
		return nil
	}
	for _, r := range recipients {
		_, err := s.applyWorkflow(ctx, id, workflow.DeliveryFailedEvent(id, r, code, reason, s.now()))
		switch {
		case err == nil, errors.Is(err, workflow.ErrIgnored), errors.Is(err, ErrNotFound),
			errors.Is(err, workflow.ErrNotParticipant), errors.Is(err, workflow.ErrNotAsked):
		default:
			return fmt.Errorf("workflow %s: delivery failure of %s: %w", id, r, err)
		}
	}
	return nil
}

// workflowReply applies a reply to a workflow this gateway runs, before the
// reply itself is accepted: a refused reply (not a participant) is refused
// whole, and an accepted one has been counted before its sender hears 202.
// Messages that merely look like replies (to a workflow that is not ours,
// or not addressed to its initiator, or from an agent registered since the
// workflow began; since is the sending agent's CreatedAt, zero for other
// senders) are ordinary mail.
func (s *Service) workflowReply(ctx context.Context, m *amtp.Message, now, since time.Time) error {
	if s.workflows == nil || (m.WorkflowID == "" && m.InReplyTo == "") ||
		(m.ResponseType != amtp.ResponseWorkflowResponse && m.ResponseType != amtp.ResponseWorkflowError) {
		return nil
	}
	st, err := s.correlate(ctx, m)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return s.unavailable("correlate reply", err)
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
	return s.unavailable("apply reply", err)
}

// correlate finds the workflow a reply answers: by its workflow_id, else
// by in_reply_to (PROTOCOL.md "Message fields").
func (s *Service) correlate(ctx context.Context, m *amtp.Message) (workflow.State, error) {
	for _, id := range []string{m.WorkflowID, m.InReplyTo} {
		if id == "" {
			continue
		}
		if st, err := s.workflows.GetWorkflow(ctx, id); !errors.Is(err, ErrNotFound) {
			return st, err
		}
	}
	return workflow.State{}, ErrNotFound
}

// WorkflowView is GET /v1/workflows/{id}: the initiator and the admin may
// read a workflow; anyone else gets 404, so ids cannot be probed.
func (s *Service) WorkflowView(ctx context.Context, p Principal, id string) (*workflow.View, error) {
	if p.Kind == Anonymous {
		return nil, amtp.Errorf(amtp.CodeAuthenticationRequired, "reading a workflow needs the initiator's key or the admin key")
	}
	notFound := amtp.Errorf(amtp.CodeNotFound, "no workflow %q", id)
	id = amtp.NormalizeMessageID(id) // ids compare case-insensitively
	if s.workflows == nil || !amtp.ValidMessageID(id) {
		return nil, notFound
	}
	st, err := s.workflows.GetWorkflow(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, s.unavailable("read workflow", err)
	}
	// An agent registered at the initiator's address since the workflow
	// began is not its initiator (predates).
	if p.Kind == AgentCaller && (!strings.EqualFold(p.Agent.Address, st.Initiator) || predates(st.CreatedAt, p.Agent)) {
		return nil, notFound
	}
	v := st.View()
	return &v, nil
}
