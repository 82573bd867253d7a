package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	apidocs "github.com/agentry/agentry/docs"
	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/adapter/httpapi"
)

// Every answer the tests' HTTP client gets from a gateway is checked
// against docs/openapi.yaml (clientFor wraps its transport in a
// specTransport), on both runtimes: the document is a contract only if
// what the gateway really answers keeps to it.

// maxCheckedBody bounds the answer bodies the check reads into memory;
// the tests' answers are far smaller.
const maxCheckedBody = 32 << 20

// specTransport checks each answer of next against the API document. A
// mismatch becomes the request's error, so the test's require.NoError on
// the call fails with the reason, whichever test made it.
type specTransport struct{ next http.RoundTripper }

func (s specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckedBody+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the answer to check it: %w", err)
	}
	if len(body) > maxCheckedBody {
		return nil, fmt.Errorf("%s %s: the answer is larger than the %d bytes the document check reads", req.Method, req.URL.Path, maxCheckedBody)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c, err := apiSpec()
	if err != nil {
		return nil, err
	}
	if err := c.check(req, resp.StatusCode, resp.Header, body); err != nil {
		return nil, fmt.Errorf("%s %s answered %d, which docs/openapi.yaml does not allow: %w\nthe answer: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, clip(body))
	}
	return resp, nil
}

func clip(b []byte) string {
	const max = 2048
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// specChecker is the loaded document and a router over its paths.
type specChecker struct {
	doc    *openapi3.T
	router routers.Router
	// unrouted is the operation that stands for requests no path or
	// method of the document takes: the handler's 404 and 405 answers,
	// and what its middleware answers before routing.
	unrouted *openapi3.Operation
}

var apiSpec = sync.OnceValues(loadSpecChecker)

func loadSpecChecker() (*specChecker, error) {
	doc, err := openapi3.NewLoader().LoadFromData(apidocs.YAML())
	if err != nil {
		return nil, fmt.Errorf("load docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml is not valid: %w", err)
	}
	// Routed without the document's servers: the check sees requests to
	// gateways on any loopback port, and takes the /oauth prefix off itself.
	bare := *doc
	bare.Servers = nil
	router, err := gorillamux.NewRouter(&bare)
	if err != nil {
		return nil, fmt.Errorf("route docs/openapi.yaml: %w", err)
	}
	res := doc.Components.Responses
	op := openapi3.NewOperation()
	op.Responses = openapi3.NewResponses(
		openapi3.WithStatus(http.StatusBadRequest, res["UnsupportedVersion"]),
		openapi3.WithStatus(http.StatusNotFound, res["NotFound"]),
		openapi3.WithStatus(http.StatusMethodNotAllowed, res["MethodNotAllowed"]),
		openapi3.WithStatus(http.StatusInternalServerError, res["Internal"]),
	)
	for _, name := range []string{"UnsupportedVersion", "NotFound", "MethodNotAllowed", "Internal"} {
		if res[name] == nil {
			return nil, fmt.Errorf("docs/openapi.yaml has no components/responses/%s", name)
		}
	}
	return &specChecker{doc: &bare, router: router, unrouted: op}, nil
}

// check validates one answer to req against the document.
func (c *specChecker) check(req *http.Request, status int, header http.Header, body []byte) error {
	routed := withoutOAuthPrefix(req)
	route, params, err := c.router.FindRoute(routed)
	switch {
	case errors.Is(err, routers.ErrPathNotFound), errors.Is(err, routers.ErrMethodNotAllowed):
		route = &routers.Route{Spec: c.doc, Path: routed.URL.Path, Method: routed.Method, Operation: c.unrouted}
	case err != nil:
		return fmt.Errorf("route the request: %w", err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: routed, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		// A status the operation does not list is a mismatch too.
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	return openapi3filter.ValidateResponse(routed.Context(), in)
}

// withoutOAuthPrefix is req as the document's paths see it: the routes
// below /oauth are the same routes (the document's second server).
func withoutOAuthPrefix(req *http.Request) *http.Request {
	rest, ok := strings.CutPrefix(req.URL.EscapedPath(), httpapi.OAuthPrefix+"/")
	if !ok {
		return req
	}
	r := req.Clone(req.Context())
	r.URL.RawPath = "/" + rest
	r.URL.Path = strings.TrimPrefix(req.URL.Path, httpapi.OAuthPrefix)
	return r
}

// TestSpecTransportChecksAnswers: the check passes answers the document
// allows and refuses the others — a wrong shape, an undocumented status,
// a missing required header, a code the response does not list — also
// for paths and methods the document does not have.
func TestSpecTransportChecksAnswers(t *testing.T) {
	const errBody = `{"error":{"code":%q,"message":"m","timestamp":"2026-01-02T03:04:05.000Z","request_id":"req_1"}}`
	status := `{"message_id":"m1","status":"accepted","created_at":"2026-01-02T03:04:05.000Z","updated_at":"2026-01-02T03:04:05.000Z","attempts":0,"next_retry":null,"recipients":[]}`
	cases := []struct {
		name, method, path string
		code               int
		header             map[string]string
		body               string
		wantErr            string // "" when the answer is allowed
	}{
		{name: "documented answer", method: "GET", path: "/healthz", code: 200, body: `{"status":"ok","version":"v","domain":"d"}`},
		{name: "below the oauth prefix", method: "GET", path: "/oauth/v1/messages/m1/status", code: 200, body: status},
		{name: "admin's encoded copy id", method: "GET", path: "/v1/messages/m1%2Fbob@b.test/status", code: 200, body: status},
		{name: "documented error", method: "GET", path: "/v1/messages/m1", code: 404, body: fmt.Sprintf(errBody, "NOT_FOUND")},
		{name: "missing member", method: "GET", path: "/v1/messages/m1/status", code: 200, body: `{"message_id":"m1"}`, wantErr: "doesn't match schema"},
		{name: "member the document lacks", method: "GET", path: "/healthz", code: 200, body: `{"status":"ok","version":"v","domain":"d","extra":1}`, wantErr: "doesn't match schema"},
		{name: "undocumented status", method: "GET", path: "/healthz", code: 201, body: `{}`, wantErr: "status is not supported"},
		{name: "code the response does not list", method: "GET", path: "/v1/messages/m1", code: 404, body: fmt.Sprintf(errBody, "FORBIDDEN"), wantErr: "doesn't match schema"},
		{name: "no request id", method: "GET", path: "/healthz", code: 200, header: map[string]string{"X-Request-Id": ""}, body: `{"status":"ok","version":"v","domain":"d"}`, wantErr: "X-Request-Id"},
		{name: "unknown path, error body", method: "GET", path: "/v2/nothing", code: 404, body: fmt.Sprintf(errBody, "NOT_FOUND")},
		{name: "unknown path, text", method: "GET", path: "/v2/nothing", code: 404, header: map[string]string{"Content-Type": "text/plain"}, body: "404 page not found", wantErr: "Content-Type"},
		{name: "method not allowed", method: "POST", path: "/healthz", code: 405, header: map[string]string{"Allow": "GET, HEAD"}, body: fmt.Sprintf(errBody, "METHOD_NOT_ALLOWED")},
		{name: "method not allowed without Allow", method: "POST", path: "/healthz", code: 405, body: fmt.Sprintf(errBody, "METHOD_NOT_ALLOWED"), wantErr: "Allow"},
		{name: "unknown path answered 200", method: "GET", path: "/v2/nothing", code: 200, body: `{}`, wantErr: "status is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Request-Id", "req_1")
				for k, v := range tc.header {
					if v == "" {
						w.Header().Del(k)
						continue
					}
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.code)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			client := &http.Client{Transport: specTransport{next: http.DefaultTransport}}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			require.NoError(t, err)
			resp, err := client.Do(req)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Contains(t, err.Error(), "docs/openapi.yaml does not allow")
				return
			}
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.body, string(got), "the caller reads the answer the check read")
		})
	}
}

// checked is c with its answers checked against the document: c itself
// when it checks them already, else a copy whose transport does.
func checked(c *http.Client) *http.Client {
	if _, ok := c.Transport.(specTransport); ok {
		return c
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cc := *c
	cc.Transport = specTransport{next: next}
	return &cc
}

// BenchmarkSpecCheck is what the check costs each answer the tests get:
// kin-openapi compiles the response's schema on every call.
func BenchmarkSpecCheck(b *testing.B) {
	c, err := apiSpec()
	require.NoError(b, err)
	answers := map[string]string{
		"/v1/messages/m1/status": `{"message_id":"m1","status":"delivered","created_at":"2026-01-02T03:04:05.000Z","updated_at":"2026-01-02T03:04:05.000Z","attempts":1,"next_retry":null,"recipients":[{"address":"bob@b.test","status":"delivered","attempts":1,"updated_at":"2026-01-02T03:04:05.000Z","via":"inbox"}]}`,
		"/v1/inbox/bob@b.test":   `{"messages":[{"version":"1.0","message_id":"m1","idempotency_key":"k","timestamp":"2026-01-02T03:04:05.000Z","sender":"alice@a.test","recipients":["bob@b.test"],"subject":"s","payload":{"n":1}}],"next_cursor":null}`,
	}
	for path, body := range answers {
		b.Run(path, func(b *testing.B) {
			req, err := http.NewRequest("GET", "http://127.0.0.1:1"+path, nil)
			require.NoError(b, err)
			h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req_1"}}
			for b.Loop() {
				require.NoError(b, c.check(req, http.StatusOK, h, []byte(body)))
			}
		})
	}
}

// TestOpenAPIDocumentIsServed: both runtimes serve docs/openapi.yaml as
// JSON at /v1/openapi.json without a key, revalidated by its entity tag;
// on AWS also as the api function answers API Gateway.
func TestOpenAPIDocumentIsServed(t *testing.T) { bothRuntimes(t, testOpenAPIDocumentIsServed) }

func testOpenAPIDocumentIsServed(t *testing.T, onAWS bool) {
	x := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	want, err := apidocs.JSON()
	require.NoError(t, err)

	status, header, body := do(t, clientFor(x.url), "GET", x.url+"/v1/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	assert.JSONEq(t, string(want), string(body))
	served, err := openapi3.NewLoader().LoadFromData(body)
	require.NoError(t, err)
	require.NoError(t, served.Validate(context.Background()))
	etag := header.Get("ETag")
	require.NotEmpty(t, etag)

	req, err := http.NewRequest("GET", x.url+"/v1/openapi.json", nil)
	require.NoError(t, err)
	req.Header.Set("If-None-Match", etag)
	resp, err := clientFor(x.url).Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)

	if onAWS {
		a := eventRequest(t, x.lambda, "GET", "/v1/openapi.json")
		require.Equal(t, http.StatusOK, a.status)
		assert.Equal(t, etag, a.header.Get("ETag"))
		assert.JSONEq(t, string(want), string(a.body))
	}
}
