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

// TestPushSendsAgentHeaders: a push agent's custom headers go with every
// webhook call, and none of them replaces a header the gateway sets, even
// one that registration would have refused.
func TestPushSendsAgentHeaders(t *testing.T) {
	ctx := context.Background()
	const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	var (
		mu   sync.Mutex
		got  []http.Header
		body [][]byte
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, body = append(got, r.Header.Clone()), append(body, b)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gcfg := gateway.Config{Domain: "example.org", AllowInsecure: true, Logger: quiet}
	ports := gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db}
	// The worker reports through a service of its own; the one that
	// accepts gets the worker at construction (internal/runtime/assemble).
	sys, err := gateway.NewService(gcfg, ports)
	require.NoError(t, err)
	require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush, WebhookURL: hook.URL,
		WebhookSecret: secret, Headers: map[string]string{
			"Authorization": "Bearer agent-token", "x-tenant": "acme",
			// Written to the store directly: registration refuses these.
			"Content-Type": "text/plain", "webhook-id": "forged", "Webhook-Signature": "v1,forged",
		}}))
	w, err := delivery.New(delivery.Config{Domain: "example.org", Logger: quiet},
		delivery.Deps{Messages: db, Inbox: db, Agents: db, Queue: db, Reporter: sys, Client: hook.Client()})
	require.NoError(t, err)
	ports.Immediate = w
	svc, err := gateway.NewService(gcfg, ports)
	require.NoError(t, err)

	var ids []string
	for range 2 {
		res, err := svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller},
			[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{"n":1}}`))
		require.NoError(t, err)
		require.Len(t, res.Recipients, 1)
		require.Equal(t, gateway.StateDelivered, res.Recipients[0].Status)
		ids = append(ids, res.MessageID)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2)
	for i, h := range got {
		assert.Equal(t, "Bearer agent-token", h.Get("Authorization"))
		assert.Equal(t, "acme", h.Get("X-Tenant"))
		assert.Equal(t, []string{"application/json"}, h.Values("Content-Type"))
		assert.Equal(t, []string{ids[i]}, h.Values(delivery.HeaderWebhookID))
		require.Len(t, h.Values(delivery.HeaderWebhookSignature), 1)
		assert.NoError(t, delivery.VerifyWebhook(secret, map[string]string{
			delivery.HeaderWebhookID:        h.Get(delivery.HeaderWebhookID),
			delivery.HeaderWebhookTimestamp: h.Get(delivery.HeaderWebhookTimestamp),
			delivery.HeaderWebhookSignature: h.Get(delivery.HeaderWebhookSignature),
		}, body[i], time.Now(), time.Minute))
	}
}
