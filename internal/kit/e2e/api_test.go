package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

func TestAdminAgentsNeverShowSecrets(t *testing.T) {
	w := newWorld(t)
	st, out := call(t, "GET", w.b.url+"/v1/admin/agents", adminKey, nil)
	require.Equal(t, http.StatusOK, st)
	raw := str(out)
	assert.Contains(t, raw, "carol@b.test")
	for _, secret := range []string{"api_key", "webhook_secret", "whsec_", "amtp_", "api_key_hash", w.carol, w.bob} {
		assert.NotContains(t, raw, secret)
	}
	st, out = call(t, "GET", w.b.url+"/v1/admin/agents/carol", adminKey, nil)
	require.Equal(t, http.StatusOK, st)
	assert.Equal(t, "push", out["delivery_mode"])
	assert.NotContains(t, str(out), "whsec_")

	// The key works until the agent is deleted, then never again.
	st, _ = call(t, "GET", w.b.url+"/v1/inbox/bob@b.test", w.bob, nil)
	require.Equal(t, http.StatusOK, st)
	st, _ = call(t, "DELETE", w.b.url+"/v1/admin/agents/bob@b.test", adminKey, nil)
	require.Equal(t, http.StatusOK, st)
	st, out = call(t, "GET", w.b.url+"/v1/inbox/bob@b.test", w.bob, nil)
	assert.Equal(t, http.StatusUnauthorized, st)
	assert.Equal(t, "AUTHENTICATION_REQUIRED", out["error"].(map[string]any)["code"])
	st, _ = call(t, "DELETE", w.b.url+"/v1/admin/agents/bob@b.test", adminKey, nil)
	assert.Equal(t, http.StatusNotFound, st)

	// Registration input is validated.
	for _, bad := range []map[string]any{
		{"address": "x@other.test", "delivery_mode": "pull"},
		{"address": "Bad Name", "delivery_mode": "pull"},
		{"address": "p", "delivery_mode": "push"},
		{"address": "p", "delivery_mode": "carrier-pigeon"},
		{"address": "p", "delivery_mode": "pull", "webhook_url": "https://x.example"},
		{"address": "p", "delivery_mode": "pull", "unknown": 1},
	} {
		st, out := call(t, "POST", w.b.url+"/v1/admin/agents", adminKey, bad)
		assert.Equal(t, http.StatusBadRequest, st, "%v → %v", bad, out)
	}
}

func TestInsecureTargetsRefusedWithoutDevMode(t *testing.T) {
	dns := dnstest.Start(t)
	g := startGateway(t, dns, "secure.test", gwOpts{secure: true})
	for _, hook := range []string{
		"http://agent.example.com/hook", "https://127.0.0.1/hook", "https://localhost/hook",
		"https://10.0.0.7/hook", "https://169.254.169.254/latest", "https://[::1]/hook", "ftp://example.com/x",
		"https://user:pw@example.com/hook",
	} {
		st, out := call(t, "POST", g.url+"/v1/admin/agents", adminKey, map[string]any{"address": "p", "delivery_mode": "push", "webhook_url": hook})
		assert.Equal(t, http.StatusBadRequest, st, "%s → %v", hook, out)
	}
	st, out := call(t, "POST", g.url+"/v1/admin/agents", adminKey, map[string]any{"address": "p", "delivery_mode": "push", "webhook_url": "https://agent.example.com/hook"})
	assert.Equal(t, http.StatusCreated, st, "%v", out)
}

func TestListingDiscoveryAndCapabilities(t *testing.T) {
	w := newWorld(t)
	ids := make([]string, 0, 3)
	for i := 0; i < 3; i++ {
		st, out := w.a.send(w.alice, msg(w.aliceAddr, []string{w.bobAddr}, map[string]any{"i": i}))
		require.Equal(t, http.StatusAccepted, st, "%v", out)
		ids = append(ids, str(out["message_id"]))
	}
	for _, id := range ids {
		w.a.waitStatus(w.alice, id, w.bobAddr, "delivered", settleWithin)
	}
	// Newest first, paged by cursor.
	st, out := call(t, "GET", w.a.url+"/v1/messages?limit=2", w.alice, nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	page := out["messages"].([]any)
	require.Len(t, page, 2)
	assert.Equal(t, ids[2], page[0].(map[string]any)["message_id"])
	assert.Equal(t, ids[1], page[1].(map[string]any)["message_id"])
	next, ok := out["next_cursor"].(string)
	require.True(t, ok && next != "", "a cursor for the next page: %v", out)
	st, out = call(t, "GET", w.a.url+"/v1/messages?limit=2&cursor="+url.QueryEscape(next), w.alice, nil)
	require.Equal(t, http.StatusOK, st)
	page = out["messages"].([]any)
	require.Len(t, page, 1)
	assert.Equal(t, ids[0], page[0].(map[string]any)["message_id"])

	st, out = call(t, "GET", w.a.url+"/v1/messages?status=delivered&recipient=bob@b.test", w.alice, nil)
	require.Equal(t, http.StatusOK, st)
	assert.Len(t, out["messages"], 3)
	st, out = call(t, "GET", w.a.url+"/v1/messages?status=failed", w.alice, nil)
	require.Equal(t, http.StatusOK, st)
	assert.Len(t, out["messages"], 0)
	st, _ = call(t, "GET", w.a.url+"/v1/messages?status=bogus", w.alice, nil)
	assert.Equal(t, http.StatusBadRequest, st)
	st, _ = call(t, "GET", w.a.url+"/v1/messages?cursor=%21%21", w.alice, nil)
	assert.Equal(t, http.StatusBadRequest, st)
	st, _ = call(t, "GET", w.a.url+"/v1/messages", "", nil)
	assert.Equal(t, http.StatusUnauthorized, st)

	// Another agent sees none of alice's mail, and cannot read it by id.
	other, _ := w.a.register("zed", "pull", "")
	st, out = call(t, "GET", w.a.url+"/v1/messages", other, nil)
	require.Equal(t, http.StatusOK, st)
	assert.Len(t, out["messages"], 0)
	st, _ = call(t, "GET", w.a.url+"/v1/messages/"+ids[0], other, nil)
	assert.Equal(t, http.StatusNotFound, st)
	st, out = call(t, "GET", w.a.url+"/v1/messages/"+ids[0], w.alice, nil)
	require.Equal(t, http.StatusOK, st)
	assert.Equal(t, ids[0], out["message_id"])

	// Discovery of local agents, with filters and without secrets.
	st, out = call(t, "GET", w.b.url+"/v1/discovery/agents", "", nil)
	require.Equal(t, http.StatusOK, st)
	assert.EqualValues(t, 2, out["count"])
	st, out = call(t, "GET", w.b.url+"/v1/discovery/agents?delivery_mode=push", "", nil)
	require.Equal(t, http.StatusOK, st)
	agents := out["agents"].([]any)
	require.Len(t, agents, 1)
	assert.Equal(t, "carol@b.test", agents[0].(map[string]any)["address"])
	assert.NotContains(t, str(out), "webhook")

	// Capabilities: our own from config, another domain's from DNS.
	st, out = call(t, "GET", w.a.url+"/v1/capabilities/b.test", "", nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	assert.Equal(t, true, out["amtp"])
	assert.Equal(t, w.b.url, out["gateway"])
	st, out = call(t, "GET", w.a.url+"/v1/capabilities/c.test", "", nil)
	require.Equal(t, http.StatusOK, st)
	assert.Equal(t, false, out["amtp"])
	st, _ = call(t, "GET", w.a.url+"/v1/capabilities/"+url.PathEscape("bad domain"), "", nil)
	assert.Equal(t, http.StatusBadRequest, st)

	for _, p := range []string{"/healthz", "/health", "/readyz", "/ready", "/.well-known/amtp"} {
		st, _ := call(t, "GET", w.a.url+p, "", nil)
		assert.Equal(t, http.StatusOK, st, p)
	}
}

func TestUnknownRecipientAmongOthers(t *testing.T) {
	w := newWorld(t)
	// Locally: the unknown one fails at once, the known one is delivered.
	st, out := w.a.send(w.alice, msg(w.aliceAddr, []string{"ghost@a.test", "alice@a.test"}, map[string]any{}))
	require.Equal(t, http.StatusAccepted, st, "%v", out)
	id := str(out["message_id"])
	rs := recipientStatus(t, out, "ghost@a.test")
	assert.Equal(t, "failed", rs["status"])
	assert.Equal(t, "AGENT_UNKNOWN", rs["error_code"])
	w.a.waitStatus(w.alice, id, "alice@a.test", "delivered", settleWithin)
	assert.Equal(t, "partially_delivered", w.a.status(w.alice, id)["status"])

	// Across gateways: b.test refuses ghost@b.test synchronously, a.test
	// records it and reports it to alice.
	st, out = w.a.send(w.alice, msg(w.aliceAddr, []string{"ghost@b.test", w.bobAddr}, map[string]any{}))
	require.Equal(t, http.StatusAccepted, st, "%v", out)
	id2 := str(out["message_id"])
	rs = w.a.waitStatus(w.alice, id2, "ghost@b.test", "failed", settleWithin)
	assert.Equal(t, "AGENT_UNKNOWN", rs["error_code"])
	w.a.waitStatus(w.alice, id2, w.bobAddr, "delivered", settleWithin)
	inbox := w.a.waitInbox(w.alice, w.aliceAddr, 2, settleWithin)
	var report map[string]any
	for _, m := range inbox {
		if m["sender"] == "postmaster@a.test" {
			report = m
		}
	}
	require.NotNil(t, report, "a failure report in %v", inbox)
	assert.Equal(t, id2, report["in_reply_to"])
	assert.True(t, strings.Contains(str(report["payload"]), "ghost@b.test"))
}
