// Package gatewaytest is the contract that every adapter of the gateway
// ports must pass: the embedded store, and the DynamoDB/SQS adapters against
// moto. An adapter's test builds a Factory and calls RunAll (or one Run*
// per port it implements).
//
// The suites use the real clock: times are set in the past or a second or
// so in the future, never faked, so that they mean the same against a
// remote service.
package gatewaytest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Backend is one adapter set under test. Ports the adapter does not
// implement may be nil, as long as the matching suite is not run.
type Backend struct {
	Messages gateway.MessageStore
	Inbox    gateway.InboxStore
	Agents   gateway.AgentStore
	Queue    gateway.TaskQueue
	// Workflows is nil for adapters without a workflow store; only those
	// that have one call RunWorkflowStore (RunAll does not).
	Workflows gateway.WorkflowStore
	// LeaseTimeout, when > 0, is how long a received task stays leased if
	// it is not settled (a visibility timeout). The queue suite then waits
	// it out to prove that settled tasks do not come back, so keep it
	// short: one or two seconds.
	LeaseTimeout time.Duration
	// Reopen closes the backend and opens the same data again, returning
	// the new handles; nil when the adapter cannot be reopened. Leases do
	// not survive it: a task received and not settled before Reopen is
	// due again right after.
	Reopen func(t *testing.T) Backend
}

// Factory returns a fresh, empty Backend, closed by t.Cleanup.
type Factory func(t *testing.T) Backend

// RunAll runs every suite.
func RunAll(t *testing.T, f Factory) {
	t.Run("MessageStore", func(t *testing.T) { RunMessageStore(t, f) })
	t.Run("InboxStore", func(t *testing.T) { RunInboxStore(t, f) })
	t.Run("AgentStore", func(t *testing.T) { RunAgentStore(t, f) })
	t.Run("TaskQueue", func(t *testing.T) { RunTaskQueue(t, f) })
}

// requireReopenable skips a durability test, before it does any work, when
// the adapter cannot be reopened.
func requireReopenable(t *testing.T, b Backend) {
	t.Helper()
	if b.Reopen == nil {
		t.Skip("backend cannot be reopened")
	}
}

var idSeq atomic.Uint64

// NewID returns an id unique in this process whose byte order is creation
// order, so tests can predict how ties on time are broken.
func NewID(prefix string) string {
	return fmt.Sprintf("%s-%010d", prefix, idSeq.Add(1))
}

// Now is the real clock at millisecond precision in UTC, the precision any
// adapter is expected to keep.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// NewAcceptance builds a complete acceptance of a message from sender to
// recipients at `at`: queued statuses, one local task per recipient, and an
// idempotency record with the key "key-"+id.
func NewAcceptance(id, sender string, recipients []string, at time.Time) *gateway.Acceptance {
	raw, err := json.Marshal(map[string]any{
		"version":    "1.0",
		"message_id": id,
		"sender":     sender,
		"recipients": recipients,
		"subject":    "subject of " + id,
		"payload":    map[string]string{"text": "hello from " + id},
	})
	if err != nil {
		panic(err) // the map holds strings only
	}
	sum := sha256.Sum256(raw)
	a := &gateway.Acceptance{
		Message: gateway.StoredMessage{
			ID:         id,
			Raw:        raw,
			Sender:     sender,
			Recipients: append([]string(nil), recipients...),
			Subject:    "subject of " + id,
			Origin:     gateway.OriginLocal,
			AcceptedAt: at,
		},
		Idempotency: gateway.IdempotencyRecord{
			Sender:    sender,
			Key:       "key-" + id,
			MessageID: id,
			Digest:    hex.EncodeToString(sum[:]),
			CreatedAt: at,
		},
	}
	for _, r := range recipients {
		a.Statuses = append(a.Statuses, gateway.RecipientStatus{
			Address:   r,
			Status:    gateway.StateQueued,
			UpdatedAt: at,
		})
		a.Tasks = append(a.Tasks, gateway.Task{
			ID:         gateway.TaskID(id, r),
			MessageID:  id,
			Kind:       gateway.TaskLocal,
			Recipients: []string{r},
			CreatedAt:  at,
		})
	}
	return a
}

func cloneAcceptance(a *gateway.Acceptance) *gateway.Acceptance {
	c := *a
	c.Message.Raw = append([]byte(nil), a.Message.Raw...)
	c.Message.Recipients = append([]string(nil), a.Message.Recipients...)
	c.Statuses = append([]gateway.RecipientStatus(nil), a.Statuses...)
	c.Tasks = nil
	for _, t := range a.Tasks {
		t.Recipients = append([]string(nil), t.Recipients...)
		c.Tasks = append(c.Tasks, t)
	}
	return &c
}

func accept(t *testing.T, s gateway.MessageStore, a *gateway.Acceptance) {
	t.Helper()
	_, err := s.Accept(t.Context(), a)
	require.NoError(t, err, "accept %s", a.Message.ID)
}

// ctx bounds one call, so that a hung adapter fails the test instead of
// hanging it.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
