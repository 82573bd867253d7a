package awsgw

import (
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/httpapi/httpapitest"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestAPIGatewayEventsGetTheAMTPErrorBody: requests as API Gateway hands
// them to the api function — unclean paths, a method the path does not
// take, a path the event conversion cannot parse — are answered in the
// AMTP error body, with no redirect and no Lambda error (which API
// Gateway would turn into its own 500 body).
func TestAPIGatewayEventsGetTheAMTPErrorBody(t *testing.T) {
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	g := &Gateway{Service: svc, Handler: httpapi.New(svc, httpapi.Options{Logger: quiet}), log: quiet}

	cases := []struct {
		method, rawPath string
		status          int
		code, allow     string
	}{
		{"GET", "/v1/inbox/../admin/agents", 404, "NOT_FOUND", ""},
		{"GET", "//v1/inbox/alice", 404, "NOT_FOUND", ""},
		{"GET", "/oauth/../v1/admin/agents", 404, "NOT_FOUND", ""},
		{"GET", "/v1/messages/", 404, "NOT_FOUND", ""},
		{"PUT", "/v1/messages", 405, "METHOD_NOT_ALLOWED", "GET, HEAD, POST"},
		// an escape url.Parse refuses: net/http's own 400 locally, ours here
		{"GET", "/v1/inbox/%zz", 400, "INVALID_MESSAGE_FORMAT", ""},
	}
	for _, c := range cases {
		name := c.method + " " + c.rawPath
		t.Run(name, func(t *testing.T) {
			ev := events.APIGatewayV2HTTPRequest{
				Version: "2.0", RouteKey: "$default", RawPath: c.rawPath,
				Headers: map[string]string{"x-request-id": "evt-1"},
				RequestContext: events.APIGatewayV2HTTPRequestContext{
					DomainName: "api.example.org",
					HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: c.method, Path: c.rawPath},
				},
			}
			resp, err := g.ServeAPIGateway(t.Context(), ev)
			require.NoError(t, err, "a Lambda error is API Gateway's 500, not ours")
			require.Equal(t, c.status, resp.StatusCode, "%s", resp.Body)
			assert.Empty(t, resp.Headers["Location"])
			assert.Equal(t, c.allow, resp.Headers["Allow"])
			assert.Equal(t, "application/json", resp.Headers["Content-Type"])
			body := httpapitest.RequireErrorBody(t, []byte(resp.Body), c.code, name)
			assert.Equal(t, "evt-1", body.Error.RequestID)
		})
	}
}
