package assemble

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// testConfig is a valid configuration for the domain example.org, with
// plain-http loopback webhooks allowed.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	vars := map[string]string{
		"AGENTRY_DOMAIN": "example.org", "AGENTRY_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"AGENTRY_DNS_SERVER": "127.0.0.1:1", "AGENTRY_ALLOW_INSECURE": "1", "AGENTRY_ADMIN_KEY": "admin-key-0123456789abcdef",
	}
	cfg, err := config.FromEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	return cfg
}

// storeBackend is the local runtime's backend on a fresh store.
func storeBackend(t *testing.T) (Backend, *pebblestore.DB) {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return Backend{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db,
		Limiter: policy.NewMemoryLimiter(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, db
}

// TestGatewayIsWired: what Gateway returns works as one gateway without
// any further wiring: a push message is delivered inside the request (the
// service holds the worker), and a delivery refused for good reaches its
// local sender as a failure report (the worker holds a reporter).
func TestGatewayIsWired(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		wantState   gateway.State
		wantReports int
	}{
		{name: "delivered on the Immediate Path", status: http.StatusOK, wantState: gateway.StateDelivered},
		{name: "refused for good, reported to the sender", status: http.StatusBadRequest, wantState: gateway.StateFailed, wantReports: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
			t.Cleanup(hook.Close)
			b, db := storeBackend(t)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "alice@example.org", DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("key-alice")}))
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush,
				WebhookURL: hook.URL, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}))

			a, err := Gateway(testConfig(t), b)
			require.NoError(t, err)
			require.NotNil(t, a.Worker)
			require.NotNil(t, a.Client)

			alice, err := a.Service.Authenticate(ctx, "key-alice")
			require.NoError(t, err)
			res, err := a.Service.Accept(ctx, alice, []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{}}`))
			require.NoError(t, err)
			require.Len(t, res.Recipients, 1)
			assert.Equal(t, tc.wantState, res.Recipients[0].Status)
			reports, _, err := db.ListInbox(ctx, "alice@example.org", 10, "")
			require.NoError(t, err)
			assert.Len(t, reports, tc.wantReports)
		})
	}
}

// TestGatewayFailures: a configuration Gateway cannot build from is
// refused with the reason.
func TestGatewayFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(cfg *config.Config, b *Backend)
		want   string
	}{
		{name: "DNS server without a port", want: "dns resolver",
			mutate: func(cfg *config.Config, _ *Backend) { cfg.DNSServer = "127.0.0.1" }},
		{name: "client certificate missing", want: "AGENTRY_TLS_CLIENT_CERT",
			mutate: func(cfg *config.Config, _ *Backend) {
				cfg.TLSClientCert, cfg.TLSClientKey = "/nonexistent/c.pem", "/nonexistent/k.pem"
			}},
		{name: "domain not a DNS name", want: "domain",
			mutate: func(cfg *config.Config, _ *Backend) { cfg.Domain = "not a domain" }},
		{name: "no store", want: "store",
			mutate: func(_ *config.Config, b *Backend) { b.Messages = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			b, _ := storeBackend(t)
			tc.mutate(&cfg, &b)
			a, err := Gateway(cfg, b)
			require.Error(t, err)
			assert.Nil(t, a)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
