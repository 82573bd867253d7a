package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	apidocs "github.com/agentry/agentry/docs"
	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/httpapi/httpapitest"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

func newDocHandler(t *testing.T) *httpapi.Handler {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	return httpapi.New(svc, httpapi.Options{Logger: quiet})
}

func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(apidocs.YAML())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	return doc
}

// patternParam matches a ServeMux wildcard, {name} or {name...}.
var patternParam = regexp.MustCompile(`\{([^}]*?)(\.\.\.)?\}`)

// TestDocumentMatchesRoutes: every route and method the handler serves is
// in docs/openapi.yaml, and every path and operation there is served.
// HEAD is answered wherever GET is, and is not listed separately.
func TestDocumentMatchesRoutes(t *testing.T) {
	doc := loadDocument(t)
	h := newDocHandler(t)

	served := map[string][]string{}
	for _, r := range h.Routes() {
		path := patternParam.ReplaceAllString(r.Pattern, "{$1}")
		require.NotContains(t, served, path, "route %s registered twice", path)
		served[path] = r.Methods
	}
	require.NotEmpty(t, served)

	documented := map[string][]string{}
	for path, item := range doc.Paths.Map() {
		var ms []string
		for m := range item.Operations() {
			ms = append(ms, strings.ToUpper(m))
		}
		slices.Sort(ms)
		documented[path] = ms
	}
	for path, ms := range served {
		doc, ok := documented[path]
		if !assert.True(t, ok, "the handler serves %s, which docs/openapi.yaml lacks", path) {
			continue
		}
		assert.Equal(t, ms, doc, "methods of %s: handler (expected) and docs/openapi.yaml (actual)", path)
	}
	for path := range documented {
		assert.Contains(t, served, path, "docs/openapi.yaml has %s, which the handler does not serve", path)
	}
}

// TestRoutesAreWhatTheHandlerAnswers: Routes reports the handler's table
// as it behaves: each method listed is routed to its operation (not 405),
// and a method not listed is 405 with those methods in Allow.
func TestRoutesAreWhatTheHandlerAnswers(t *testing.T) {
	h := newDocHandler(t)
	for _, r := range h.Routes() {
		path := patternParam.ReplaceAllString(r.Pattern, "x")
		for _, m := range r.Methods {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(m, path, strings.NewReader("{}")))
			assert.NotEqual(t, http.StatusMethodNotAllowed, rec.Code, "%s %s", m, path)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("PATCH", path, nil))
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, "PATCH %s", path)
		allowed := slices.Clone(r.Methods)
		if slices.Contains(allowed, "GET") {
			allowed = append(allowed, "HEAD")
		}
		slices.Sort(allowed)
		assert.Equal(t, strings.Join(allowed, ", "), rec.Header().Get("Allow"), path)
	}
}

// TestOpenAPIDocumentIsServed: GET /v1/openapi.json answers the document
// as JSON without credentials, with an entity tag that a revalidation
// answers 304 to.
func TestOpenAPIDocumentIsServed(t *testing.T) {
	h := newDocHandler(t)
	want, err := apidocs.JSON()
	require.NoError(t, err)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.JSONEq(t, string(want), rec.Body.String())
	etag := rec.Header().Get("ETag")
	require.Regexp(t, `^"[A-Za-z0-9_-]+"$`, etag)
	assert.Contains(t, rec.Header().Get("Cache-Control"), "max-age=")

	cases := []struct {
		name, method, ifNoneMatch string
		want                      int
	}{
		{"same tag", "GET", etag, http.StatusNotModified},
		{"weak form of the tag", "GET", "W/" + etag, http.StatusNotModified},
		{"among others", "GET", `"other", ` + etag, http.StatusNotModified},
		{"any", "GET", "*", http.StatusNotModified},
		{"another tag", "GET", `"other"`, http.StatusOK},
		{"head", "HEAD", "", http.StatusOK},
		{"oauth prefix", "GET", "", http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/v1/openapi.json"
			if tc.name == "oauth prefix" {
				target = httpapi.OAuthPrefix + target
			}
			req := httptest.NewRequest(tc.method, target, nil)
			if tc.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tc.ifNoneMatch)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.want, rec.Code)
			assert.Equal(t, etag, rec.Header().Get("ETag"))
			if tc.want == http.StatusNotModified {
				assert.Empty(t, rec.Body.Bytes())
			}
		})
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/openapi.json", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	httpapitest.RequireErrorBody(t, rec.Body.Bytes(), "METHOD_NOT_ALLOWED", "POST /v1/openapi.json")
}
