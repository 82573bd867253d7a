package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
)

// asking is where sendWorkflow's participants go.
type asking struct {
	tasks   []Task
	unknown []string          // no agent (any longer) at the address
	gone    []RecipientStatus // agents replaced since the workflow began
}

// sendWorkflow delivers the coordination message to participants: into
// the inbox of a pull agent, by a delivery task otherwise. One task per
// participant (also per remote one), with an id of its own, so that asking
// a second participant of a domain never collides with the first one's
// task still in the queue.
func (s *Workflows) sendWorkflow(ctx context.Context, st workflow.State, to []string) error {
	if len(to) == 0 {
		return nil
	}
	now := s.clock.stamp()
	var out asking
	for _, raw := range to {
		a, err := amtp.ParseAddress(raw)
		if err != nil {
			return fmt.Errorf("workflow %s: participant %q: %w", st.WorkflowID, raw, err)
		}
		if err := s.ask(ctx, st, a, now, &out); err != nil {
			return err
		}
	}
	return s.dispatch(ctx, st.WorkflowID, out)
}

// ask routes one participant: a remote one gets a task; a local one an
// inbox write or a task, or is unknown when no agent (or another agent
// since) is registered at its address.
func (s *Workflows) ask(ctx context.Context, st workflow.State, a amtp.Address, now time.Time, out *asking) error {
	id := st.WorkflowID
	if !s.site.isLocal(a) {
		out.tasks = append(out.tasks, Task{ID: TaskID(id, "@"+a.Domain+"/"+a.Key()), MessageID: id, Kind: TaskRemote, Recipients: []string{a.String()}, Domain: a.Domain, CreatedAt: now})
		return nil
	}
	ag, err := s.agents.GetAgent(ctx, a.Key())
	switch {
	case errors.Is(err, ErrNotFound):
		out.unknown = append(out.unknown, a.String())
	case err != nil:
		return fmt.Errorf("workflow %s: look up %s: %w", id, a, err)
	case predates(st.CreatedAt, ag):
		// The participant was deleted, and its address registered
		// again, since the workflow started: the new agent is not it.
		out.unknown = append(out.unknown, a.String())
		out.gone = append(out.gone, RecipientStatus{Address: a.String(), Status: StateFailed, Attempts: 1, UpdatedAt: now,
			ErrorCode: string(amtp.CodeAgentUnknown), ErrorMessage: "no agent " + a.String() + " is registered at this gateway"})
	case ag.DeliveryMode == ModePull:
		rs := RecipientStatus{Address: a.String(), Status: StateDelivered, Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "inbox"}
		if err := s.inbox.DeliverToInbox(ctx, a.Key(), id, rs); err != nil {
			return fmt.Errorf("workflow %s: deliver to the inbox of %s: %w", id, a, err)
		}
		s.metrics.MessageDelivered(ctx, id, a.String(), "inbox", 0)
	default:
		out.tasks = append(out.tasks, Task{ID: TaskID(id, a.Key()), MessageID: id, Kind: TaskLocal, Recipients: []string{a.String()}, CreatedAt: now})
	}
	return nil
}

// dispatch enqueues the deliveries of workflow id and fails the
// participants that cannot be asked.
func (s *Workflows) dispatch(ctx context.Context, id string, out asking) error {
	if len(out.tasks) > 0 {
		if err := s.queue.Enqueue(ctx, out.tasks...); err != nil {
			return fmt.Errorf("workflow %s: enqueue %d deliveries: %w", id, len(out.tasks), err)
		}
	}
	// The accept failed the recipients it found no agent for; those whose
	// agent was replaced since fail now. The workflow learns of both as a
	// delivery failure, as it would from a worker.
	if len(out.gone) > 0 {
		if err := s.statuses.UpdateStatuses(ctx, id, out.gone); err != nil {
			return fmt.Errorf("workflow %s: record %d replaced participants: %w", id, len(out.gone), err)
		}
	}
	for _, r := range out.unknown {
		if err := s.WorkflowDeliveryFailed(ctx, id, []string{r}, amtp.CodeAgentUnknown, "no agent "+r+" is registered at this gateway"); err != nil {
			return err
		}
	}
	return nil
}
