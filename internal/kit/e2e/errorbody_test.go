package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"

	"github.com/agentry/agentry/internal/adapter/httpapi/httpapitest"
)

// apiEventHandler is the api Lambda function's entry point: an API
// Gateway HTTP API (payload v2) event in, its answer out.
type apiEventHandler = func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// rawAnswer is one HTTP answer as a client sees it.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// TestUncleanPathsGetTheErrorBody: request targets that net/http's
// ServeMux would redirect to a cleaned path (and so past the route a
// proxy or API Gateway matched), trailing slashes, and methods a path
// does not take are answered by the gateway in the AMTP error body, never
// with a redirect — over a raw connection (nothing on the client side
// cleans the path) and, on AWS, as API Gateway events for the api
// function.
func TestUncleanPathsGetTheErrorBody(t *testing.T) { bothRuntimes(t, testUncleanPathsGetTheErrorBody) }

func testUncleanPathsGetTheErrorBody(t *testing.T, onAWS bool) {
	x := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	cases := []struct {
		method, target string
		status         int
		code, allow    string
	}{
		{"GET", "/v1/inbox/../admin/agents", 404, "NOT_FOUND", ""},
		{"GET", "//v1/inbox/alice", 404, "NOT_FOUND", ""},
		{"GET", "/oauth/../v1/admin/agents", 404, "NOT_FOUND", ""},
		{"GET", "/v1/inbox/%2E%2E%2Fadmin%2Fagents", 404, "NOT_FOUND", ""},
		{"GET", "/v1/admin/agents/", 404, "NOT_FOUND", ""},
		{"GET", "*", 404, "NOT_FOUND", ""},
		{"PUT", "/v1/messages", 405, "METHOD_NOT_ALLOWED", "GET, HEAD, POST"},
	}
	for _, c := range cases {
		name := c.method + " " + c.target
		check := func(t *testing.T, a rawAnswer) {
			require.Equal(t, c.status, a.status, "%s: %s", name, a.body)
			assert.Empty(t, a.header.Get("Location"), name)
			assert.Equal(t, c.allow, a.header.Get("Allow"), name)
			httpapitest.RequireErrorBody(t, a.body, c.code, name)
		}
		t.Run("raw "+name, func(t *testing.T) { check(t, rawRequest(t, x.url, c.method, c.target)) })
		if onAWS {
			t.Run("event "+name, func(t *testing.T) { check(t, eventRequest(t, x.lambda, c.method, c.target)) })
		}
	}
}

// rawRequest sends one request with the admin key over a new connection,
// its target written as given.
func rawRequest(t *testing.T, base, method, target string) rawAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", method, target, adminKey)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

// eventRequest hands the same request to the api function as API Gateway
// would: the raw path as the caller sent it.
func eventRequest(t *testing.T, serve apiEventHandler, method, target string) rawAnswer {
	t.Helper()
	require.NotNil(t, serve, "the gateway on AWS adapters has an api function handler")
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: target,
		Headers: map[string]string{"authorization": "Bearer " + adminKey, "host": "a.test"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			DomainName: "a.test",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: target, Protocol: "HTTP/1.1"},
		},
	}
	resp, err := serve(t.Context(), ev)
	require.NoError(t, err, "a Lambda error becomes API Gateway's own 500 body")
	h := http.Header{}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	return rawAnswer{status: resp.StatusCode, header: h, body: []byte(resp.Body)}
}
