package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// webhookWorld is a gateway on a Pebble store that keeps subscriptions;
// insecure lets tests subscribe http:// URLs.
func webhookWorld(t *testing.T, cfg gateway.Config) *gateway.Service {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	cfg.Domain, cfg.Logger = "example.org", slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(cfg, gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, Webhooks: db})
	require.NoError(t, err)
	return svc
}

func agentCaller(addr string) gateway.Principal {
	return gateway.Principal{Kind: gateway.AgentCaller, Agent: &gateway.Agent{Address: addr}}
}

var delivered = []gateway.WebhookEvent{gateway.EventMessageDelivered}

func TestCreateWebhookChecksTheRequest(t *testing.T) {
	svc := webhookWorld(t, gateway.Config{})
	ctx := context.Background()
	tests := []struct {
		name string
		req  gateway.WebhookRequest
		want amtp.Code
	}{
		{"no url", gateway.WebhookRequest{Events: delivered}, amtp.CodeInvalidMessageFormat},
		{"http", gateway.WebhookRequest{URL: "http://hooks.example.com/x", Events: delivered}, amtp.CodeInvalidMessageFormat},
		{"loopback", gateway.WebhookRequest{URL: "https://127.0.0.1/x", Events: delivered}, amtp.CodeInvalidMessageFormat},
		{"localhost", gateway.WebhookRequest{URL: "https://localhost/x", Events: delivered}, amtp.CodeInvalidMessageFormat},
		{"too long", gateway.WebhookRequest{URL: "https://hooks.example.com/" + strings.Repeat("a", 2048), Events: delivered}, amtp.CodeInvalidMessageFormat},
		{"no events", gateway.WebhookRequest{URL: "https://hooks.example.com/x"}, amtp.CodeInvalidMessageFormat},
		{"unknown event", gateway.WebhookRequest{URL: "https://hooks.example.com/x", Events: []gateway.WebhookEvent{"message.read"}}, amtp.CodeInvalidMessageFormat},
		{"too many events", gateway.WebhookRequest{URL: "https://hooks.example.com/x", Events: make([]gateway.WebhookEvent, 9)}, amtp.CodeInvalidMessageFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.CreateWebhook(ctx, agentCaller("bob@example.org"), tt.req)
			assert.Equal(t, tt.want, codeOf(t, err))
		})
	}
}

func TestCreateWebhookShowsTheSecretOnce(t *testing.T) {
	svc := webhookWorld(t, gateway.Config{})
	ctx := context.Background()
	bob := agentCaller("Bob@example.org")
	events := []gateway.WebhookEvent{gateway.EventMessageFailed, gateway.EventMessageDelivered, gateway.EventMessageFailed}
	w, err := svc.CreateWebhook(ctx, bob, gateway.WebhookRequest{URL: "https://hooks.example.com/x", Events: events})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(w.Secret, "whsec_"), "secret %q", w.Secret)
	assert.Equal(t, "bob@example.org", w.Owner)
	assert.Equal(t, []gateway.WebhookEvent{gateway.EventMessageFailed, gateway.EventMessageDelivered}, w.Events, "each event once")

	got, err := svc.GetWebhook(ctx, bob, w.ID)
	require.NoError(t, err)
	assert.Empty(t, got.Secret)
	assert.Equal(t, w.URL, got.URL)
	list, err := svc.ListWebhooks(ctx, bob, "")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Empty(t, list[0].Secret)
}

func TestWebhooksAreTheirOwners(t *testing.T) {
	svc := webhookWorld(t, gateway.Config{})
	ctx := context.Background()
	bob, carol := agentCaller("bob@example.org"), agentCaller("carol@example.org")
	req := gateway.WebhookRequest{URL: "https://hooks.example.com/x", Events: delivered}
	w, err := svc.CreateWebhook(ctx, bob, req)
	require.NoError(t, err)
	mine, err := svc.CreateWebhook(ctx, admin, req)
	require.NoError(t, err)
	assert.Empty(t, mine.Owner, "the admin's subscriptions have no owner")

	_, err = svc.GetWebhook(ctx, carol, w.ID)
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err), "another agent's subscription is not found")
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, svc.DeleteWebhook(ctx, carol, w.ID)))
	list, err := svc.ListWebhooks(ctx, carol, "")
	require.NoError(t, err)
	assert.Empty(t, list)
	_, err = svc.ListWebhooks(ctx, carol, "bob@example.org")
	assert.Equal(t, amtp.CodeForbidden, codeOf(t, err))
	_, err = svc.ListWebhooks(ctx, gateway.Principal{}, "")
	assert.Equal(t, amtp.CodeAuthenticationRequired, codeOf(t, err))

	list, err = svc.ListWebhooks(ctx, admin, "BOB@example.org")
	require.NoError(t, err)
	require.Len(t, list, 1, "the admin lists an agent's")
	assert.Equal(t, w.ID, list[0].ID)
	list, err = svc.ListWebhooks(ctx, admin, "")
	require.NoError(t, err)
	require.Len(t, list, 1, "and its own")
	assert.Equal(t, mine.ID, list[0].ID)

	_, err = svc.GetWebhook(ctx, admin, w.ID)
	require.NoError(t, err, "the admin reads any")
	require.NoError(t, svc.DeleteWebhook(ctx, bob, w.ID))
	_, err = svc.GetWebhook(ctx, bob, w.ID)
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err))
}

func TestWebhooksPerOwnerAreBounded(t *testing.T) {
	svc := webhookWorld(t, gateway.Config{AllowInsecure: true})
	ctx := context.Background()
	req := gateway.WebhookRequest{URL: "http://127.0.0.1:9/x", Events: delivered}
	for range gateway.MaxWebhooksPerOwner {
		_, err := svc.CreateWebhook(ctx, agentCaller("bob@example.org"), req)
		require.NoError(t, err, "insecure mode allows http and loopback")
	}
	_, err := svc.CreateWebhook(ctx, agentCaller("bob@example.org"), req)
	assert.Equal(t, amtp.CodeForbidden, codeOf(t, err))
	_, err = svc.CreateWebhook(ctx, agentCaller("carol@example.org"), req)
	require.NoError(t, err, "the bound is per owner")
}

func TestWebhooksWithoutAStore(t *testing.T) {
	svc, _ := localService(t, nil)
	_, err := svc.ListWebhooks(context.Background(), admin, "")
	assert.Equal(t, amtp.CodeNotFound, codeOf(t, err))
}

// TestDeletedAgentsSubscriptionsEnd: an agent registered again at a
// deleted agent's address is a new agent, and hears nothing through the
// old one's subscriptions.
func TestDeletedAgentsSubscriptionsEnd(t *testing.T) {
	svc := webhookWorld(t, gateway.Config{})
	ctx := context.Background()
	_, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "bob", DeliveryMode: gateway.ModePull})
	require.NoError(t, err)
	bob := agentCaller("bob@example.org")
	_, err = svc.CreateWebhook(ctx, bob, gateway.WebhookRequest{URL: "https://hooks.example.com/x", Events: delivered})
	require.NoError(t, err)

	require.NoError(t, svc.DeleteAgent(ctx, admin, "bob"))
	_, err = svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "bob", DeliveryMode: gateway.ModePull})
	require.NoError(t, err)
	list, err := svc.ListWebhooks(ctx, bob, "")
	require.NoError(t, err)
	assert.Empty(t, list)
}
