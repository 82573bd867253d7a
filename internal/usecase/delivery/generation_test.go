package delivery_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestQueuedMailForAReplacedAgent: a delivery still queued when its
// recipient agent is deleted fails, and keeps failing when an agent is
// registered at that address meanwhile: the new agent's webhook never
// receives the old agent's mail, and the sender gets a failure report.
func TestQueuedMailForAReplacedAgent(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change happens to dave between the acceptance and the delivery.
		change    func(t *testing.T, db *pebblestore.DB, hook string, at time.Time)
		wantState gateway.State
		wantCalls int64
	}{
		{"unchanged", func(*testing.T, *pebblestore.DB, string, time.Time) {}, gateway.StateDelivered, 1},
		{"deleted", func(t *testing.T, db *pebblestore.DB, _ string, _ time.Time) {
			require.NoError(t, db.DeleteAgent(context.Background(), "dave@example.org"))
		}, gateway.StateFailed, 0},
		{"deleted and registered again", func(t *testing.T, db *pebblestore.DB, hook string, at time.Time) {
			require.NoError(t, db.DeleteAgent(context.Background(), "dave@example.org"))
			require.NoError(t, db.PutAgent(context.Background(), pushAgent("dave@example.org", hook, at)))
		}, gateway.StateFailed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var calls atomic.Int64
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls.Add(1) }))
			defer hook.Close()
			var mu sync.Mutex
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: clock})
			require.NoError(t, err)
			defer func() { assert.NoError(t, db.Close()) }()
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AllowInsecure: true, Now: clock, Logger: quiet},
				gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
			require.NoError(t, err)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "alice@example.org", DeliveryMode: gateway.ModePull, CreatedAt: now.Add(-time.Hour)}))
			require.NoError(t, db.PutAgent(ctx, pushAgent("dave@example.org", hook.URL, now.Add(-time.Hour))))
			w, err := delivery.New(delivery.Config{Domain: "example.org", Now: clock, Logger: quiet},
				delivery.Deps{Messages: db, Inbox: db, Agents: db, Queue: db, Reporter: svc, Client: hook.Client()})
			require.NoError(t, err)

			res, err := svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller},
				[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["dave@example.org"],"payload":{"n":1}}`))
			require.NoError(t, err)
			mu.Lock()
			now = now.Add(time.Second)
			mu.Unlock()
			tc.change(t, db, hook.URL, clock())

			tasks, err := db.Receive(ctx, 10, 0)
			require.NoError(t, err)
			require.Len(t, tasks, 1)
			require.NoError(t, w.Process(ctx, tasks[0]))
			st, err := db.GetStatuses(ctx, res.MessageID)
			require.NoError(t, err)
			require.Len(t, st, 1)
			assert.Equal(t, tc.wantState, st[0].Status)
			assert.Equal(t, tc.wantCalls, calls.Load(), "webhook calls")
			reports, _, err := db.ListInbox(ctx, "alice@example.org", 10, "")
			require.NoError(t, err)
			if tc.wantState == gateway.StateDelivered {
				assert.Empty(t, reports)
				return
			}
			assert.Equal(t, string(amtp.CodeAgentUnknown), st[0].ErrorCode)
			assert.Equal(t, "no agent dave@example.org is registered at this gateway", st[0].ErrorMessage, "what an unknown agent's status says")
			require.Len(t, reports, 1, "the sender hears of it")
			var rep struct {
				Sender    string `json:"sender"`
				InReplyTo string `json:"in_reply_to"`
			}
			require.NoError(t, json.Unmarshal(reports[0].Raw, &rep))
			assert.Equal(t, "postmaster@example.org", rep.Sender)
			assert.Equal(t, res.MessageID, rep.InReplyTo)
		})
	}
}

func pushAgent(addr, hook string, created time.Time) *gateway.Agent {
	return &gateway.Agent{Address: addr, DeliveryMode: gateway.ModePush, WebhookURL: hook, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", CreatedAt: created}
}
