package assemble

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// outcomeLog records what Outcomes hears.
type outcomeLog struct {
	mu         sync.Mutex
	signatures []string // result/outcome
	workflows  []string
}

func (o *outcomeLog) SignatureAccepted(_ context.Context, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.signatures = append(o.signatures, result+"/accepted")
}

func (o *outcomeLog) SignatureRefused(_ context.Context, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.signatures = append(o.signatures, result+"/refused")
}

func (o *outcomeLog) WorkflowFinished(_ context.Context, status string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.workflows = append(o.workflows, status)
}

// TestWorkflowEndsAreObservedOnce: the write that ends a workflow is
// heard once, with how it ended; writes that do not end it, a rewrite of
// an ended one and a write that loses the race are not.
func TestWorkflowEndsAreObservedOnce(t *testing.T) {
	ctx := context.Background()
	_, db := storeBackend(t)
	var log outcomeLog
	store := observeWorkflows(db, &log)
	now := time.Now().UTC()
	st := workflow.State{WorkflowID: "wf-1", Initiator: "alice@example.org", Type: amtp.CoordinationParallel,
		Status: workflow.StatusInProgress, CreatedAt: now, UpdatedAt: now, Deadline: now.Add(time.Hour), Version: 1}
	require.NoError(t, store.CreateWorkflow(ctx, st))

	step := func(from workflow.State, status workflow.Status) workflow.State {
		next := from
		next.Status, next.Version = status, from.Version+1
		return next
	}
	v2 := step(st, workflow.StatusInProgress)
	require.NoError(t, store.UpdateWorkflow(ctx, v2, 1))
	assert.Empty(t, log.workflows, "still in progress")

	ended := step(v2, workflow.StatusCompleted)
	loser := step(v2, workflow.StatusFailed)
	require.NoError(t, store.UpdateWorkflow(ctx, ended, 2))
	require.ErrorIs(t, store.UpdateWorkflow(ctx, loser, 2), gateway.ErrConflict)
	// A driver's bookkeeping written on the ended state.
	require.NoError(t, store.UpdateWorkflow(ctx, step(ended, workflow.StatusCompleted), 3))
	assert.Equal(t, []string{"completed"}, log.workflows)

	assert.Equal(t, gateway.WorkflowStore(db), observeWorkflows(db, nil), "nobody listening: the store itself")
}

// verifierFunc is an InboundVerifier from a function: the real one needs
// DNS, which the end-to-end tests give it.
type verifierFunc func(context.Context, []byte) (gateway.SenderVerification, error)

func (f verifierFunc) VerifyInbound(ctx context.Context, raw []byte) (gateway.SenderVerification, error) {
	return f(ctx, raw)
}

// TestSignatureChecksAreObserved: each check is heard with its result
// and whether the message was let through; a failure to check at all
// (no result) is not a check.
func TestSignatureChecksAreObserved(t *testing.T) {
	cases := []struct {
		name string
		sv   gateway.SenderVerification
		err  error
		want []string
	}{
		{"verified", gateway.SenderVerification{Result: gateway.VerifiedSignature}, nil, []string{"verified/accepted"}},
		{"flagged", gateway.SenderVerification{Result: gateway.Unsigned}, nil, []string{"unsigned/accepted"}},
		{"refused", gateway.SenderVerification{Result: gateway.InvalidSignature},
			amtp.Errorf(amtp.CodeSignatureInvalid, "bad"), []string{"invalid/refused"}},
		{"could not check", gateway.SenderVerification{}, errors.New("dns: i/o timeout"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var log outcomeLog
			v := observeVerifier(verifierFunc(func(context.Context, []byte) (gateway.SenderVerification, error) {
				return tc.sv, tc.err
			}), &log)
			sv, err := v.VerifyInbound(context.Background(), []byte("{}"))
			assert.Equal(t, tc.sv, sv)
			assert.Equal(t, tc.err, err)
			assert.Equal(t, tc.want, log.signatures)
		})
	}
}
