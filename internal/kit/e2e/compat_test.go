package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

// TestPythonSDKCompatibility drives a gateway the way the public Python
// SDK (amtp-protocol/amtp-python-sdk) and the reference gateway's
// agentry-admin tool do: the admin key in X-Admin-Key, a bare name
// registered and the full address read from "agent", push_target and
// custom headers for a push agent, key rotation, an agent unregistering
// itself with its own key, and a schema registered under "definition".
func TestPythonSDKCompatibility(t *testing.T) {
	bothRuntimes(t, testPythonSDKCompatibility)
}

// hookCall is one webhook request as the agent's server saw it.
type hookCall struct {
	header http.Header
	body   []byte
}

// recordingHook is an agent's webhook that keeps every request.
type recordingHook struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []hookCall
}

func newRecordingHook(t *testing.T) *recordingHook {
	h := &recordingHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{header: r.Header.Clone(), body: body})
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// waitCall waits for the n-th (1-based) request.
func (h *recordingHook) waitCall(t *testing.T, n int) hookCall {
	t.Helper()
	require.Eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.calls) >= n
	}, settleWithin, 20*time.Millisecond, "webhook call %d never came", n)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[n-1]
}

// sdkCall is one request with the headers a client chooses (the harness's
// call only knows Authorization: Bearer).
func sdkCall(t *testing.T, method, url string, hdr map[string]string, body any) (int, map[string]any, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := clientFor(url).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "answer is not a JSON object: %s", raw)
	}
	return resp.StatusCode, out, string(raw)
}

func xAdmin() map[string]string           { return map[string]string{"X-Admin-Key": adminKey} }
func agentKey(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

// sdkRegister registers like amtp.AMTP.register: the address as given, the
// API key and the full address read from the answer's "agent".
func sdkRegister(t *testing.T, g *gw, body map[string]any) (address, key string, answer map[string]any) {
	t.Helper()
	code, out, raw := sdkCall(t, "POST", g.url+"/v1/admin/agents", xAdmin(), body)
	require.Equal(t, http.StatusCreated, code, "%s", raw)
	ag, ok := out["agent"].(map[string]any)
	require.True(t, ok, "no agent object: %s", raw)
	address, _ = ag["address"].(string)
	key, _ = ag["api_key"].(string)
	if key == "" {
		key, _ = out["api_key"].(string)
	}
	require.NotEmpty(t, key, "%s", raw)
	return address, key, out
}

func testPythonSDKCompatibility(t *testing.T, onAWS bool) {
	dns := dnstest.Start(t)
	g := startGateway(t, dns, "compat.test", gwOpts{aws: onAWS})

	// A pull agent registered by bare name.
	puller, pullKey, _ := sdkRegister(t, g, map[string]any{"address": "sdk-puller", "delivery_mode": "pull"})
	require.Equal(t, "sdk-puller@compat.test", puller)

	// A push agent with push_target and custom headers.
	hook := newRecordingHook(t)
	pusher, pushKey, reg := sdkRegister(t, g, map[string]any{
		"address": "sdk-pusher", "delivery_mode": "push", "push_target": hook.srv.URL + "/amtp",
		"headers": map[string]string{"Authorization": "Bearer hook-token-7f3a", "X-Tenant": "acme-tenant"},
	})
	require.Equal(t, "sdk-pusher@compat.test", pusher)
	assert.Equal(t, hook.srv.URL+"/amtp", reg["agent"].(map[string]any)["push_target"])
	secret, _ := reg["webhook_secret"].(string)
	require.NotEmpty(t, secret)

	// The custom headers are stored, never shown.
	for _, path := range []string{"/v1/admin/agents", "/v1/admin/agents/sdk-pusher", "/v1/discovery/agents"} {
		code, _, raw := sdkCall(t, "GET", g.url+path, xAdmin(), nil)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, raw)
		assert.Contains(t, raw, pusher, path)
		assert.NotContains(t, raw, "hook-token-7f3a", path)
		assert.NotContains(t, raw, "acme-tenant", path)
	}

	// checkDelivery: the n-th webhook call carries the message, the
	// agent's custom headers and a valid signature under secret.
	checkDelivery := func(n int, messageID string) {
		t.Helper()
		c := hook.waitCall(t, n)
		assert.Equal(t, "Bearer hook-token-7f3a", c.header.Get("Authorization"))
		assert.Equal(t, "acme-tenant", c.header.Get("X-Tenant"))
		assert.Equal(t, "application/json", c.header.Get("Content-Type"))
		assert.Equal(t, messageID, c.header.Get(delivery.HeaderWebhookID))
		sig := map[string]string{
			delivery.HeaderWebhookID:        c.header.Get(delivery.HeaderWebhookID),
			delivery.HeaderWebhookTimestamp: c.header.Get(delivery.HeaderWebhookTimestamp),
			delivery.HeaderWebhookSignature: c.header.Get(delivery.HeaderWebhookSignature),
		}
		assert.NoError(t, delivery.VerifyWebhook(secret, sig, c.body, time.Now(), 5*time.Minute))
		var m map[string]any
		require.NoError(t, json.Unmarshal(c.body, &m))
		assert.Equal(t, messageID, m["message_id"])
	}
	send := func(key, from, to string, payload any) string {
		t.Helper()
		code, out, raw := sdkCall(t, "POST", g.url+"/v1/messages", agentKey(key), msg(from, []string{to}, payload))
		require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, code, "%s", raw)
		return str(out["message_id"])
	}

	id1 := send(pullKey, puller, pusher, map[string]any{"n": 1})
	checkDelivery(1, id1)

	// Rotation: a new key, the old one refused at once; the webhook secret
	// and the custom headers stay.
	code, out, raw := sdkCall(t, "POST", g.url+"/v1/admin/agents/"+pusher+"/rotate-key", xAdmin(), nil)
	require.Equal(t, http.StatusOK, code, "%s", raw)
	newKey, _ := out["api_key"].(string)
	require.NotEmpty(t, newKey)
	require.NotEqual(t, pushKey, newKey)
	assert.Equal(t, pusher, out["agent"].(map[string]any)["address"])
	code, _, raw = sdkCall(t, "GET", g.url+"/v1/messages", agentKey(pushKey), nil)
	assert.Equal(t, http.StatusUnauthorized, code, "old key after rotation: %s", raw)
	code, _, raw = sdkCall(t, "GET", g.url+"/v1/messages", agentKey(newKey), nil)
	assert.Equal(t, http.StatusOK, code, "new key: %s", raw)
	code, out, raw = sdkCall(t, "POST", g.url+"/v1/admin/agents/nobody/rotate-key", xAdmin(), nil)
	assert.Equal(t, http.StatusNotFound, code, "%s", raw)
	assert.Equal(t, "NOT_FOUND", out["error"].(map[string]any)["code"])

	id2 := send(pullKey, puller, pusher, map[string]any{"n": 2})
	checkDelivery(2, id2)
	// The rotated agent sends with its new key.
	id3 := send(newKey, pusher, puller, map[string]any{"n": 3})
	code, out, raw = sdkCall(t, "GET", g.url+"/v1/messages/"+id3+"/status", agentKey(newKey), nil)
	require.Equal(t, http.StatusOK, code, "%s", raw)
	assert.Equal(t, id3, out["message_id"])

	// A schema registered under "definition" is enforced.
	code, _, raw = sdkCall(t, "POST", g.url+"/v1/admin/schemas", xAdmin(), map[string]any{
		"id": "agntcy:compat.order.v1",
		"definition": map[string]any{"type": "object", "required": []string{"sku"},
			"properties": map[string]any{"sku": map[string]any{"type": "string"}}},
	})
	require.Equal(t, http.StatusCreated, code, "%s", raw)
	bad := msg(puller, []string{pusher}, map[string]any{"qty": 1})
	bad["schema"] = "agntcy:compat.order.v1"
	code, out, raw = sdkCall(t, "POST", g.url+"/v1/messages", agentKey(pullKey), bad)
	assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
	assert.Equal(t, "SCHEMA_VALIDATION_FAILED", out["error"].(map[string]any)["code"], "%s", raw)
	good := msg(puller, []string{pusher}, map[string]any{"sku": "A-1"})
	good["schema"] = "agntcy:compat.order.v1"
	code, _, raw = sdkCall(t, "POST", g.url+"/v1/messages", agentKey(pullKey), good)
	assert.Contains(t, []int{http.StatusOK, http.StatusAccepted}, code, "%s", raw)

	// Unregistering: not someone else's registration, but one's own.
	code, out, raw = sdkCall(t, "DELETE", g.url+"/v1/admin/agents/"+puller, agentKey(newKey), nil)
	assert.Equal(t, http.StatusForbidden, code, "%s", raw)
	assert.Equal(t, "FORBIDDEN", out["error"].(map[string]any)["code"])
	code, _, raw = sdkCall(t, "DELETE", g.url+"/v1/admin/agents/"+puller, agentKey(pullKey), nil)
	require.Equal(t, http.StatusOK, code, "%s", raw)
	assert.Contains(t, string(raw), `"status":"deleted"`, "a body the SDK can read")
	code, _, raw = sdkCall(t, "GET", g.url+"/v1/inbox/"+puller, agentKey(pullKey), nil)
	assert.Equal(t, http.StatusUnauthorized, code, "the key of an unregistered agent: %s", raw)
	code, _, raw = sdkCall(t, "GET", g.url+"/v1/admin/agents/"+puller, xAdmin(), nil)
	assert.Equal(t, http.StatusNotFound, code, "%s", raw)
	code, _, raw = sdkCall(t, "GET", g.url+"/v1/admin/agents/"+pusher, xAdmin(), nil)
	assert.Equal(t, http.StatusOK, code, "the other agent stays: %s", raw)

	// X-Admin-Key is the admin's only: an agent's key there is refused.
	code, _, raw = sdkCall(t, "GET", g.url+"/v1/admin/agents", map[string]string{"X-Admin-Key": newKey}, nil)
	assert.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	assert.False(t, strings.Contains(raw, pusher), "%s", raw)
}
