package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi/httpapitest"
)

// TestEveryErrorIsTheAMTPBody: unclean paths, unknown paths with or
// without a trailing slash, and methods a path does not take are all
// answered by the handler itself in the AMTP error body — never by
// ServeMux's redirects (3xx with an HTML body) or its plain-text errors.
func TestEveryErrorIsTheAMTPBody(t *testing.T) {
	a := newAPI(t)
	cases := []struct {
		method, path string
		hdr          map[string]string
		status       int
		code         string
		allow        string // the Allow header a 405 must carry
	}{
		// unclean paths: ServeMux would redirect them to the cleaned path
		{"GET", "/v1/inbox/../admin/agents", nil, 404, "NOT_FOUND", ""},
		{"GET", "//v1/inbox/alice", nil, 404, "NOT_FOUND", ""},
		{"GET", "/oauth/../v1/admin/agents", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/./messages", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/messages/.", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/messages/..", nil, 404, "NOT_FOUND", ""},
		{"POST", "/v1//messages", bearer(testAdminKey), 404, "NOT_FOUND", ""},
		{"GET", "/v1/admin/agents/..", bearer(testAdminKey), 404, "NOT_FOUND", ""},
		{"GET", "*", nil, 404, "NOT_FOUND", ""},
		// encoded dots and slashes that a decoding proxy would clean
		{"GET", "/v1/inbox/%2E%2E/admin/agents", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/inbox/alice%2F..%2F..%2Fadmin%2Fagents", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/inbox/alice%2F%2Fx", nil, 404, "NOT_FOUND", ""},
		// one encoded slash inside a segment is data (the admin's
		// <message_id>%2F<recipient>), routed as one segment
		{"GET", "/v1/messages/0190f5d2-0000-7000-8000-000000000000%2Fbob@example.org/status", nil, 401, "AUTHENTICATION_REQUIRED", ""},
		// ... under /oauth as well: stripping the prefix keeps it encoded
		{"GET", "/oauth/v1/inbox/alice%2Fx", nil, 401, "AUTHENTICATION_REQUIRED", ""},
		// trailing slashes: never a redirect
		{"GET", "/v1/messages/", nil, 404, "NOT_FOUND", ""},
		{"POST", "/v1/messages/", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/admin/agents/", bearer(testAdminKey), 404, "NOT_FOUND", ""},
		{"GET", "/healthz/", nil, 404, "NOT_FOUND", ""},
		{"GET", "/v1/inbox", nil, 404, "NOT_FOUND", ""},
		{"GET", "/oauth", nil, 404, "NOT_FOUND", ""},
		{"GET", "/nope", nil, 404, "NOT_FOUND", ""},
		// methods a path does not take
		{"PUT", "/v1/messages", nil, 405, "METHOD_NOT_ALLOWED", "GET, HEAD, POST"},
		{"DELETE", "/v1/admin/agents", bearer(testAdminKey), 405, "METHOD_NOT_ALLOWED", "GET, HEAD, POST"},
		{"OPTIONS", "/v1/messages", nil, 405, "METHOD_NOT_ALLOWED", "GET, HEAD, POST"},
		{"PATCH", "/v1/admin/schemas/x", nil, 405, "METHOD_NOT_ALLOWED", "DELETE, GET, HEAD, PUT"},
		{"GET", "/v1/admin/agents/x/rotate-key", nil, 405, "METHOD_NOT_ALLOWED", "POST"},
		{"HEAD", "/v1/inbox/alice/m1", nil, 405, "METHOD_NOT_ALLOWED", "DELETE"},
		{"POST", "/healthz", nil, 405, "METHOD_NOT_ALLOWED", "GET, HEAD"},
		{"BREW", "/oauth/v1/messages", nil, 405, "METHOD_NOT_ALLOWED", "GET, HEAD, POST"},
		// errors of the middleware
		{"GET", "/healthz", map[string]string{"X-AMTP-Version": "2.0"}, 400, "UNSUPPORTED_VERSION", ""},
		{"POST", "/v1/admin/agents", map[string]string{"Authorization": "Basic eDp5"}, 401, "AUTHENTICATION_REQUIRED", ""},
	}
	for _, c := range cases {
		name := c.method + " " + c.path
		t.Run(name, func(t *testing.T) {
			rec := a.do(c.method, c.path, c.hdr, "")
			require.Equal(t, c.status, rec.Code, "%s: %s", name, rec.Body)
			assert.Empty(t, rec.Header().Get("Location"), "no redirect, ever")
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, c.allow, rec.Header().Get("Allow"))
			body := httpapitest.RequireErrorBody(t, rec.Body.Bytes(), c.code, name)
			assert.Equal(t, rec.Header().Get("X-Request-Id"), body.Error.RequestID)
		})
	}
}

// TestOversizedBodyIsTheAMTPBody: a body over the limit is refused by the
// handler (not by http.MaxBytesReader's plain text) in the error body.
func TestOversizedBodyIsTheAMTPBody(t *testing.T) {
	a := newAPI(t)
	big := `{"address":"` + strings.Repeat("x", 300<<10) + `"}`
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/v1/admin/agents", http.StatusRequestEntityTooLarge, "MESSAGE_TOO_LARGE"},
		{"PUT", "/v1/admin/schemas/x", http.StatusRequestEntityTooLarge, "MESSAGE_TOO_LARGE"},
		// OAuth is off here: refused before the body is read
		{"POST", "/oauth/v1/admin/agents", http.StatusUnauthorized, "AUTHENTICATION_REQUIRED"},
	}
	for _, c := range cases {
		rec := a.do(c.method, c.path, bearer(testAdminKey), big)
		require.Equal(t, c.status, rec.Code, "%s %s: %s", c.method, c.path, rec.Body)
		httpapitest.RequireErrorBody(t, rec.Body.Bytes(), c.code, c.path)
	}
}
