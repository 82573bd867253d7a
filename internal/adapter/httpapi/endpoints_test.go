package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// newStoreAPI is newAPI with its store at hand, on clock now.
func newStoreAPI(t *testing.T, now func() time.Time) (*api, *pebblestore.DB) {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Now: now, Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, Schemas: schema.NewRegistry(db)})
	require.NoError(t, err)
	// No Logger: the handler falls back to the default one.
	return &api{t: t, h: httpapi.New(svc, httpapi.Options{})}, db
}

// TestMalformedCredentialsAreRefusedEverywhere: an Authorization header
// that is not a bearer token is refused by every endpoint that reads the
// caller, before anything else is looked at.
func TestMalformedCredentialsAreRefusedEverywhere(t *testing.T) {
	a, _ := newStoreAPI(t, time.Now)
	basic := map[string]string{"Authorization": "Basic eDp5"}
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/v1/messages", ""},
		{"GET", "/v1/messages/m1", ""},
		{"GET", "/v1/messages/m1/status", ""},
		{"GET", "/v1/workflows/w1", ""},
		{"GET", "/v1/inbox/bob", ""},
		{"DELETE", "/v1/inbox/bob/m1", ""},
		{"GET", "/v1/admin/agents/bob", ""},
		{"POST", "/v1/admin/agents/bob/rotate-key", ""},
		{"POST", "/v1/admin/schemas", `{"id":"agntcy:shop.a.v1","schema":{}}`},
		{"GET", "/v1/admin/schemas", ""},
		{"GET", "/v1/admin/schemas/agntcy:shop.a.v1", ""},
		{"PUT", "/v1/admin/schemas/agntcy:shop.a.v1", `{}`},
		{"DELETE", "/v1/admin/schemas/agntcy:shop.a.v1", ""},
		{"POST", "/v1/admin/schemas/agntcy:shop.a.v1/validate", `{}`},
	} {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			code, out, raw := a.call(ep.method, ep.path, basic, ep.body)
			require.Equal(t, http.StatusUnauthorized, code, "%s", raw)
			assert.Equal(t, "AUTHENTICATION_REQUIRED", errCode(out))
		})
	}
}

// TestSchemaAdminRefusesAgents: an agent's key is no admin key for any
// call of the schema registry.
func TestSchemaAdminRefusesAgents(t *testing.T) {
	a, _ := newStoreAPI(t, time.Now)
	agent := bearer(a.register(`{"address":"carol","delivery_mode":"pull"}`)["api_key"].(string))
	for _, ep := range []struct{ method, path, body string }{
		{"POST", "/v1/admin/schemas", `{"id":"agntcy:shop.a.v1","schema":{}}`},
		{"GET", "/v1/admin/schemas", ""},
		{"GET", "/v1/admin/schemas/agntcy:shop.a.v1", ""},
		{"PUT", "/v1/admin/schemas/agntcy:shop.a.v1", `{}`},
		{"DELETE", "/v1/admin/schemas/agntcy:shop.a.v1", ""},
		{"POST", "/v1/admin/schemas/agntcy:shop.a.v1/validate", `{}`},
	} {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			code, out, raw := a.call(ep.method, ep.path, agent, ep.body)
			require.Equal(t, http.StatusForbidden, code, "%s", raw)
			assert.Equal(t, "FORBIDDEN", errCode(out))
		})
	}
}

// TestSchemaEndpoints: reading and deleting a schema over the API, and
// the bodies the registry endpoints refuse.
func TestSchemaEndpoints(t *testing.T) {
	a, _ := newStoreAPI(t, time.Now)
	admin := adminHeader(testAdminKey)
	const id = "agntcy:shop.order.v1"
	code, _, raw := a.call("POST", "/v1/admin/schemas", admin, `{"id":"`+id+`","schema":{"type":"object"}}`)
	require.Equal(t, http.StatusCreated, code, "%s", raw)

	code, out, raw := a.call("GET", "/v1/admin/schemas/"+id, admin, "")
	require.Equal(t, http.StatusOK, code, "%s", raw)
	assert.Equal(t, id, out["id"])
	assert.Equal(t, map[string]any{"type": "object"}, out["schema"])

	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		code                     string
	}{
		{"POST unknown member", "POST", "/v1/admin/schemas", `{"id":"` + id + `","schema":{},"owner":"me"}`, http.StatusBadRequest, "INVALID_MESSAGE_FORMAT"},
		{"POST without id", "POST", "/v1/admin/schemas", `{"schema":{}}`, http.StatusBadRequest, "INVALID_MESSAGE_FORMAT"},
		{"POST too large", "POST", "/v1/admin/schemas", `{"id":"` + id + `","schema":{"description":"` + strings.Repeat("x", schema.MaxSchemaSize+4096) + `"}}`,
			http.StatusRequestEntityTooLarge, "MESSAGE_TOO_LARGE"},
		{"GET unknown", "GET", "/v1/admin/schemas/agntcy:shop.refund.v1", "", http.StatusNotFound, "NOT_FOUND"},
		{"validate unknown", "POST", "/v1/admin/schemas/agntcy:shop.refund.v1/validate", `{}`, http.StatusNotFound, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := a.call(tc.method, tc.path, admin, tc.body)
			require.Equal(t, tc.want, code, "%s", raw)
			assert.Equal(t, tc.code, errCode(out), "%s", raw)
		})
	}

	rec := a.do("DELETE", "/v1/admin/schemas/"+id, admin, "")
	require.Equal(t, http.StatusNoContent, rec.Code, "%s", rec.Body)
	code, out, raw = a.call("GET", "/v1/admin/schemas/"+id, admin, "")
	require.Equal(t, http.StatusNotFound, code, "%s", raw)
	assert.Equal(t, "NOT_FOUND", errCode(out))
	code, out, _ = a.call("GET", "/v1/admin/schemas", admin, "")
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, out["schemas"])
}

// TestValidateDeclaredTooLarge: a payload to validate that declares more
// bytes than a message may have is refused before it is read.
func TestValidateDeclaredTooLarge(t *testing.T) {
	a, _ := newStoreAPI(t, time.Now)
	req := httptest.NewRequest("POST", "/v1/admin/schemas/agntcy:shop.order.v1/validate", strings.NewReader(`{}`))
	req.Header.Set("X-Admin-Key", testAdminKey)
	req.ContentLength = 11 << 20
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "%s", rec.Body)
}

// TestListMessagesQuery: the filters of GET /v1/messages are checked and
// applied; a bare name is an address of our domain.
func TestListMessagesQuery(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, db := newStoreAPI(t, clock)
	ctx := context.Background()
	for _, name := range []string{"alice", "bob"} {
		require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: name + "@example.org", DeliveryMode: gateway.ModePull, CreatedAt: now.Add(-time.Hour)}))
	}
	admin := adminHeader(testAdminKey)
	post := func(from, to string) {
		code, _, raw := a.call("POST", "/v1/messages", admin, `{"version":"1.0","sender":"`+from+`@example.org","recipients":["`+to+`@example.org"],"payload":{}}`)
		require.Equal(t, http.StatusAccepted, code, "%s", raw)
	}
	post("alice", "bob")
	now = now.Add(time.Minute)
	post("bob", "alice")

	for _, tc := range []struct {
		query string
		want  int    // messages listed; -1 for a 400
		field string // of the 400
	}{
		{"", 2, ""},
		{"sender=alice", 1, ""},
		{"recipient=alice@example.org", 1, ""},
		{"sender=alice&recipient=alice", 0, ""},
		{"since=" + url.QueryEscape(now.Format(time.RFC3339Nano)), 1, ""},
		{"status=delivered&limit=1", 1, ""},
		{"limit=0", -1, "limit"},
		{"limit=1001", -1, "limit"},
		{"limit=ten", -1, "limit"},
		{"status=lost", -1, "status"},
		{"sender=" + url.QueryEscape("not an address"), -1, "sender"},
		{"recipient=" + url.QueryEscape("@@"), -1, "recipient"},
		{"since=yesterday", -1, "since"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, out, raw := a.call("GET", "/v1/messages?"+tc.query, admin, "")
			if tc.want < 0 {
				require.Equal(t, http.StatusBadRequest, code, "%s", raw)
				assert.Equal(t, tc.field, errField(out), "%s", raw)
				return
			}
			require.Equal(t, http.StatusOK, code, "%s", raw)
			assert.Len(t, out["messages"], tc.want, "%s", raw)
		})
	}
}

// TestInboxAndDiscoveryQueries: the query parameters of the inbox and of
// agent discovery are checked.
func TestInboxAndDiscoveryQueries(t *testing.T) {
	a, _ := newStoreAPI(t, time.Now)
	key := a.register(`{"address":"carol","delivery_mode":"pull"}`)["api_key"].(string)
	code, out, raw := a.call("GET", "/v1/inbox/carol?limit=0", bearer(key), "")
	require.Equal(t, http.StatusBadRequest, code, "%s", raw)
	assert.Equal(t, "limit", errField(out))
	code, out, raw = a.call("GET", "/v1/inbox/carol?limit=5", bearer(key), "")
	require.Equal(t, http.StatusOK, code, "%s", raw)
	assert.Equal(t, []any{}, out["messages"], "an empty inbox is an empty list")

	code, out, raw = a.call("GET", "/v1/discovery/agents?delivery_mode=carrier-pigeon", nil, "")
	require.Equal(t, http.StatusBadRequest, code, "%s", raw)
	assert.Equal(t, "delivery_mode", errField(out))
	code, out, raw = a.call("GET", "/v1/discovery/agents?delivery_mode=pull", nil, "")
	require.Equal(t, http.StatusOK, code, "%s", raw)
	assert.EqualValues(t, 1, out["count"])
}

// TestStoreDownIs503: endpoints whose store is down answer the retryable
// 503 TEMPORARY_FAILURE, never a 500 or the store's own words.
func TestStoreDownIs503(t *testing.T) {
	a, db := newStoreAPI(t, time.Now)
	require.NoError(t, db.Close())
	for _, ep := range []struct{ method, path string }{
		{"GET", "/v1/discovery/agents"},
		{"GET", "/v1/admin/schemas"},
		{"GET", "/v1/admin/agents"},
	} {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			code, out, raw := a.call(ep.method, ep.path, adminHeader(testAdminKey), "")
			require.Equal(t, http.StatusServiceUnavailable, code, "%s", raw)
			assert.Equal(t, "TEMPORARY_FAILURE", errCode(out))
			assert.NotContains(t, raw, "closed")
		})
	}
}
