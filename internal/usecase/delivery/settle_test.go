package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestImmediateSuccessRemovesTheFallbackCopy: on a store that is also the
// queue (gateway.Settler, which settles outcome and task together), a push
// delivered on the Immediate Path takes its held-back queue copy with it;
// a failed attempt leaves the copy to retry.
func TestImmediateSuccessRemovesTheFallbackCopy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		wantQueued int
	}{
		{"delivered", http.StatusOK, 0},
		{"webhook unavailable", http.StatusServiceUnavailable, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
			defer hook.Close()
			var mu sync.Mutex
			now := time.Now().UTC()
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: clock})
			require.NoError(t, err)
			defer func() { assert.NoError(t, db.Close()) }()
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			gcfg := gateway.Config{Domain: "example.org", AllowInsecure: true, Now: clock, Logger: quiet}
			ports := gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db}
			// The worker reports through a service of its own; the one that
			// accepts gets the worker at construction (internal/runtime/assemble).
			sys, err := gateway.NewService(gcfg, ports)
			require.NoError(t, err)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush, WebhookURL: hook.URL, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}))
			w, err := delivery.New(delivery.Config{Domain: "example.org", Now: clock, Logger: quiet},
				delivery.Deps{Messages: db, Inbox: db, Agents: db, Queue: db, Reporter: sys, Client: hook.Client()})
			require.NoError(t, err)
			ports.Immediate = w
			svc, err := gateway.NewService(gcfg, ports)
			require.NoError(t, err)

			_, err = svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller},
				[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{"n":1}}`))
			require.NoError(t, err)
			mu.Lock()
			now = now.Add(time.Hour) // past any held-back copy's due time
			mu.Unlock()
			tasks, err := db.Receive(ctx, 10, 0)
			require.NoError(t, err)
			assert.Len(t, tasks, tc.wantQueued)
		})
	}
}

// countingMessages counts the reads the Immediate Path should not need.
type countingMessages struct {
	gateway.MessageStore
	mu                  sync.Mutex
	getMessage, getStat int
}

func (c *countingMessages) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	c.mu.Lock()
	c.getMessage++
	c.mu.Unlock()
	return c.MessageStore.GetMessage(ctx, id)
}

func (c *countingMessages) GetStatuses(ctx context.Context, id string) ([]gateway.RecipientStatus, error) {
	c.mu.Lock()
	c.getStat++
	c.mu.Unlock()
	return c.MessageStore.GetStatuses(ctx, id)
}

// TestImmediatePathReadsNothingBack: the Immediate Path delivers the
// message the service has just stored and answers with the statuses the
// attempt recorded, without reading either back (two DynamoDB queries and
// a parse per push message otherwise).
func TestImmediatePathReadsNothingBack(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   gateway.State
	}{{http.StatusOK, gateway.StateDelivered}, {http.StatusServiceUnavailable, gateway.StateRetrying}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			ctx := context.Background()
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
			defer hook.Close()
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
			require.NoError(t, err)
			defer func() { assert.NoError(t, db.Close()) }()
			msgs := &countingMessages{MessageStore: db}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			gcfg := gateway.Config{Domain: "example.org", AllowInsecure: true, Logger: quiet}
			ports := gateway.Ports{Messages: msgs, Inbox: db, Agents: db, Queue: db}
			// The worker reports through a service of its own; the one that
			// accepts gets the worker at construction (internal/runtime/assemble).
			sys, err := gateway.NewService(gcfg, ports)
			require.NoError(t, err)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush, WebhookURL: hook.URL, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}))
			w, err := delivery.New(delivery.Config{Domain: "example.org", Logger: quiet},
				delivery.Deps{Messages: msgs, Inbox: db, Agents: db, Queue: db, Reporter: sys, Client: hook.Client()})
			require.NoError(t, err)
			ports.Immediate = w
			svc, err := gateway.NewService(gcfg, ports)
			require.NoError(t, err)

			res, err := svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller},
				[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{"n":1}}`))
			require.NoError(t, err)
			require.Len(t, res.Recipients, 1)
			assert.Equal(t, tc.want, res.Recipients[0].Status)
			stored, err := db.GetStatuses(ctx, res.MessageID)
			require.NoError(t, err)
			assert.Equal(t, stored, res.Recipients, "the answer is what is stored")
			msgs.mu.Lock()
			defer msgs.mu.Unlock()
			assert.Zero(t, msgs.getMessage, "GetMessage calls")
			assert.Zero(t, msgs.getStat, "GetStatuses calls")
		})
	}
}
