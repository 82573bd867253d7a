package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
)

// This file is the part of the workflow driver that hands the rounds of a
// workflow to a WorkflowRunner (Step Functions): each participant step is
// a task token waiting on the delivery queue, and every decision goes to
// the waiting steps.

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

// decision is the runner's view of st after a round ended: ask (when not
// empty) the given participants, or stop.
func (s *Workflows) decision(st workflow.State, round int, ask []string) Decision {
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
	left := st.Deadline.Sub(s.clock.stamp())
	d.TimeoutSeconds = max(int(math.Ceil(left.Seconds())), 0) + 1
	return d
}

// decide updates the runner's bookkeeping for a change: a change that asks
// someone or ends the workflow ends the round, and its decision goes to
// every step of the round.
func (s *Workflows) decide(cur, next workflow.State, actions []workflow.Action) (json.RawMessage, error) {
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

// release hands the runner the last decision for every step it is for.
func (s *Workflows) release(ctx context.Context, st workflow.State) error {
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
func (s *Workflows) workflowStep(ctx context.Context, t Task) error {
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
		st, err := s.store.GetWorkflow(ctx, t.MessageID)
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
		if t.Round != book.Round {
			return s.offRound(ctx, t, book)
		}
		st, err = s.storeToken(ctx, st, book, addr.Key(), t.Token)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("workflow step %s: store token: %w", t.ID, err)
		}
		return s.askStep(ctx, st, addr)
	}
	return fmt.Errorf("workflow step %s: gave up after %d conflicting writes", t.ID, maxWorkflowAttempts)
}

// offRound answers a step of another round than the workflow's: one of an
// earlier round gets that round's decision, one of a later round cannot be.
func (s *Workflows) offRound(ctx context.Context, t Task, book runnerBook) error {
	if t.Round > book.Round {
		return fmt.Errorf("task %s: round %d is ahead of the workflow's round %d", t.ID, t.Round, book.Round)
	}
	if book.Decision == nil {
		return nil
	}
	return s.runner.Resume(ctx, t.Token, *book.Decision)
}

// storeToken records the token of participant key's step in st's book,
// unless it is recorded already, and returns the state as stored.
func (s *Workflows) storeToken(ctx context.Context, st workflow.State, book runnerBook, key, token string) (workflow.State, error) {
	if book.Tokens[key] == token {
		return st, nil
	}
	if book.Tokens == nil {
		book.Tokens = map[string]string{}
	}
	book.Tokens[key] = token
	next := st
	next.Driver = book.encode()
	next.Version++
	if err := s.store.UpdateWorkflow(ctx, next, st.Version); err != nil {
		return st, err
	}
	return next, nil
}

// askStep delivers the coordination message to the participant a step
// waits for, if it is still awaited. Only after the token is stored: the
// participant's answer must find the step it completes.
func (s *Workflows) askStep(ctx context.Context, st workflow.State, addr amtp.Address) error {
	for _, p := range st.Participants {
		if strings.EqualFold(p.Address, addr.String()) && p.Status == workflow.ParticipantAwaiting {
			return s.sendWorkflow(ctx, st, []string{p.Address})
		}
	}
	return nil
}
