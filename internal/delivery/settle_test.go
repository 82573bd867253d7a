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

	"github.com/agentry/agentry/internal/delivery"
	"github.com/agentry/agentry/internal/embedded"
	"github.com/agentry/agentry/internal/gateway"
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
			db, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Now: clock})
			require.NoError(t, err)
			defer db.Close()
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AllowInsecure: true, Now: clock, Logger: quiet},
				gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
			require.NoError(t, err)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush, WebhookURL: hook.URL, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}))
			w, err := delivery.New(delivery.Config{Domain: "example.org", Now: clock, Logger: quiet},
				delivery.Deps{Messages: db, Inbox: db, Agents: db, Queue: db, Reporter: svc, Client: hook.Client()})
			require.NoError(t, err)
			svc.SetImmediate(w)

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
