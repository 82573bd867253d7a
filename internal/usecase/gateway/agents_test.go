package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

const agentsAdminKey = "admin-key-0123456789abcdef"

var admin = gateway.Principal{Kind: gateway.AdminCaller}

// agentsService is a service on a fresh embedded store whose agent port
// may be wrapped; log collects its lines.
func agentsService(t *testing.T, wrap func(gateway.AgentStore) gateway.AgentStore) (*gateway.Service, *pebblestore.DB, *bytes.Buffer) {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	var agents gateway.AgentStore = db
	if wrap != nil {
		agents = wrap(db)
	}
	var buf bytes.Buffer
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: agentsAdminKey, Logger: slog.New(slog.NewJSONHandler(&buf, nil))},
		gateway.Ports{Messages: db, Inbox: db, Agents: agents, Queue: db})
	require.NoError(t, err)
	return svc, db, &buf
}

func requireCode(t *testing.T, err error, code amtp.Code) {
	t.Helper()
	require.Error(t, err)
	e, ok := amtp.AsError(err)
	require.True(t, ok, "not an AMTP error: %v", err)
	assert.Equal(t, code, e.Code, "%v", err)
}

func TestRegisterAgentTargetsAndHeaders(t *testing.T) {
	ctx := context.Background()
	svc, db, _ := agentsService(t, nil)
	for _, tc := range []struct {
		name        string
		req         gateway.RegisterRequest
		wantHook    string
		wantHeaders map[string]string
	}{
		{"webhook_url", gateway.RegisterRequest{Address: "a1", DeliveryMode: gateway.ModePush, WebhookURL: "https://h.example.com/1"},
			"https://h.example.com/1", nil},
		{"push_target", gateway.RegisterRequest{Address: "a2@example.org", DeliveryMode: gateway.ModePush, PushTarget: "https://h.example.com/2"},
			"https://h.example.com/2", nil},
		{"both equal", gateway.RegisterRequest{Address: "a3", DeliveryMode: gateway.ModePush, WebhookURL: "https://h.example.com/3", PushTarget: "https://h.example.com/3"},
			"https://h.example.com/3", nil},
		{"headers", gateway.RegisterRequest{Address: "a4", DeliveryMode: gateway.ModePush, PushTarget: "https://h.example.com/4",
			Headers: map[string]string{"Authorization": "Bearer t", "x-tenant": "acme", "X-Empty": "", "X-Tab": "a\tb", "X-Utf8": "café"}},
			"https://h.example.com/4", map[string]string{"Authorization": "Bearer t", "x-tenant": "acme", "X-Empty": "", "X-Tab": "a\tb", "X-Utf8": "café"}},
		{"empty headers", gateway.RegisterRequest{Address: "a5", DeliveryMode: gateway.ModePush, PushTarget: "https://h.example.com/5", Headers: map[string]string{}},
			"https://h.example.com/5", nil},
		{"pull", gateway.RegisterRequest{Address: "a6", DeliveryMode: gateway.ModePull, Headers: map[string]string{}}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := svc.RegisterAgent(ctx, admin, tc.req)
			require.NoError(t, err)
			addr := strings.TrimSuffix(tc.req.Address, "@example.org") + "@example.org"
			assert.Equal(t, addr, reg.Address)
			assert.Equal(t, addr, reg.Agent.Address)
			assert.Equal(t, reg.APIKey, reg.Agent.APIKey)
			assert.Equal(t, tc.wantHook, reg.WebhookURL)
			assert.Equal(t, tc.wantHook, reg.Agent.WebhookURL)
			assert.Equal(t, tc.wantHook, reg.Agent.PushTarget)
			assert.False(t, reg.Agent.CreatedAt.IsZero())
			stored, err := db.GetAgent(ctx, addr)
			require.NoError(t, err)
			assert.Equal(t, tc.wantHook, stored.WebhookURL)
			assert.Equal(t, tc.wantHeaders, stored.Headers)
			answer, err := json.Marshal(reg)
			require.NoError(t, err)
			for k, v := range tc.wantHeaders {
				assert.NotContains(t, string(answer), k, "headers are not shown")
				if v != "" {
					assert.NotContains(t, string(answer), v)
				}
			}
			info, err := svc.GetAgent(ctx, admin, addr)
			require.NoError(t, err)
			view, err := json.Marshal(info)
			require.NoError(t, err)
			assert.NotContains(t, string(view), "headers")
		})
	}
}

func TestRegisterAgentRefusals(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := agentsService(t, nil)
	hook := "https://h.example.com/x"
	many := map[string]string{}
	for i := range 17 {
		many["X-H"+strings.Repeat("a", i+1)] = "v"
	}
	manySchemas := make([]string, 65)
	for i := range manySchemas {
		manySchemas[i] = fmt.Sprintf("agntcy:commerce.order%d.v1", i)
	}
	for _, tc := range []struct {
		name  string
		req   gateway.RegisterRequest
		field string
	}{
		{"targets differ", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, WebhookURL: hook, PushTarget: hook + "2"}, "push_target"},
		{"bad push_target", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: "ftp://h.example.com/"}, "push_target"},
		{"pull with push_target", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, PushTarget: hook}, "push_target"},
		{"pull with webhook_url", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, WebhookURL: hook}, "webhook_url"},
		{"pull with headers", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, Headers: map[string]string{"X-A": "b"}}, "headers"},
		{"too many", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: many}, "headers"},
		{"not a token", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X(A)": "b"}}, "headers"},
		{"non-ASCII name", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-Café": "b"}}, "headers"},
		{"name too long", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{strings.Repeat("x", 65): "b"}}, "headers"},
		{"value too long", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-A": strings.Repeat("v", 1025)}}, "headers"},
		{"CR", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-A": "a\rb"}}, "headers"},
		{"LF", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-A": "a\nb"}}, "headers"},
		{"NUL", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-A": "a\x00b"}}, "headers"},
		{"DEL", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-A": "a\x7fb"}}, "headers"},
		{"twice", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{"X-A": "1", "x-a": "2"}}, "headers"},
		{"webhook URL too long", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, WebhookURL: hook + "/" + strings.Repeat("p", 2048)}, "webhook_url"},
		{"too many schema patterns", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, SupportedSchemas: manySchemas}, "supported_schemas"},
		{"empty schema pattern", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, SupportedSchemas: []string{"agntcy:a.b.v1", ""}}, "supported_schemas[1]"},
		{"schema pattern with a space", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, SupportedSchemas: []string{"agntcy:a b.v1"}}, "supported_schemas[0]"},
		{"schema pattern too long", gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePull, SupportedSchemas: []string{"agntcy:" + strings.Repeat("a", 300)}}, "supported_schemas[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.RegisterAgent(ctx, admin, tc.req)
			requireCode(t, err, amtp.CodeInvalidMessageFormat)
			e, _ := amtp.AsError(err)
			assert.Equal(t, tc.field, e.Details["field"], "%v", err)
		})
	}
	for _, name := range []string{"Content-Type", "CONTENT-LENGTH", "Host", "Webhook-Id", "webhook-timestamp", "webhook-signature",
		"X-AMTP-Version", "X-Amtp-Signature", "User-Agent", "Connection", "Transfer-Encoding", "Content-Encoding", "Upgrade", "TE", "Expect"} {
		_, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "b", DeliveryMode: gateway.ModePush, PushTarget: hook, Headers: map[string]string{name: "x"}})
		requireCode(t, err, amtp.CodeInvalidMessageFormat)
		assert.ErrorContains(t, err, name)
	}
	// Nothing of the refused registrations was stored.
	list, err := svc.ListAgents(ctx, admin)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// TestWebhookTargetsInsideTheNetworkRefused: a webhook URL must not name
// an internal address in any spelling — IPv6 forms that carry an IPv4
// address, zones, or numeric IPv4 spellings that netip refuses but a
// resolver reads as an address (which the registration refuses outright:
// no public DNS name looks like that).
func TestWebhookTargetsInsideTheNetworkRefused(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := agentsService(t, nil)
	for _, tc := range []struct {
		url     string
		numeric bool // refused as a numeric IPv4 spelling
	}{
		{"https://[64:ff9b::a9fe:a9fe]/", false},                   // NAT64 of 169.254.169.254
		{"https://[2002:a9fe:a9fe::1]/", false},                    // 6to4
		{"https://[::a9fe:a9fe]/", false},                          // IPv4-compatible
		{"https://[::ffff:169.254.169.254]/", false},               // IPv4-mapped
		{"https://[::ffff:0:a9fe:a9fe]/", false},                   // IPv4-translated
		{"https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", false}, // Teredo
		{"https://[2606:4700::5efe:a9fe:a9fe]/", false},            // ISATAP
		{"https://[fe80::1%25eth0]/", false},                       // zone
		{"https://[2606:4700::1111%25eth0]/", false},               // a zone on a global address
		{"https://2852039166/", true},                              // decimal
		{"https://0xa9fe.0xa9fe/hook", true},                       // hex parts
		{"https://0251.0376.0251.0376/", true},                     // octal
		{"https://169.254.43518/", true},                           // three parts
		{"https://0x7f000001:8443/hook", true},                     // hex with a port
		{"https://169.254.169.254./", true},                        // trailing dot
		{"https://010.0.0.1/", true},                               // leading zero
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "x", DeliveryMode: gateway.ModePush, WebhookURL: tc.url})
			requireCode(t, err, amtp.CodeInvalidMessageFormat)
			e, _ := amtp.AsError(err)
			assert.Equal(t, "webhook_url", e.Details["field"])
			if tc.numeric {
				assert.Contains(t, e.Message, "numeric IPv4")
			}
		})
	}
	for _, ok := range []string{"https://[64:ff9b::808:808]/hook", "https://[2606:4700::1111]/", "https://1e100.net/", "https://8.8.8.8/"} {
		_, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "y", DeliveryMode: gateway.ModePush, WebhookURL: ok})
		assert.NoError(t, err, ok)
	}
}

func TestRotateAgentKey(t *testing.T) {
	ctx := context.Background()
	svc, db, logs := agentsService(t, nil)
	reg, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "shop", DeliveryMode: gateway.ModePush,
		PushTarget: "https://h.example.com/shop", Headers: map[string]string{"X-Tenant": "acme"}, SupportedSchemas: []string{"agntcy:shop.*"}})
	require.NoError(t, err)
	before, err := db.GetAgent(ctx, "shop@example.org")
	require.NoError(t, err)
	shop, err := svc.Authenticate(ctx, reg.APIKey)
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		p       gateway.Principal
		address string
		code    amtp.Code
	}{
		{"anonymous", gateway.Principal{Kind: gateway.Anonymous}, "shop", amtp.CodeAuthenticationRequired},
		{"the agent itself", shop, "shop", amtp.CodeForbidden},
		{"unknown", admin, "nobody", amtp.CodeNotFound},
		{"not ours", admin, "shop@elsewhere.example", amtp.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.RotateAgentKey(ctx, tc.p, tc.address)
			requireCode(t, err, tc.code)
		})
	}

	rot, err := svc.RotateAgentKey(ctx, admin, "Shop@Example.org")
	require.NoError(t, err)
	assert.NotEqual(t, reg.APIKey, rot.APIKey)
	assert.Equal(t, "shop@example.org", rot.Address)
	assert.Equal(t, rot.APIKey, rot.Agent.APIKey)
	assert.Equal(t, "https://h.example.com/shop", rot.Agent.PushTarget)
	assert.Equal(t, []string{"agntcy:shop.*"}, rot.Agent.SupportedSchemas)
	assert.True(t, before.CreatedAt.Equal(rot.Agent.CreatedAt))
	assert.Empty(t, rot.WebhookSecret, "the kept secret is not shown again")

	_, err = svc.Authenticate(ctx, reg.APIKey)
	requireCode(t, err, amtp.CodeAuthenticationRequired)
	p, err := svc.Authenticate(ctx, rot.APIKey)
	require.NoError(t, err)
	assert.Equal(t, gateway.AgentCaller, p.Kind)
	assert.Equal(t, "shop@example.org", p.Agent.Address)

	after, err := db.GetAgent(ctx, "shop@example.org")
	require.NoError(t, err)
	want := *before
	want.APIKeyHash = gateway.HashAPIKey(rot.APIKey)
	assert.Equal(t, &want, after, "only the key changed: secret, headers, schemas and creation time stay")

	assert.Contains(t, logs.String(), `"msg":"audit: agent key rotated","address":"shop@example.org"`)
	assert.NotContains(t, logs.String(), rot.APIKey)
}

// racingAgents runs interfere once, just before the first ReplaceAgentKey
// reaches the store: another writer got there between the read and the
// write.
type racingAgents struct {
	gateway.AgentStore
	interfere func()
	calls     int
}

func (r *racingAgents) ReplaceAgentKey(ctx context.Context, address, oldHash, newHash string) (*gateway.Agent, error) {
	r.calls++
	if r.calls == 1 {
		r.interfere()
	}
	return r.AgentStore.ReplaceAgentKey(ctx, address, oldHash, newHash)
}

func TestRotateAgentKeyRaces(t *testing.T) {
	ctx := context.Background()
	t.Run("re-registered meanwhile: the new registration gets the key", func(t *testing.T) {
		var race *racingAgents
		svc, db, _ := agentsService(t, func(s gateway.AgentStore) gateway.AgentStore {
			race = &racingAgents{AgentStore: s}
			return race
		})
		_, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "shop", DeliveryMode: gateway.ModePull})
		require.NoError(t, err)
		var again *gateway.Registration
		race.interfere = func() {
			again, err = svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "shop", DeliveryMode: gateway.ModePush, PushTarget: "https://h.example.com/new"})
			require.NoError(t, err)
		}
		rot, err := svc.RotateAgentKey(ctx, admin, "shop")
		require.NoError(t, err)
		assert.Equal(t, 2, race.calls, "the conflict was retried")
		stored, err := db.GetAgent(ctx, "shop@example.org")
		require.NoError(t, err)
		assert.Equal(t, "https://h.example.com/new", stored.WebhookURL, "the newer registration is kept")
		assert.Equal(t, gateway.HashAPIKey(rot.APIKey), stored.APIKeyHash)
		_, err = svc.Authenticate(ctx, again.APIKey)
		requireCode(t, err, amtp.CodeAuthenticationRequired)
	})
	t.Run("deleted meanwhile: stays deleted", func(t *testing.T) {
		var race *racingAgents
		svc, db, _ := agentsService(t, func(s gateway.AgentStore) gateway.AgentStore {
			race = &racingAgents{AgentStore: s}
			return race
		})
		_, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "shop", DeliveryMode: gateway.ModePull})
		require.NoError(t, err)
		race.interfere = func() { require.NoError(t, svc.DeleteAgent(ctx, admin, "shop")) }
		_, err = svc.RotateAgentKey(ctx, admin, "shop")
		requireCode(t, err, amtp.CodeNotFound)
		_, err = db.GetAgent(ctx, "shop@example.org")
		assert.ErrorIs(t, err, gateway.ErrNotFound)
	})
}

func TestDeleteAgentByItself(t *testing.T) {
	ctx := context.Background()
	svc, _, logs := agentsService(t, nil)
	keys := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		reg, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: name, DeliveryMode: gateway.ModePull})
		require.NoError(t, err)
		keys[name] = reg.APIKey
	}
	as := func(name string) gateway.Principal {
		p, err := svc.Authenticate(ctx, keys[name])
		require.NoError(t, err)
		return p
	}
	alice, bob := as("alice"), as("bob")
	for _, tc := range []struct {
		name    string
		p       gateway.Principal
		address string
		code    amtp.Code // "" = deleted
	}{
		{"anonymous", gateway.Principal{Kind: gateway.Anonymous}, "alice", amtp.CodeAuthenticationRequired},
		{"another agent", bob, "alice", amtp.CodeForbidden},
		{"another agent, unknown address", bob, "carol", amtp.CodeForbidden},
		{"another agent, not an address of ours", bob, "bob@elsewhere.example", amtp.CodeForbidden},
		{"another agent, not an address", bob, "not an address", amtp.CodeForbidden},
		{"itself", alice, "ALICE@example.org", ""},
		{"the admin", admin, "bob", ""},
		{"the admin, gone", admin, "bob", amtp.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := svc.DeleteAgent(ctx, tc.p, tc.address)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			requireCode(t, err, tc.code)
		})
	}
	assert.Contains(t, logs.String(), `"msg":"audit: agent deleted","address":"alice@example.org","by":"itself"`)
	assert.Contains(t, logs.String(), `"msg":"audit: agent deleted","address":"bob@example.org","by":"admin"`)
}

func TestAuthenticateAdmin(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := agentsService(t, nil)
	reg, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "alice", DeliveryMode: gateway.ModePull})
	require.NoError(t, err)
	p, err := svc.AuthenticateAdmin(ctx, agentsAdminKey)
	require.NoError(t, err)
	assert.Equal(t, gateway.AdminCaller, p.Kind)
	for _, key := range []string{reg.APIKey, "wrong-key-0123456789", ""} {
		_, err := svc.AuthenticateAdmin(ctx, key)
		requireCode(t, err, amtp.CodeAuthenticationRequired)
		assert.EqualError(t, err, "AUTHENTICATION_REQUIRED: X-Admin-Key is not the admin key", "an agent's key is refused like a wrong one")
	}

	// No admin key configured: nothing is the admin key.
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	none, err := gateway.NewService(gateway.Config{Domain: "example.org"}, gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	_, err = none.AuthenticateAdmin(ctx, "")
	requireCode(t, err, amtp.CodeAuthenticationRequired)
	_, err = none.AuthenticateAdmin(ctx, agentsAdminKey)
	requireCode(t, err, amtp.CodeAuthenticationRequired)
}
