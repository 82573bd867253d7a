package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The compatibility surface that existing clients (the Python SDK, the
// reference gateway's agentry-admin tool) rely on; see PROTOCOL.md,
// "Compatibility with existing clients and gateways".

const testAdminKey = "admin-key-0123456789abcdef"

type api struct {
	t *testing.T
	h http.Handler
}

func newAPI(t *testing.T) *api {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Schemas: schema.NewRegistry(db)})
	require.NoError(t, err)
	return &api{t: t, h: httpapi.New(svc, httpapi.Options{Logger: quiet})}
}

// bearer and adminHeader are the two ways of presenting a key.
func bearer(key string) map[string]string      { return map[string]string{"Authorization": "Bearer " + key} }
func adminHeader(key string) map[string]string { return map[string]string{"X-Admin-Key": key} }

func (a *api) call(method, path string, hdr map[string]string, body string) (int, map[string]any, string) {
	a.t.Helper()
	rec := a.do(method, path, hdr, body)
	var out map[string]any
	if s := strings.TrimSpace(rec.Body.String()); s != "" {
		require.NoError(a.t, json.Unmarshal(rec.Body.Bytes(), &out), "answer is not a JSON object: %s", s)
	}
	return rec.Code, out, rec.Body.String()
}

func (a *api) do(method, path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

// register registers an agent with the admin key and returns its key.
func (a *api) register(body string) map[string]any {
	a.t.Helper()
	code, out, raw := a.call("POST", "/v1/admin/agents", bearer(testAdminKey), body)
	require.Equal(a.t, http.StatusCreated, code, "%s", raw)
	return out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func errField(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	f, _ := d["field"].(string)
	return f
}

func TestAdminKeyHeader(t *testing.T) {
	a := newAPI(t)
	agentKey := a.register(`{"address":"carol","delivery_mode":"pull"}`)["api_key"].(string)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
		code string
	}{
		{"bearer admin key", bearer(testAdminKey), http.StatusCreated, ""},
		{"X-Admin-Key", adminHeader(testAdminKey), http.StatusCreated, ""},
		{"X-Admin-Key with spaces around", adminHeader("  " + testAdminKey + " "), http.StatusCreated, ""},
		{"both, the same key", map[string]string{"X-Admin-Key": testAdminKey, "Authorization": "Bearer " + testAdminKey}, http.StatusCreated, ""},
		{"X-Admin-Key wrong", adminHeader("not-the-admin-key-at-all"), http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
		{"X-Admin-Key is an agent's key", adminHeader(agentKey), http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
		{"both, different keys", map[string]string{"X-Admin-Key": testAdminKey, "Authorization": "Bearer " + agentKey}, http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
		{"no key", nil, http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
		{"agent key as bearer", bearer(agentKey), http.StatusForbidden, "FORBIDDEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := a.call("POST", "/v1/admin/agents", tc.hdr, `{"address":"dave","delivery_mode":"pull"}`)
			require.Equal(t, tc.want, code, "%s", raw)
			if tc.code != "" {
				assert.Equal(t, tc.code, errCode(out), "%s", raw)
			}
		})
	}

	// An agent's key in X-Admin-Key does not act as that agent either.
	code, _, raw := a.call("GET", "/v1/inbox/carol@example.org", adminHeader(agentKey), "")
	assert.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	code, _, raw = a.call("GET", "/v1/inbox/carol@example.org", bearer(agentKey), "")
	assert.Equal(t, http.StatusOK, code, "%s", raw)
	// The admin key in X-Admin-Key works beyond the admin routes too.
	code, _, raw = a.call("GET", "/v1/inbox/carol@example.org", adminHeader(testAdminKey), "")
	assert.Equal(t, http.StatusOK, code, "%s", raw)
}

func TestRegisterAnswerAndAliases(t *testing.T) {
	a := newAPI(t)
	out := a.register(`{"address":"shop","delivery_mode":"push","push_target":"https://hooks.example.com/shop",` +
		`"headers":{"Authorization":"Bearer hook-token-1","X-Tenant":"t-42"},"supported_schemas":["agntcy:commerce.*"]}`)
	// Top level as before.
	assert.Equal(t, "shop@example.org", out["address"])
	assert.Equal(t, "https://hooks.example.com/shop", out["webhook_url"])
	assert.NotEmpty(t, out["api_key"])
	assert.NotEmpty(t, out["webhook_secret"])
	// And the agent object existing clients read.
	ag, ok := out["agent"].(map[string]any)
	require.True(t, ok, "no agent object in %v", out)
	assert.Equal(t, "shop@example.org", ag["address"])
	assert.Equal(t, "push", ag["delivery_mode"])
	assert.Equal(t, "https://hooks.example.com/shop", ag["webhook_url"])
	assert.Equal(t, "https://hooks.example.com/shop", ag["push_target"])
	assert.Equal(t, []any{"agntcy:commerce.*"}, ag["supported_schemas"])
	assert.Equal(t, out["api_key"], ag["api_key"])
	assert.NotEmpty(t, ag["created_at"])
	assert.NotContains(t, ag, "webhook_secret")

	// The custom headers are never shown again: not even at registration,
	// nor by the admin views, nor by discovery.
	for _, path := range []string{"/v1/admin/agents", "/v1/admin/agents/shop", "/v1/discovery/agents"} {
		_, _, raw := a.call("GET", path, bearer(testAdminKey), "")
		assert.Contains(t, raw, "shop@example.org", path)
		for _, s := range []string{"hook-token-1", "t-42", "X-Tenant", "headers"} {
			assert.NotContains(t, raw, s, path)
		}
	}
	_, _, raw := a.call("POST", "/v1/admin/agents", bearer(testAdminKey),
		`{"address":"shop2","delivery_mode":"push","webhook_url":"https://hooks.example.com/s","headers":{"X-Tenant":"t-43"}}`)
	assert.NotContains(t, raw, "t-43")

	// A pull agent: no webhook in the agent object.
	out = a.register(`{"address":"reader@example.org","delivery_mode":"pull"}`)
	ag = out["agent"].(map[string]any)
	assert.Equal(t, "reader@example.org", ag["address"])
	assert.NotContains(t, ag, "webhook_url")
	assert.NotContains(t, ag, "push_target")
}

func TestRegisterValidation(t *testing.T) {
	a := newAPI(t)
	many := make([]string, 17)
	for i := range many {
		many[i] = `"X-H` + strings.Repeat("a", i+1) + `":"v"`
	}
	for _, tc := range []struct {
		name  string
		body  string
		field string // "" = accepted
	}{
		{"webhook_url", `{"address":"a1","delivery_mode":"push","webhook_url":"https://h.example.com/1"}`, ""},
		{"push_target", `{"address":"a2","delivery_mode":"push","push_target":"https://h.example.com/2"}`, ""},
		{"both the same", `{"address":"a3","delivery_mode":"push","webhook_url":"https://h.example.com/3","push_target":"https://h.example.com/3"}`, ""},
		{"both different", `{"address":"a4","delivery_mode":"push","webhook_url":"https://h.example.com/4","push_target":"https://h.example.com/5"}`, "push_target"},
		{"push_target checked like webhook_url", `{"address":"a5","delivery_mode":"push","push_target":"https://127.0.0.1/x"}`, "push_target"},
		{"push without target", `{"address":"a6","delivery_mode":"push","push_target":""}`, "webhook_url"},
		{"pull with push_target", `{"address":"a7","delivery_mode":"pull","push_target":"https://h.example.com/7"}`, "push_target"},
		{"pull with headers", `{"address":"a8","delivery_mode":"pull","headers":{"X-A":"b"}}`, "headers"},
		{"pull with empty headers", `{"address":"a9","delivery_mode":"pull","headers":{}}`, ""},
		{"Authorization header allowed", `{"address":"b1","delivery_mode":"push","push_target":"https://h.example.com/b1","headers":{"authorization":"Basic eDp5"}}`, ""},
		{"sixteen headers", `{"address":"b2","delivery_mode":"push","push_target":"https://h.example.com/b2","headers":{` + strings.Join(many[:16], ",") + `}}`, ""},
		{"seventeen headers", `{"address":"b3","delivery_mode":"push","push_target":"https://h.example.com/b3","headers":{` + strings.Join(many, ",") + `}}`, "headers"},
		{"name with space", `{"address":"b4","delivery_mode":"push","push_target":"https://h.example.com/b4","headers":{"X Bad":"v"}}`, "headers"},
		{"name with colon", `{"address":"b5","delivery_mode":"push","push_target":"https://h.example.com/b5","headers":{"X-Bad:":"v"}}`, "headers"},
		{"empty name", `{"address":"b6","delivery_mode":"push","push_target":"https://h.example.com/b6","headers":{"":"v"}}`, "headers"},
		{"name of 64 bytes", `{"address":"b7","delivery_mode":"push","push_target":"https://h.example.com/b7","headers":{"` + strings.Repeat("n", 64) + `":"v"}}`, ""},
		{"name of 65 bytes", `{"address":"b8","delivery_mode":"push","push_target":"https://h.example.com/b8","headers":{"` + strings.Repeat("n", 65) + `":"v"}}`, "headers"},
		{"value of 1024 bytes", `{"address":"b9","delivery_mode":"push","push_target":"https://h.example.com/b9","headers":{"X-V":"` + strings.Repeat("v", 1024) + `"}}`, ""},
		{"value of 1025 bytes", `{"address":"c1","delivery_mode":"push","push_target":"https://h.example.com/c1","headers":{"X-V":"` + strings.Repeat("v", 1025) + `"}}`, "headers"},
		{"value with CRLF", `{"address":"c2","delivery_mode":"push","push_target":"https://h.example.com/c2","headers":{"X-V":"a\r\nX-Injected: 1"}}`, "headers"},
		{"value with LF", `{"address":"c3","delivery_mode":"push","push_target":"https://h.example.com/c3","headers":{"X-V":"a\nb"}}`, "headers"},
		{"value with NUL", `{"address":"c4","delivery_mode":"push","push_target":"https://h.example.com/c4","headers":{"X-V":"a\u0000b"}}`, "headers"},
		{"same name twice in other case", `{"address":"c5","delivery_mode":"push","push_target":"https://h.example.com/c5","headers":{"X-Dup":"1","x-dup":"2"}}`, "headers"},
		{"headers not strings", `{"address":"c6","delivery_mode":"push","push_target":"https://h.example.com/c6","headers":{"X-N":1}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := a.call("POST", "/v1/admin/agents", bearer(testAdminKey), tc.body)
			switch {
			case tc.name == "headers not strings":
				// Not a registration at all: refused by the decoder.
				assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
				assert.Equal(t, "INVALID_MESSAGE_FORMAT", errCode(out), "%s", raw)
			case tc.field == "":
				assert.Equal(t, http.StatusCreated, code, "%s", raw)
			default:
				assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
				assert.Equal(t, "INVALID_MESSAGE_FORMAT", errCode(out), "%s", raw)
				assert.Equal(t, tc.field, errField(out), "%s", raw)
			}
		})
	}
	// Names the gateway sets itself cannot be registered, in any case.
	for _, name := range []string{"Content-Type", "content-length", "Host", "webhook-id", "Webhook-Timestamp",
		"WEBHOOK-SIGNATURE", "X-AMTP-Version", "x-amtp-anything", "User-Agent", "Connection", "Transfer-Encoding"} {
		t.Run("reserved "+name, func(t *testing.T) {
			code, out, raw := a.call("POST", "/v1/admin/agents", bearer(testAdminKey),
				`{"address":"r1","delivery_mode":"push","push_target":"https://h.example.com/r","headers":{"`+name+`":"x"}}`)
			assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
			assert.Equal(t, "headers", errField(out), "%s", raw)
			assert.Contains(t, raw, name)
		})
	}
}

// TestRegisterFromAgentryAdmin: the reference gateway's admin tool sends
// every field of its agent record, the ones it cannot know empty.
func TestRegisterFromAgentryAdmin(t *testing.T) {
	a := newAPI(t)
	code, out, raw := a.call("POST", "/v1/admin/agents", adminHeader(testAdminKey),
		`{"address":"api-service","delivery_mode":"push","push_target":"https://hooks.example.com/api","headers":{"Auth":"Bearer token"},`+
			`"api_key":"","supported_schemas":null,"requires_schema":false,"created_at":"0001-01-01T00:00:00Z","last_access":"0001-01-01T00:00:00Z"}`)
	require.Equal(t, http.StatusCreated, code, "%s", raw)
	assert.Equal(t, "api-service@example.org", out["agent"].(map[string]any)["address"])
	assert.NotEmpty(t, out["agent"].(map[string]any)["api_key"], "agentry-admin prints agent.api_key")

	// What the gateway cannot honour is refused, not ignored.
	code, out, raw = a.call("POST", "/v1/admin/agents", adminHeader(testAdminKey),
		`{"address":"x1","delivery_mode":"pull","api_key":"amtp_chosen-by-the-caller"}`)
	assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
	assert.Equal(t, "api_key", errField(out), "%s", raw)
	code, out, raw = a.call("POST", "/v1/admin/agents", adminHeader(testAdminKey),
		`{"address":"x2","delivery_mode":"pull","requires_schema":true}`)
	assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
	assert.Equal(t, "requires_schema", errField(out), "%s", raw)
	// Other unknown fields stay refused.
	code, _, raw = a.call("POST", "/v1/admin/agents", adminHeader(testAdminKey), `{"address":"x3","delivery_mode":"pull","colour":"red"}`)
	assert.Equal(t, http.StatusBadRequest, code, "%s", raw)
}

func TestRotateKey(t *testing.T) {
	a := newAPI(t)
	reg := a.register(`{"address":"shop","delivery_mode":"push","push_target":"https://hooks.example.com/shop","headers":{"X-Tenant":"t-1"}}`)
	oldKey := reg["api_key"].(string)
	other := a.register(`{"address":"other","delivery_mode":"pull"}`)["api_key"].(string)

	// Only the admin rotates.
	code, out, raw := a.call("POST", "/v1/admin/agents/shop/rotate-key", bearer(oldKey), "")
	assert.Equal(t, http.StatusForbidden, code, "%s", raw)
	assert.Equal(t, "FORBIDDEN", errCode(out))
	code, _, raw = a.call("POST", "/v1/admin/agents/shop/rotate-key", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	code, out, raw = a.call("POST", "/v1/admin/agents/nobody/rotate-key", bearer(testAdminKey), "")
	assert.Equal(t, http.StatusNotFound, code, "%s", raw)
	assert.Equal(t, "NOT_FOUND", errCode(out))
	code, _, raw = a.call("GET", "/v1/admin/agents/shop/rotate-key", bearer(testAdminKey), "")
	assert.Equal(t, http.StatusMethodNotAllowed, code, "%s", raw)

	code, out, raw = a.call("POST", "/v1/admin/agents/shop@example.org/rotate-key", adminHeader(testAdminKey), "")
	require.Equal(t, http.StatusOK, code, "%s", raw)
	newKey, _ := out["api_key"].(string)
	require.NotEmpty(t, newKey)
	assert.NotEqual(t, oldKey, newKey)
	assert.Equal(t, "shop@example.org", out["address"])
	assert.NotContains(t, out, "webhook_secret", "the webhook secret is kept, so it is not shown again")
	assert.NotContains(t, raw, "t-1")
	ag := out["agent"].(map[string]any)
	assert.Equal(t, "shop@example.org", ag["address"])
	assert.Equal(t, newKey, ag["api_key"])
	assert.Equal(t, "https://hooks.example.com/shop", ag["push_target"])
	assert.Equal(t, reg["agent"].(map[string]any)["created_at"], ag["created_at"], "the agent is the same one")
	// Rotating again: the answer is a credential, never cached.
	rec := a.do("POST", "/v1/admin/agents/shop/rotate-key", adminHeader(testAdminKey), "")
	require.Equal(t, http.StatusOK, rec.Code, "%s", rec.Body)
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	newest := apiKeyOf(t, rec.Body.Bytes())
	assert.NotEqual(t, newKey, newest)

	// The old key stops working at once; the newest works; others are untouched.
	code, _, raw = a.call("GET", "/v1/messages", bearer(oldKey), "")
	assert.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	code, _, raw = a.call("GET", "/v1/messages", bearer(newKey), "")
	assert.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	code, _, raw = a.call("GET", "/v1/messages", bearer(newest), "")
	assert.Equal(t, http.StatusOK, code, "%s", raw)
	code, _, raw = a.call("GET", "/v1/inbox/other", bearer(other), "")
	assert.Equal(t, http.StatusOK, code, "%s", raw)
}

func apiKeyOf(t *testing.T, body []byte) string {
	t.Helper()
	var out struct {
		APIKey string `json:"api_key"`
	}
	require.NoError(t, json.Unmarshal(body, &out), "%s", body)
	require.NotEmpty(t, out.APIKey)
	return out.APIKey
}

func TestSelfUnregister(t *testing.T) {
	a := newAPI(t)
	alice := a.register(`{"address":"alice","delivery_mode":"pull"}`)["api_key"].(string)
	bob := a.register(`{"address":"bob","delivery_mode":"pull"}`)["api_key"].(string)
	a.register(`{"address":"carol","delivery_mode":"pull"}`)

	for _, tc := range []struct {
		name string
		hdr  map[string]string
		path string
		want int
		code string
	}{
		{"anonymous", nil, "/v1/admin/agents/alice", http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
		{"another agent", bearer(bob), "/v1/admin/agents/alice", http.StatusForbidden, "FORBIDDEN"},
		{"another agent, unknown address", bearer(bob), "/v1/admin/agents/nobody", http.StatusForbidden, "FORBIDDEN"},
		{"another agent, foreign address", bearer(bob), "/v1/admin/agents/alice@elsewhere.example", http.StatusForbidden, "FORBIDDEN"},
		{"itself, full address in other case", bearer(alice), "/v1/admin/agents/Alice@Example.org", http.StatusOK, ""},
		{"itself again: its key is gone", bearer(alice), "/v1/admin/agents/alice", http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
		{"admin deletes another", adminHeader(testAdminKey), "/v1/admin/agents/carol", http.StatusOK, ""},
		{"admin, unknown", adminHeader(testAdminKey), "/v1/admin/agents/carol", http.StatusNotFound, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := a.call("DELETE", tc.path, tc.hdr, "")
			require.Equal(t, tc.want, code, "%s", raw)
			if tc.code != "" {
				assert.Equal(t, tc.code, errCode(out), "%s", raw)
			}
		})
	}
	// bob is still there.
	code, _, raw := a.call("GET", "/v1/admin/agents/bob", bearer(testAdminKey), "")
	assert.Equal(t, http.StatusOK, code, "%s", raw)
	code, _, raw = a.call("GET", "/v1/admin/agents/alice", bearer(testAdminKey), "")
	assert.Equal(t, http.StatusNotFound, code, "%s", raw)
}

func TestSchemaDefinitionAlias(t *testing.T) {
	a := newAPI(t)
	const doc = `{"type":"object","required":["sku"],"properties":{"sku":{"type":"string"}}}`
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		want   int
		field  string
	}{
		{"POST schema", "POST", "/v1/admin/schemas", `{"id":"agntcy:shop.a.v1","schema":` + doc + `}`, http.StatusCreated, ""},
		{"POST definition", "POST", "/v1/admin/schemas", `{"id":"agntcy:shop.b.v1","definition":` + doc + `}`, http.StatusCreated, ""},
		{"POST definition with force (agentry-admin)", "POST", "/v1/admin/schemas", `{"id":"agntcy:shop.b.v1","definition":` + doc + `,"force":true}`, http.StatusOK, ""},
		{"POST both, the same", "POST", "/v1/admin/schemas", `{"id":"agntcy:shop.c.v1","schema":` + doc + `,"definition":` + doc + `}`, http.StatusCreated, ""},
		{"POST both, different", "POST", "/v1/admin/schemas", `{"id":"agntcy:shop.d.v1","schema":` + doc + `,"definition":{"type":"string"}}`, http.StatusBadRequest, "definition"},
		{"POST neither", "POST", "/v1/admin/schemas", `{"id":"agntcy:shop.e.v1"}`, http.StatusBadRequest, ""},
		{"PUT the document", "PUT", "/v1/admin/schemas/agntcy:shop.f.v1", doc, http.StatusCreated, ""},
		{"PUT definition", "PUT", "/v1/admin/schemas/agntcy:shop.g.v1", `{"definition":` + doc + `}`, http.StatusCreated, ""},
		{"PUT schema with its id", "PUT", "/v1/admin/schemas/agntcy:shop.h.v1", `{"id":"agntcy:shop.h.v1","schema":` + doc + `}`, http.StatusCreated, ""},
		{"PUT with another id", "PUT", "/v1/admin/schemas/agntcy:shop.i.v1", `{"id":"agntcy:shop.other.v1","definition":` + doc + `}`, http.StatusBadRequest, "id"},
		{"PUT both, different", "PUT", "/v1/admin/schemas/agntcy:shop.j.v1", `{"schema":` + doc + `,"definition":{"type":"string"}}`, http.StatusBadRequest, "definition"},
		{"PUT a document with a schema member", "PUT", "/v1/admin/schemas/agntcy:shop.k.v1", `{"title":"wraps nothing","schema":` + doc + `}`, http.StatusCreated, ""},
		{"PUT not JSON", "PUT", "/v1/admin/schemas/agntcy:shop.l.v1", `{"type":`, http.StatusBadRequest, "schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := a.call(tc.method, tc.path, adminHeader(testAdminKey), tc.body)
			require.Equal(t, tc.want, code, "%s", raw)
			if tc.field != "" {
				assert.Equal(t, tc.field, errField(out), "%s", raw)
			}
		})
	}
	// What is stored is the JSON Schema, never the wrapper: a payload is
	// validated against it.
	for _, id := range []string{"agntcy:shop.b.v1", "agntcy:shop.g.v1", "agntcy:shop.h.v1"} {
		code, out, raw := a.call("POST", "/v1/admin/schemas/"+id+"/validate", adminHeader(testAdminKey), `{"name":"no sku"}`)
		require.Equal(t, http.StatusOK, code, "%s", raw)
		assert.Equal(t, false, out["valid"], "%s: %s", id, raw)
		code, out, raw = a.call("POST", "/v1/admin/schemas/"+id+"/validate", adminHeader(testAdminKey), `{"sku":"A-1"}`)
		require.Equal(t, http.StatusOK, code, "%s", raw)
		assert.Equal(t, true, out["valid"], "%s: %s", id, raw)
	}
	// A document with members besides the wrapper's is the document: its
	// "schema" member is no keyword and constrains nothing.
	code, out, raw := a.call("POST", "/v1/admin/schemas/agntcy:shop.k.v1/validate", adminHeader(testAdminKey), `{"name":"no sku"}`)
	require.Equal(t, http.StatusOK, code, "%s", raw)
	assert.Equal(t, true, out["valid"], "%s", raw)
}

// anyToken is an Identity that takes every OAuth token as the admin's.
type anyToken struct{}

func (anyToken) Claims(*http.Request, string) (gateway.TokenClaims, error) {
	return gateway.TokenClaims{Agent: "carol", Scopes: []string{"agentry:admin"}}, nil
}
func (anyToken) PeerNames(*http.Request) []string { return nil }

// TestAdminKeyHeaderNotUnderOAuth: under /oauth the caller is who the
// OAuth token says; X-Admin-Key is refused there, not ranked above it.
func TestAdminKeyHeaderNotUnderOAuth(t *testing.T) {
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, OAuthAdminScope: "agentry:admin", Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	a := &api{t: t, h: httpapi.New(svc, httpapi.Options{Logger: quiet, Identity: anyToken{}})}
	body := `{"address":"dave","delivery_mode":"pull"}`
	code, out, raw := a.call("POST", "/oauth/v1/admin/agents", adminHeader(testAdminKey), body)
	assert.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	assert.Equal(t, "AUTHENTICATION_REQUIRED", errCode(out))
	code, _, raw = a.call("POST", "/oauth/v1/admin/agents", bearer("a-token"), body)
	assert.Equal(t, http.StatusCreated, code, "%s", raw)
	code, _, raw = a.call("POST", "/v1/admin/agents", adminHeader(testAdminKey), `{"address":"erin","delivery_mode":"pull"}`)
	assert.Equal(t, http.StatusCreated, code, "%s", raw)
}
