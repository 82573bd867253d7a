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
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// recorder is a test double of the worker's own Metrics port.
type recorder struct {
	mu        sync.Mutex
	delivered []deliveredEvent
	retried   []retriedEvent
	failed    []failedEvent
}

type deliveredEvent struct {
	messageID, recipient, via string
	latency                   time.Duration
}

type retriedEvent struct {
	messageID string
	attempt   int
	code      string
}

type failedEvent struct{ messageID, recipient, code string }

func (r *recorder) MessageDelivered(_ context.Context, messageID, recipient, via string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, deliveredEvent{messageID, recipient, via, latency})
}

func (r *recorder) DeliveryRetried(_ context.Context, messageID string, attempt int, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retried = append(r.retried, retriedEvent{messageID, attempt, code})
}

func (r *recorder) DeliveryFailed(_ context.Context, messageID, recipient, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, failedEvent{messageID, recipient, code})
}

var _ delivery.Metrics = (*recorder)(nil)

// TestWorkerMetrics runs one real delivery (embedded store, a webhook
// server) per case and checks the events the worker reports: exactly one
// per outcome, with the latency measured from the message's acceptance,
// and none when a settled task is delivered again (an at-least-once queue
// does that).
func TestWorkerMetrics(t *testing.T) {
	const acceptToDelivery = 1500 * time.Millisecond
	cases := []struct {
		name      string
		status    int  // the webhook's answer
		immediate bool // delivered inline by the Immediate Path
		delivered []deliveredEvent
		retried   []retriedEvent
		failed    []failedEvent
	}{
		{
			name:      "delivered",
			status:    http.StatusOK,
			delivered: []deliveredEvent{{recipient: "bob@example.org", via: "webhook", latency: acceptToDelivery}},
		},
		{
			name:      "delivered on the Immediate Path",
			status:    http.StatusOK,
			immediate: true,
			delivered: []deliveredEvent{{recipient: "bob@example.org", via: "webhook", latency: 0}},
		},
		{
			name:    "transient failure is retried",
			status:  http.StatusServiceUnavailable,
			retried: []retriedEvent{{attempt: 1, code: string(amtp.CodeRecipientUnavailable)}},
		},
		{
			name:   "permanent failure",
			status: http.StatusGone,
			failed: []failedEvent{{recipient: "bob@example.org", code: string(amtp.CodeRecipientNotFound)}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
			}))
			defer hook.Close()

			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
			require.NoError(t, err)
			defer func() { assert.NoError(t, db.Close()) }()

			// One clock for both sides, moved between accept and delivery,
			// so that the latency is known exactly.
			var clockMu sync.Mutex
			now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
			advance := func(d time.Duration) { clockMu.Lock(); defer clockMu.Unlock(); now = now.Add(d) }

			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			gcfg := gateway.Config{Domain: "example.org", AllowInsecure: true, Now: clock, Logger: quiet}
			ports := gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db}
			// The worker reports through a service of its own; the one that
			// accepts gets the worker at construction (internal/runtime/assemble).
			sys, err := gateway.NewService(gcfg, ports)
			require.NoError(t, err)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{
				Address: "bob@example.org", DeliveryMode: gateway.ModePush,
				WebhookURL: hook.URL, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
			}))
			rec := &recorder{}
			w, err := delivery.New(delivery.Config{Domain: "example.org", Now: clock, Logger: quiet, Metrics: rec},
				delivery.Deps{Messages: db, Inbox: db, Agents: db, Queue: db, Reporter: sys, Client: hook.Client()})
			require.NoError(t, err)
			if tc.immediate {
				ports.Immediate = w
			}
			svc, err := gateway.NewService(gcfg, ports)
			require.NoError(t, err)

			res, err := svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller},
				[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{"n":1}}`))
			require.NoError(t, err)
			if tc.immediate {
				// The held-back copy of the task comes due after the
				// window and finds the recipient delivered (had it
				// delivered instead, the latency would not be zero).
				advance(acceptToDelivery)
				require.NoError(t, w.Process(ctx, gateway.Task{
					ID: gateway.TaskID(res.MessageID, "bob@example.org"), MessageID: res.MessageID,
					Kind: gateway.TaskLocal, Recipients: []string{"bob@example.org"},
				}))
			} else {
				advance(acceptToDelivery)
				tasks, err := db.Receive(ctx, 1, time.Second)
				require.NoError(t, err)
				require.Len(t, tasks, 1)
				require.NoError(t, w.Process(ctx, tasks[0]))
				// The same task arrives again (an at-least-once queue):
				// settled, or its retry already scheduled, it counts
				// nothing more.
				require.NoError(t, w.Process(ctx, tasks[0]))
			}

			for i := range tc.delivered {
				tc.delivered[i].messageID = res.MessageID
			}
			for i := range tc.retried {
				tc.retried[i].messageID = res.MessageID
			}
			for i := range tc.failed {
				tc.failed[i].messageID = res.MessageID
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			assert.Equal(t, tc.delivered, rec.delivered, "MessagesDelivered / DeliveryLatencyMs")
			assert.Equal(t, tc.retried, rec.retried, "DeliveryRetries")
			assert.Equal(t, tc.failed, rec.failed, "DeliveryFailures")
		})
	}
}
