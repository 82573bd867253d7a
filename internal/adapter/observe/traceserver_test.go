package observe_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/observe/observetest"
)

// TestServerRequestsAreSegments: on a long-running server with tracing on,
// each request is a segment named after the gateway, without its query,
// and the outbound HTTP it makes is a subsegment of it in the same trace.
func TestServerRequestsAreSegments(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	tracingEnv(t, "1", "", addr, "")
	hook, seen := traceServer(t)
	outbound := &http.Client{Transport: observe.WrapHTTP(http.DefaultTransport)}
	var query string
	api := httptest.NewServer(observe.TraceServer("a.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, hook.URL+"/hook", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = outbound.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})))
	t.Cleanup(api.Close)

	req, err := http.NewRequest(http.MethodGet, api.URL+"/v1/messages?cursor=s3cret", nil)
	require.NoError(t, err)
	req.Header.Set("X-Amzn-Trace-Id", "Root="+testRoot+";Sampled=1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "cursor=s3cret", query, "the handler sees the request as sent")
	passed := <-seen

	// The SDK sends a small segment whole, its subsegments inside.
	seg := observetest.Receive(t, docs)
	assert.Equal(t, "a.test", seg["name"])
	assert.Equal(t, testRoot, seg["trace_id"], "the caller's trace is continued")
	httpDoc := seg["http"].(map[string]any)
	assert.Equal(t, api.URL+"/v1/messages", httpDoc["request"].(map[string]any)["url"], "no query: it may hold a secret")
	assert.EqualValues(t, http.StatusAccepted, httpDoc["response"].(map[string]any)["status"])
	subs, _ := seg["subsegments"].([]any)
	require.Len(t, subs, 1, "the outbound call")
	sub := subs[0].(map[string]any)
	assert.Equal(t, "remote", sub["namespace"])
	assert.Equal(t, "Root="+testRoot+";Parent="+sub["id"].(string)+";Sampled=1", passed)
}

// TestTraceServerInLambdaOrUntracedIsTheHandler: in Lambda the invocation
// is the segment, and without tracing nothing is recorded: the handler is
// returned as it is.
func TestTraceServerInLambdaOrUntracedIsTheHandler(t *testing.T) {
	h := &struct{ http.Handler }{http.NotFoundHandler()}
	for name, env := range map[string][2]string{"untraced": {"", ""}, "lambda": {"1", "agentry-test-api"}} {
		t.Run(name, func(t *testing.T) {
			tracingEnv(t, env[0], env[1], "127.0.0.1:2000", "")
			assert.Same(t, h, observe.TraceServer("a.test", h))
		})
	}
}
