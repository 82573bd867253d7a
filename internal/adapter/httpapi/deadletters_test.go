package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

func newDeadLetterAPI(t *testing.T) *api {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, DeadLetters: db})
	require.NoError(t, err)
	return &api{t: t, h: httpapi.New(svc, httpapi.Options{})}
}

// TestDeadLetterFilters: the listing and the bulk redrive read the same
// filters, and refuse a malformed one naming its field.
func TestDeadLetterFilters(t *testing.T) {
	a := newDeadLetterAPI(t)
	admin := map[string]string{"Authorization": "Bearer " + testAdminKey}
	for _, path := range []string{"/v1/admin/dead-letters", "/v1/admin/dead-letters/redrive"} {
		method := "GET"
		if path != "/v1/admin/dead-letters" {
			method = "POST"
		}
		for _, c := range []struct{ query, field string }{
			{"since=yesterday", "since"},
			{"until=2026-13-01T00:00:00Z", "until"},
			{"code=NOT%20A%20CODE", "code"},
			{"domain=-bad-.example", "domain"},
			{"recipient=not%20an%20address", "recipient"},
			{"limit=0", "limit"},
			{"cursor=bm8", "cursor"},
		} {
			code, out, _ := a.call(method, path+"?"+c.query, admin, "")
			require.Equal(t, http.StatusBadRequest, code, "%s ?%s: %v", method, c.query, out)
			e := out["error"].(map[string]any)
			assert.Equal(t, "INVALID_MESSAGE_FORMAT", e["code"])
			assert.Equal(t, c.field, e["details"].(map[string]any)["field"], "%s ?%s", method, c.query)
		}
		code, out, _ := a.call(method, path+"?recipient=bob&domain=Example.ORG&code=recipient_unavailable&since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00%2B01:00&limit=10", admin, "")
		assert.Equal(t, http.StatusOK, code, "%v", out)
	}
	code, out, _ := a.call("GET", "/v1/admin/dead-letters/redrive", admin, "")
	assert.Equal(t, http.StatusMethodNotAllowed, code, "%v", out)
	code, out, _ = a.call("POST", "/v1/admin/dead-letters/AAAAAAAAAAAAAAAAAA/redrive", admin, "")
	assert.Equal(t, http.StatusNotFound, code, "%v", out)
	code, out, _ = a.call("GET", "/v1/admin/dead-letters", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code, "%v", out)
}
