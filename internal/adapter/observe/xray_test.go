package observe_test

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/observe/observetest"
)

// tracingEnv sets every variable TracingEnabled looks at (empty = unset).
func tracingEnv(t *testing.T, agentry, function, daemon, traceID string) {
	t.Setenv("AGENTRY_XRAY", agentry)
	t.Setenv("AWS_LAMBDA_FUNCTION_NAME", function)
	t.Setenv("AWS_XRAY_DAEMON_ADDRESS", daemon)
	t.Setenv("_X_AMZN_TRACE_ID", traceID)
}

func TestTracingEnabled(t *testing.T) {
	cases := []struct {
		name                               string
		agentry, function, daemon, traceID string
		want                               bool
	}{
		{name: "tests and laptops", want: false},
		{name: "a daemon but not in Lambda", daemon: "127.0.0.1:2000", want: false},
		{name: "Lambda without X-Ray", function: "agentry-dev-api", want: false},
		{name: "Lambda with X-Ray at init", function: "agentry-dev-api", daemon: "169.254.79.129:2000", want: true},
		{name: "Lambda during an invocation", function: "agentry-dev-api", traceID: "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", want: true},
		{name: "forced on", agentry: "1", want: true},
		{name: "forced off in Lambda", agentry: "0", function: "agentry-dev-api", daemon: "169.254.79.129:2000", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tracingEnv(t, tc.agentry, tc.function, tc.daemon, tc.traceID)
			assert.Equal(t, tc.want, observe.TracingEnabled())
		})
	}
}

// invocation is the context aws-lambda-go gives a handler: the
// invocation's trace header under the key "x-amzn-trace-id" (a plain
// string key, which the X-Ray SDK reads too).
func invocation(traceHeader string) context.Context {
	return context.WithValue(context.Background(), "x-amzn-trace-id", traceHeader) //nolint:staticcheck // the key aws-lambda-go and the X-Ray SDK use
}

// traceServer answers 204 and reports the trace header it received.
func traceServer(t *testing.T) (*httptest.Server, <-chan string) {
	t.Helper()
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerLikeAWS(r)
		seen <- r.Header.Get("X-Amzn-Trace-Id")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func get(t *testing.T, ctx context.Context, rt http.RoundTripper, url string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

type countingTransport struct{ calls int }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls++
	return http.DefaultTransport.RoundTrip(r)
}

func TestTracingDisabledChangesNothing(t *testing.T) {
	tracingEnv(t, "", "", "", "")

	base := &countingTransport{}
	rt := observe.WrapHTTP(base)
	assert.Same(t, base, rt, "WrapHTTP returns the transport itself")
	assert.Nil(t, observe.WrapHTTP(nil), "nil stays nil (http.Client's default)")
	srv, seen := traceServer(t)
	get(t, context.Background(), rt, srv.URL)
	assert.Equal(t, 1, base.calls)
	assert.Empty(t, <-seen, "no trace header")

	cfg := aws.Config{Region: "eu-west-1"}
	observe.InstrumentAWS(&cfg)
	assert.Nil(t, cfg.APIOptions, "the AWS config is untouched")
	observe.InstrumentAWS(nil) // must not panic
}

// TestTracingEnabledNeverPanics: with tracing on, and even when the
// environment asks the SDK to panic on a missing segment, requests outside
// a trace go through untraced and requests inside one carry the trace.
func TestTracingEnabledNeverPanics(t *testing.T) {
	tracingEnv(t, "1", "", "", "")
	t.Setenv("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR")
	srv, seen := traceServer(t)
	rt := observe.WrapHTTP(http.DefaultTransport)

	t.Run("HTTP outside a trace", func(t *testing.T) {
		get(t, context.Background(), rt, srv.URL)
		assert.Empty(t, <-seen)
	})
	t.Run("HTTP inside a Lambda invocation", func(t *testing.T) {
		// What the Lambda runtime puts in each invocation's context.
		ctx := invocation(
			"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
		get(t, ctx, rt, srv.URL)
		assert.Contains(t, <-seen, "Root=1-5759e988-bd862e3fe1be46a994272793", "the trace is passed on")
	})
	t.Run("AWS config is instrumented once, without touching the original", func(t *testing.T) {
		orig := aws.Config{APIOptions: make([]func(*middleware.Stack) error, 0, 4)}
		cfg := orig
		observe.InstrumentAWS(&cfg)
		observe.InstrumentAWS(&cfg)
		require.Len(t, cfg.APIOptions, 2)
		assert.Empty(t, orig.APIOptions)
		assert.Nil(t, orig.APIOptions[:1][0], "the original's spare capacity is not written")

		st := middleware.NewStack("test", smithyhttp.NewStackRequest)
		for _, o := range cfg.APIOptions {
			require.NoError(t, o(st), "a second instrumentation is skipped, not a duplicate")
		}
		// The X-Ray SDK's own middleware (instrumentation/awsv2), once.
		assert.Equal(t, 1, count(st.Initialize.List(), "XRayInitializeMiddlewareAfter"), "one subsegment per call")
		assert.Equal(t, 1, count(st.Deserialize.List(), "XRayDeserializeMiddleware"), "the trace header is set once per attempt")
	})
	t.Run("HTTP with a trace header without a trace id", func(t *testing.T) {
		get(t, invocation("Parent=53995c3f42cd8ad8;Sampled=1"), rt, srv.URL)
		assert.Empty(t, <-seen, "nothing to pass on")
	})
	t.Run("AWS call outside a trace", func(t *testing.T) {
		cfg := aws.Config{
			Region:           "eu-west-1",
			Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
			BaseEndpoint:     aws.String("http://127.0.0.1:1"), // nothing listens: the call fails fast
			RetryMaxAttempts: 1,
		}
		observe.InstrumentAWS(&cfg)
		_, err := sqs.NewFromConfig(cfg).ListQueues(context.Background(), &sqs.ListQueuesInput{})
		assert.Error(t, err, "a connection error, not a panic")
	})
}

func count(ids []string, id string) int {
	n := 0
	for _, v := range ids {
		if v == id {
			n++
		}
	}
	return n
}

// TestOnlyObserveImportsXRay keeps the maintenance-mode X-Ray SDK behind
// this package, so that replacing it touches nothing else.
func TestOnlyObserveImportsXRay(t *testing.T) {
	root := repoRoot(t)
	own := filepath.Join(root, "internal", "adapter", "observe") + string(filepath.Separator)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "cdk.out", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasPrefix(path, own) {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		for _, imp := range f.Imports {
			assert.False(t, strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/aws/aws-xray-sdk-go"),
				"%s imports %s: only internal/adapter/observe may", path, imp.Path.Value)
		}
		return nil
	})
	require.NoError(t, err)
}

// TestSampledInvocationSendsSubsegments: inside a sampled Lambda
// invocation, an outbound request and an AWS call each reach the daemon
// as a subsegment of the invocation's segment, and each passes the trace
// on with itself as the parent; an unsampled invocation sends nothing.
func TestSampledInvocationSendsSubsegments(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	tracingEnv(t, "", "agentry-test-api", addr, "")
	const root, parent = "1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
	ctx := invocation("Root=" + root + ";Parent=" + parent + ";Sampled=1")

	srv, seen := traceServer(t)
	get(t, ctx, observe.WrapHTTP(http.DefaultTransport), srv.URL+"/hook?token=s3cret")
	passed := <-seen
	d := observetest.Receive(t, docs)
	assert.Equal(t, "subsegment", d["type"])
	assert.Equal(t, root, d["trace_id"])
	assert.Equal(t, parent, d["parent_id"])
	assert.Equal(t, "remote", d["namespace"])
	assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), d["name"])
	assert.Equal(t, "Root="+root+";Parent="+d["id"].(string)+";Sampled=1", passed)
	httpDoc, _ := d["http"].(map[string]any)
	assert.Equal(t, srv.URL+"/hook", httpDoc["request"].(map[string]any)["url"], "no query: it may hold a secret")
	assert.EqualValues(t, http.StatusNoContent, httpDoc["response"].(map[string]any)["status"])
	assert.Less(t, d["start_time"].(float64), d["end_time"].(float64)+1e-6)

	awsHeader := make(chan string, 1)
	sqsAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerLikeAWS(r)
		awsHeader <- r.Header.Get("X-Amzn-Trace-Id")
		w.Header().Set("x-amzn-RequestId", "req-1")
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"no such queue"}`))
	}))
	t.Cleanup(sqsAPI.Close)
	cfg := aws.Config{
		Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(sqsAPI.URL), RetryMaxAttempts: 1,
	}
	observe.InstrumentAWS(&cfg)
	_, err := sqs.NewFromConfig(cfg).GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	require.Error(t, err)
	d = observetest.Receive(t, docs)
	assert.Equal(t, "SQS", d["name"])
	assert.Equal(t, "aws", d["namespace"])
	assert.Equal(t, parent, d["parent_id"])
	assert.Equal(t, map[string]any{"operation": "GetQueueUrl", "region": "eu-west-1", "request_id": "req-1"}, d["aws"])
	assert.Equal(t, true, d["error"])
	assert.Equal(t, true, d["fault"], "the SDK records every failed AWS call as a fault too")
	assert.NotNil(t, d["cause"])
	assert.Equal(t, "Root="+root+";Parent="+d["id"].(string)+";Sampled=1", <-awsHeader)

	unsampled := invocation("Root=" + root + ";Parent=" + parent + ";Sampled=0")
	get(t, unsampled, observe.WrapHTTP(http.DefaultTransport), srv.URL)
	assert.Contains(t, <-seen, "Sampled=0")
	select {
	case d := <-docs:
		t.Errorf("an unsampled invocation sent %v", d)
	case <-time.After(200 * time.Millisecond):
	}
}

// answerLikeAWS reads the request body and lets a round trip's worth of
// time pass before a stand-in server answers, as AWS and any real peer do.
// The X-Ray SDK closes the subsegment of a request's write from the
// transport's writer goroutine (httptrace WroteRequest), which can run
// after the response has already been read when a loopback server answers
// at once; a subsegment with a child left open is never sent, and the
// test waited for it in vain (one run in three on a loaded machine). In
// production the answer comes a network round trip later.
func answerLikeAWS(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	time.Sleep(20 * time.Millisecond)
}

const (
	testRoot   = "1-5759e988-bd862e3fe1be46a994272793"
	testParent = "53995c3f42cd8ad8"
)

func sampled() context.Context {
	return invocation("Root=" + testRoot + ";Parent=" + testParent + ";Sampled=1")
}

// TestHTTPSubsegmentOutcomes: each outbound request's subsegment records
// its outcome as X-Ray classifies it — 429 a throttle, another 4xx an
// error, a 5xx or no answer at all a fault, with the cause.
func TestHTTPSubsegmentOutcomes(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	tracingEnv(t, "", "agentry-test-api", addr, "")
	rt := observe.WrapHTTP(nil)
	require.NotNil(t, rt, "nil is http.DefaultTransport, traced")
	for _, tc := range []struct {
		name                   string
		status                 int // 0: nothing listens
		noHost                 bool
		error, throttle, fault bool
		cause                  bool
	}{
		{name: "ok", status: http.StatusNoContent},
		{name: "ok, request without a Host", status: http.StatusOK, noHost: true},
		{name: "throttled", status: http.StatusTooManyRequests, error: true, throttle: true},
		{name: "refused", status: http.StatusForbidden, error: true},
		{name: "server failure", status: http.StatusBadGateway, fault: true},
		{name: "no answer", fault: true, cause: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				answerLikeAWS(r)
				w.WriteHeader(tc.status)
			}))
			if tc.status == 0 {
				srv.Close()
			} else {
				t.Cleanup(srv.Close)
			}
			req, err := http.NewRequestWithContext(sampled(), http.MethodGet, srv.URL+"/hook", nil)
			require.NoError(t, err)
			if tc.noHost {
				req.Host = "" // a request made by hand; RoundTrip is called directly
			}
			resp, err := rt.RoundTrip(req)
			if tc.status == 0 {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				assert.Equal(t, tc.status, resp.StatusCode)
			}
			d := observetest.Receive(t, docs)
			assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), d["name"], "named after the host")
			assert.Equal(t, testParent, d["parent_id"])
			for key, want := range map[string]bool{"error": tc.error, "throttle": tc.throttle, "fault": tc.fault} {
				if want {
					assert.Equal(t, true, d[key], key)
				} else {
					assert.NotContains(t, d, key)
				}
			}
			httpDoc := d["http"].(map[string]any)
			if tc.status == 0 {
				assert.NotContains(t, httpDoc, "response", "no answer, no status")
			} else {
				assert.EqualValues(t, tc.status, httpDoc["response"].(map[string]any)["status"])
			}
			if tc.cause {
				assert.Contains(t, fmt.Sprint(d["cause"]), "connect")
			} else {
				assert.NotContains(t, d, "cause")
			}
		})
	}
}

// TestAWSThrottleAndNesting: a throttled AWS call is recorded as a throttle
// whatever its HTTP status, and the HTTP request it makes through a traced
// transport is a subsegment of the call's, passing on its own id.
func TestAWSThrottleAndNesting(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	tracingEnv(t, "", "agentry-test-api", addr, "")
	header := make(chan string, 1)
	sqsAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerLikeAWS(r)
		header <- r.Header.Get("X-Amzn-Trace-Id")
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}`))
	}))
	t.Cleanup(sqsAPI.Close)
	cfg := aws.Config{
		Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(sqsAPI.URL), RetryMaxAttempts: 1,
		HTTPClient: &http.Client{Transport: observe.WrapHTTP(http.DefaultTransport)},
	}
	observe.InstrumentAWS(&cfg)
	_, err := sqs.NewFromConfig(cfg).ListQueues(sampled(), &sqs.ListQueuesInput{})
	require.Error(t, err)

	// One document: the SDK sends a subsegment with those nested in it.
	call := observetest.Receive(t, docs)
	assert.Equal(t, "SQS", call["name"])
	assert.Equal(t, testParent, call["parent_id"])
	nested, _ := call["subsegments"].([]any)
	require.Len(t, nested, 1, "the request is part of the call")
	remote := nested[0].(map[string]any)
	assert.Equal(t, "remote", remote["namespace"])
	assert.Equal(t, "Root="+testRoot+";Parent="+remote["id"].(string)+";Sampled=1", <-header)
	assert.Equal(t, true, call["throttle"])
	assert.Equal(t, true, call["error"])
}

// TestDaemonAddress: the daemon's address is read at each send, so a new
// one is used from the next subsegment on; one that cannot be used loses
// the subsegment (logged at debug), never the request.
func TestDaemonAddress(t *testing.T) {
	first, firstDocs := observetest.XRayDaemon(t)
	second, secondDocs := observetest.XRayDaemon(t)
	srv, seen := traceServer(t)
	tracingEnv(t, "1", "", first, "")
	rt := observe.WrapHTTP(http.DefaultTransport)

	get(t, sampled(), rt, srv.URL)
	<-seen
	assert.Equal(t, testRoot, observetest.Receive(t, firstDocs)["trace_id"])

	t.Setenv("AWS_XRAY_DAEMON_ADDRESS", second)
	get(t, sampled(), rt, srv.URL)
	<-seen
	assert.Equal(t, testRoot, observetest.Receive(t, secondDocs)["trace_id"])

	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	t.Setenv("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1") // no port
	get(t, sampled(), rt, srv.URL)
	assert.NotEmpty(t, <-seen, "the request went out, traced")
	assert.Contains(t, logs.String(), "x-ray: subsegment not sent")
	assert.Contains(t, logs.String(), "daemon address")
}

// TestXRaySDKLogsAtDebug: what the X-Ray SDK says (its emitter, its
// daemon address, a missing segment under LOG_ERROR, which Lambda sets)
// goes to our logger at debug, never at a level that reaches CloudWatch by
// default, and never to stdout in its own format.
func TestXRaySDKLogsAtDebug(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	tracingEnv(t, "", "agentry-test-api", addr, "")
	t.Setenv("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR")
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })

	srv, seen := traceServer(t)
	get(t, sampled(), observe.WrapHTTP(http.DefaultTransport), srv.URL)
	<-seen
	observetest.Receive(t, docs)

	require.Contains(t, logs.String(), "msg=x-ray", "the SDK's messages reach our logger")
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		assert.Contains(t, line, "level=DEBUG", line)
	}
}
