package gateway_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// countingWebhooks counts the listings the notifier reads.
type countingWebhooks struct {
	*pebblestore.DB
	lists atomic.Int64
}

func (c *countingWebhooks) ListWebhooks(ctx context.Context, owner string) ([]gateway.WebhookSubscription, error) {
	c.lists.Add(1)
	return c.DB.ListWebhooks(ctx, owner)
}

// TestNotifierReadsSubscriptionsBriefly: events of senders without
// subscriptions cost one read per owner per few seconds, not one per
// event; a subscription is heard of once the cached listing is old.
func TestNotifierReadsSubscriptionsBriefly(t *testing.T) {
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	store := &countingWebhooks{DB: db}
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	nf := gateway.NewNotifier(store, db, func() time.Time { return now })
	ctx := context.Background()
	ev, ok := gateway.MessageNotification("m1", gateway.RecipientStatus{Address: "bob@example.org", Status: gateway.StateDelivered, Attempts: 1})
	require.True(t, ok)

	for range 100 {
		require.NoError(t, nf.Notify(ctx, "alice@example.org", ev))
	}
	assert.EqualValues(t, 2, store.lists.Load(), "alice's and the admin's listings, read once each")
	tasks, err := db.Receive(ctx, 10, 0)
	require.NoError(t, err)
	assert.Empty(t, tasks, "no subscriptions, no tasks")

	require.NoError(t, db.PutWebhook(ctx, gateway.WebhookSubscription{ID: "wh_1", Owner: "alice@example.org", URL: "https://hooks.example.com/x",
		Events: []gateway.WebhookEvent{gateway.EventMessageDelivered}, Secret: "whsec_c2VjcmV0", CreatedAt: now}))
	now = now.Add(10 * time.Second)
	require.NoError(t, nf.Notify(ctx, "alice@example.org", ev))
	require.NoError(t, nf.Notify(ctx, "alice@example.org", ev))
	tasks, err = db.Receive(ctx, 10, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 1, "the same event is queued once")
	assert.Equal(t, gateway.TaskNotify, tasks[0].Kind)
	assert.Equal(t, "wh_1", tasks[0].Domain)
	assert.Contains(t, tasks[0].Token, `"type":"message.delivered"`)
}

func TestNotificationEvents(t *testing.T) {
	tests := []struct {
		name string
		got  func() (gateway.Notification, bool)
		want gateway.WebhookEvent
		ok   bool
	}{
		{"delivered", msgEvent(gateway.StateDelivered), gateway.EventMessageDelivered, true},
		{"failed", msgEvent(gateway.StateFailed), gateway.EventMessageFailed, true},
		{"retrying", msgEvent(gateway.StateRetrying), gateway.EventMessageRetrying, true},
		{"queued", msgEvent(gateway.StateQueued), "", false},
		{"workflow completed", wfEvent(workflow.StatusCompleted), gateway.EventWorkflowCompleted, true},
		{"workflow failed", wfEvent(workflow.StatusFailed), gateway.EventWorkflowFailed, true},
		{"workflow timed out", wfEvent(workflow.StatusTimedOut), gateway.EventWorkflowTimedOut, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := tt.got()
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, n.Type)
		})
	}
}

func msgEvent(s gateway.State) func() (gateway.Notification, bool) {
	return func() (gateway.Notification, bool) {
		return gateway.MessageNotification("m1/bob@example.org", gateway.RecipientStatus{Address: "bob@example.org", Status: s})
	}
}

func wfEvent(s workflow.Status) func() (gateway.Notification, bool) {
	return func() (gateway.Notification, bool) {
		n := gateway.WorkflowNotification(workflow.State{WorkflowID: "w1", Status: s})
		return n, n.Data.WorkflowID == "w1" && n.Data.Status == string(s)
	}
}
