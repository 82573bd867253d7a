package awsgw

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
)

// ServeAPIGateway is the api function's handler: one API Gateway HTTP API
// (payload v2) event in, the REST handler's answer out. It does what the
// proxy library's httpadapter does, with one difference: an event that
// cannot become an http.Request (a path with an escape url.Parse refuses)
// is answered 400 in the AMTP error body, where httpadapter fails the
// invocation and API Gateway answers with a 500 body of its own.
func (g *Gateway) ServeAPIGateway(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	var conv core.RequestAccessorV2
	w := core.NewProxyResponseWriterV2()
	if req, err := conv.EventToRequestWithContext(ctx, ev); err == nil {
		g.Handler.ServeHTTP(w, req)
	} else {
		g.log.WarnContext(ctx, "API Gateway event could not become an HTTP request", "err", err)
		g.Handler.ServeUnreadable(w, standIn(ctx, ev))
	}
	resp, err := w.GetProxyResponse()
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("api answer: %w", err)
	}
	return resp, nil
}

// standIn is the request the handler answers for an event that is none:
// it keeps the caller's request id, so the answer can be correlated.
func standIn(ctx context.Context, ev events.APIGatewayV2HTTPRequest) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", http.NoBody) // a constant URL: cannot fail
	for k, v := range ev.Headers {
		if http.CanonicalHeaderKey(k) == "X-Request-Id" {
			r.Header.Set("X-Request-Id", v)
		}
	}
	return r
}
