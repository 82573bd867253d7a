package assemble

import (
	"context"
	"errors"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Outcomes hears what the use cases' Metrics ports do not carry: the
// signature checks of mail from other domains and the ends of workflows
// (prom.Metrics locally). Gateway observes them at the ports they pass
// through, the InboundVerifier and the WorkflowStore, so that the use
// cases need no new port for them.
type Outcomes interface {
	// SignatureAccepted: a check whose message was let through, with its
	// result (verified, unsigned, invalid, key_unavailable);
	// SignatureRefused: one whose message was refused (the reject policy).
	SignatureAccepted(ctx context.Context, result string)
	SignatureRefused(ctx context.Context, result string)
	// WorkflowFinished: a workflow ended with status (completed, failed,
	// timed_out).
	WorkflowFinished(ctx context.Context, status string)
}

// observeVerifier is v, telling out of each check it completes. An error
// that is not an AMTP refusal is a check that could not be made, not a
// result.
func observeVerifier(v gateway.InboundVerifier, out Outcomes) gateway.InboundVerifier {
	if out == nil {
		return v
	}
	return observedVerifier{next: v, out: out}
}

type observedVerifier struct {
	next gateway.InboundVerifier
	out  Outcomes
}

func (v observedVerifier) VerifyInbound(ctx context.Context, raw []byte) (gateway.SenderVerification, error) {
	sv, err := v.next.VerifyInbound(ctx, raw)
	var refusal *amtp.Error
	switch {
	case err == nil:
		v.out.SignatureAccepted(ctx, string(sv.Result))
	case errors.As(err, &refusal) && sv.Result != "":
		v.out.SignatureRefused(ctx, string(sv.Result))
	}
	return sv, err
}

// observeWorkflows is s, telling out of each workflow's end.
func observeWorkflows(s gateway.WorkflowStore, out Outcomes) gateway.WorkflowStore {
	if s == nil || out == nil {
		return s
	}
	return observedWorkflows{WorkflowStore: s, out: out}
}

type observedWorkflows struct {
	gateway.WorkflowStore
	out Outcomes
}

// UpdateWorkflow tells of the write that ends a workflow, once: the state
// it replaces must be the version the write expects and not ended yet.
// The use cases never apply an event to an ended workflow, but a driver
// may rewrite one to keep its bookkeeping (the Step Functions runner's
// tokens). The extra read is paid only by writes of an ended state.
func (w observedWorkflows) UpdateWorkflow(ctx context.Context, s workflow.State, expectedVersion int) error {
	if !s.Status.Terminal() {
		return w.WorkflowStore.UpdateWorkflow(ctx, s, expectedVersion)
	}
	prev, err := w.WorkflowStore.GetWorkflow(ctx, s.WorkflowID)
	ends := err == nil && prev.Version == expectedVersion && !prev.Status.Terminal()
	if err := w.WorkflowStore.UpdateWorkflow(ctx, s, expectedVersion); err != nil {
		return err
	}
	if ends {
		w.out.WorkflowFinished(ctx, string(s.Status))
	}
	return nil
}
