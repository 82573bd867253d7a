package s3blob_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/observe/observetest"
	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/kit/awscost"
	"github.com/agentry/agentry/internal/kit/awstest"
)

const testRegion = "eu-west-1"

var testCreds = aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}

// seen is one request as an S3 endpoint received it.
type seen struct {
	method, path, host string
	query              string // raw: the SDK names the operation there (x-id)
	header             http.Header
	contentLength      int64
	body               []byte
}

// fakeS3 is a real HTTP server standing in for S3: it records each request
// and answers with the next of answers (the last one repeats).
func fakeS3(t *testing.T, answers ...func(w http.ResponseWriter)) (*httptest.Server, func() []seen) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		n := len(got)
		got = append(got, seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, host: r.Host, header: r.Header.Clone(), contentLength: r.ContentLength, body: body})
		mu.Unlock()
		answers[min(n, len(answers)-1)](w)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

func s3Error(status int, code, message string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("X-Amz-Request-Id", "req-"+code)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
			`<Error><Code>`+code+`</Code><Message>`+message+`</Message><RequestId>body-`+code+`</RequestId><HostId>h</HostId></Error>`)
	}
}

func ok200(body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("X-Amz-Request-Id", "req-ok")
		_, _ = io.WriteString(w, body)
	}
}

type noDelay struct{}

func (noDelay) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// endpointConfig points a configuration at srv as AWS_ENDPOINT_URL would.
// Its retryer is the standard one (same retryable errors, same 3
// attempts) without the backoff sleeps.
func endpointConfig(srv *httptest.Server) aws.Config {
	return aws.Config{
		Region:       testRegion,
		Credentials:  credentials.StaticCredentialsProvider{Value: testCreds},
		BaseEndpoint: aws.String(srv.URL),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.Backoff = noDelay{} })
		},
	}
}

// checkSigned verifies r's SigV4 signature the way S3 would: it signs a
// copy holding only the headers r says it signed, at r's time, and
// compares; and the payload hash must be the body's.
func checkSigned(t *testing.T, r seen, creds aws.Credentials) {
	t.Helper()
	auth := r.header.Get("Authorization")
	require.True(t, strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+creds.AccessKeyID+"/"), "Authorization: %q", auth)
	sum := sha256.Sum256(r.body)
	assert.Equal(t, hex.EncodeToString(sum[:]), r.header.Get("X-Amz-Content-Sha256"), "payload hash")

	_, signedList, ok := strings.Cut(auth, "SignedHeaders=")
	require.True(t, ok, auth)
	signedList, _, _ = strings.Cut(signedList, ",")
	cp, err := http.NewRequest(r.method, (&url.URL{Scheme: "http", Host: r.host, Path: r.path, RawQuery: r.query}).String(), nil)
	require.NoError(t, err)
	cp.ContentLength = r.contentLength
	for _, h := range strings.Split(signedList, ";") {
		if h != "host" && h != "content-length" {
			cp.Header[http.CanonicalHeaderKey(h)] = r.header.Values(h)
		}
	}
	for _, h := range []string{"x-amz-content-sha256", "x-amz-date"} {
		assert.Contains(t, strings.Split(signedList, ";"), h)
	}
	at, err := time.Parse("20060102T150405Z", r.header.Get("X-Amz-Date"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), at, time.Minute, "signed now")
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	require.NoError(t, signer.SignHTTP(context.Background(), creds, cp, r.header.Get("X-Amz-Content-Sha256"), "s3", testRegion, at))
	assert.Equal(t, cp.Header.Get("Authorization"), auth, "signature")
}

// TestRetriedAndSigned: a throttled PUT is retried, each attempt signed and
// sent with its whole body, and what is sent is what S3 expects.
func TestRetriedAndSigned(t *testing.T) {
	srv, requests := fakeS3(t, s3Error(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."), ok200(""))
	st, err := s3blob.New(endpointConfig(srv), "bodies")
	require.NoError(t, err)
	data := []byte("a body over the queue limit, say")

	ref, err := st.Put(ctx(t), data)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), ref)

	got := requests()
	require.Len(t, got, 2, "one throttled attempt, one retry")
	for _, r := range got {
		assert.Equal(t, http.MethodPut, r.method)
		assert.Equal(t, "/bodies/sha256/"+hex.EncodeToString(sum[:]), r.path, "path-style under the endpoint")
		assert.Equal(t, data, r.body, "the retry sends the whole body again")
		assert.EqualValues(t, len(data), r.contentLength)
		assert.Equal(t, "AES256", r.header.Get("X-Amz-Server-Side-Encryption"))
		assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
		assert.Equal(t, base64.StdEncoding.EncodeToString(sum[:]), r.header.Get("X-Amz-Checksum-Sha256"), "base64 of the digest")
		checkSigned(t, r, testCreds)
	}
}

// rotatingCreds hands out new credentials, valid for no time at all, each
// time it is asked, as a role's session nearing its expiry would.
type rotatingCreds struct {
	mu sync.Mutex
	n  int
}

func (p *rotatingCreds) Retrieve(context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return aws.Credentials{AccessKeyID: fmt.Sprintf("AKID%d", p.n), SecretAccessKey: "secret", CanExpire: true, Expires: time.Now()}, nil
}

// TestEachAttemptSignedAfresh: the retry is signed anew (credentials and
// time of its own), not a copy of the first attempt's signature.
func TestEachAttemptSignedAfresh(t *testing.T) {
	srv, requests := fakeS3(t, s3Error(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."), ok200(""))
	cfg := endpointConfig(srv)
	cfg.Credentials = &rotatingCreds{}
	st, err := s3blob.New(cfg, "bodies")
	require.NoError(t, err)
	_, err = st.Put(ctx(t), []byte("x"))
	require.NoError(t, err)
	got := requests()
	require.Len(t, got, 2)
	checkSigned(t, got[0], aws.Credentials{AccessKeyID: "AKID1", SecretAccessKey: "secret"})
	checkSigned(t, got[1], aws.Credentials{AccessKeyID: "AKID2", SecretAccessKey: "secret"})
}

// TestClientErrorNotRetried: S3's error document reaches the caller (code,
// HTTP status, request id), and a 403 is not retried.
func TestClientErrorNotRetried(t *testing.T) {
	srv, requests := fakeS3(t, s3Error(http.StatusForbidden, "AccessDenied", "Access Denied"))
	st, err := s3blob.New(endpointConfig(srv), "bodies")
	require.NoError(t, err)

	_, err = st.Put(ctx(t), []byte("x"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AccessDenied")
	assert.Contains(t, err.Error(), "Access Denied")
	assert.Contains(t, err.Error(), "req-AccessDenied", "the request id, for AWS support")
	var respErr *smithyhttp.ResponseError
	require.True(t, errors.As(err, &respErr), "%T: %v", err, err)
	assert.Equal(t, http.StatusForbidden, respErr.HTTPStatusCode())
	assert.Len(t, requests(), 1, "not retried")
}

// TestServerErrorsGiveUp: a 500 is retried, up to the retryer's attempts.
func TestServerErrorsGiveUp(t *testing.T) {
	srv, requests := fakeS3(t, s3Error(http.StatusInternalServerError, "InternalError", "We encountered an internal error."))
	st, err := s3blob.New(endpointConfig(srv), "bodies")
	require.NoError(t, err)
	_, err = st.Put(ctx(t), []byte("x"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "InternalError")
	assert.Len(t, requests(), retry.DefaultMaxAttempts)
}

func TestGetNotFound(t *testing.T) {
	missing := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name     string
		answer   func(http.ResponseWriter)
		notFound bool
	}{
		{"NoSuchKey", s3Error(http.StatusNotFound, "NoSuchKey", "The specified key does not exist."), true},
		{"404 without a body", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, true},
		// A missing bucket is a misconfiguration, not a missing body.
		{"NoSuchBucket", s3Error(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := fakeS3(t, tc.answer)
			st, err := s3blob.New(endpointConfig(srv), "bodies")
			require.NoError(t, err)
			_, err = st.Get(ctx(t), missing)
			require.Error(t, err)
			assert.Equal(t, tc.notFound, errors.Is(err, s3blob.ErrNotFound), "%v", err)
			got := requests()
			require.Len(t, got, 1)
			assert.Equal(t, http.MethodGet, got[0].method)
			assert.Equal(t, "/bodies/sha256/"+strings.Repeat("0", 64), got[0].path)
			checkSigned(t, got[0], testCreds)
		})
	}
}

// recordingTransport answers every request itself, so that the address
// the store would reach on AWS can be checked without reaching it.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		// Read as a server would: the SDK's client computes its checksum
		// while the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
	}
	// The address without the SDK's query (?x-id=PutObject), which names
	// the operation, not the place.
	u := *r.URL
	u.RawQuery = ""
	rt.mu.Lock()
	rt.urls = append(rt.urls, u.String())
	rt.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func TestVirtualHostedOnAWS(t *testing.T) {
	for region, host := range map[string]string{
		"eu-west-1":      "agentry-dev-bodies.s3.eu-west-1.amazonaws.com",
		"us-east-1":      "agentry-dev-bodies.s3.us-east-1.amazonaws.com",
		"cn-northwest-1": "agentry-dev-bodies.s3.cn-northwest-1.amazonaws.com.cn",
	} {
		rt := &recordingTransport{}
		st, err := s3blob.New(aws.Config{Region: region, Credentials: credentials.StaticCredentialsProvider{Value: testCreds}, HTTPClient: &http.Client{Transport: rt}}, "agentry-dev-bodies")
		require.NoError(t, err)
		ref, err := st.Put(ctx(t), []byte("x"))
		require.NoError(t, err)
		assert.Equal(t, []string{"https://" + host + "/sha256/" + strings.TrimPrefix(ref, "sha256:")}, rt.urls, region)
	}
}

// TestCostCounted: awscost's counter, installed through the configuration
// as the bench installs it, counts and prices the store's calls.
func TestCostCounted(t *testing.T) {
	names, _ := awstest.Resources(t)
	cfg := awstest.Config(t)
	counter := awscost.New(cfg)
	st, err := s3blob.New(counter.Instrument(cfg), names.Bucket)
	require.NoError(t, err)
	_, _, _ = counter.Take()

	ref, err := st.Put(ctx(t), []byte("counted"))
	require.NoError(t, err)
	_, err = st.Get(ctx(t), ref)
	require.NoError(t, err)

	total, _, err := counter.Take()
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"s3:PutObject": 1, "s3:GetObject": 1}, total.Calls)
	assert.Equal(t, 1.0, total.S3Tier1, "PUT")
	assert.Equal(t, 1.0, total.S3Tier2, "GET")
	assert.Zero(t, total.Retries)
	assert.Empty(t, total.Unmetered)
}

// TestCostCountsRetries: the counter's attempt counter finds the retry
// middleware by its id.
func TestCostCountsRetries(t *testing.T) {
	srv, _ := fakeS3(t, s3Error(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."), ok200(""))
	cfg := endpointConfig(srv)
	counter := awscost.New(awstest.Config(t))
	st, err := s3blob.New(counter.Instrument(cfg), "bodies")
	require.NoError(t, err)
	_, err = st.Put(ctx(t), []byte("x"))
	require.NoError(t, err)
	total, _, err := counter.Take()
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"s3:PutObject": 1}, total.Calls)
	assert.Equal(t, 1.0, total.Retries)
}

// seenByMiddleware is what a middleware from cfg.APIOptions learns of a
// call, the way observe's and awscost's learn it.
type seenByMiddleware struct {
	service, operation, region, requestID string
	status                                int
}

type recordCall struct{ calls *[]seenByMiddleware }

func (recordCall) ID() string { return "test/record" }

func (m recordCall) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	c := seenByMiddleware{service: awsmiddleware.GetServiceID(ctx), operation: awsmiddleware.GetOperationName(ctx), region: awsmiddleware.GetRegion(ctx)}
	c.requestID, _ = awsmiddleware.GetRequestIDMetadata(md)
	if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		c.status = raw.StatusCode
	}
	*m.calls = append(*m.calls, c)
	return out, md, err
}

// TestMiddlewareSeesTheCall: middleware installed through cfg.APIOptions
// sees each call as it would see the SDK's S3 client's: service id,
// operation, region, the raw response and S3's request id.
func TestMiddlewareSeesTheCall(t *testing.T) {
	srv, _ := fakeS3(t, ok200(""), func(w http.ResponseWriter) {
		w.Header().Set("X-Amz-Request-Id", "req-get")
		_, _ = io.WriteString(w, "x")
	})
	var calls []seenByMiddleware
	cfg := endpointConfig(srv)
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(recordCall{&calls}, middleware.After)
	})
	st, err := s3blob.New(cfg, "bodies")
	require.NoError(t, err)
	ref, err := st.Put(ctx(t), []byte("x"))
	require.NoError(t, err)
	_, err = st.Get(ctx(t), ref)
	require.NoError(t, err)
	assert.Equal(t, []seenByMiddleware{
		{service: "S3", operation: "PutObject", region: testRegion, requestID: "req-ok", status: http.StatusOK},
		{service: "S3", operation: "GetObject", region: testRegion, requestID: "req-get", status: http.StatusOK},
	}, calls)
}

// TestTracedAsS3: inside a sampled Lambda invocation, each call is an X-Ray
// subsegment named S3 with its operation and HTTP status.
func TestTracedAsS3(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	t.Setenv(observe.EnvXRay, "")
	t.Setenv("AWS_LAMBDA_FUNCTION_NAME", "agentry-test-api")
	t.Setenv("AWS_XRAY_DAEMON_ADDRESS", addr)
	const root, parent = "1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
	// What aws-lambda-go hands a handler: the trace header under this
	// plain string key.
	invocation := context.WithValue(ctx(t), "x-amzn-trace-id", "Root="+root+";Parent="+parent+";Sampled=1") //nolint:staticcheck // the key aws-lambda-go and the X-Ray SDK use

	srv, requests := fakeS3(t, ok200(""), s3Error(http.StatusNotFound, "NoSuchKey", "The specified key does not exist."))
	cfg := endpointConfig(srv)
	observe.InstrumentAWS(&cfg)
	st, err := s3blob.New(cfg, "bodies")
	require.NoError(t, err)

	_, err = st.Put(invocation, []byte("traced"))
	require.NoError(t, err)
	d := observetest.Receive(t, docs)
	assert.Equal(t, "S3", d["name"])
	assert.Equal(t, "aws", d["namespace"])
	assert.Equal(t, root, d["trace_id"])
	assert.Equal(t, parent, d["parent_id"])
	assert.Equal(t, map[string]any{"operation": "PutObject", "region": testRegion, "request_id": "req-ok"}, d["aws"])
	assert.Nil(t, d["error"])
	assert.Equal(t, "Root="+root+";Parent="+d["id"].(string)+";Sampled=1", requests()[0].header.Get("X-Amzn-Trace-Id"), "the trace is passed on")

	_, err = st.Get(invocation, "sha256:"+strings.Repeat("0", 64))
	require.ErrorIs(t, err, s3blob.ErrNotFound)
	d = observetest.Receive(t, docs)
	assert.Equal(t, "S3", d["name"])
	assert.Equal(t, map[string]any{"operation": "GetObject", "region": testRegion, "request_id": "req-NoSuchKey"}, d["aws"])
	assert.Equal(t, true, d["error"], "a 4xx is an error")
	assert.Equal(t, true, d["fault"], "the X-Ray SDK records every failed AWS call as a fault too")
}

// failingCreds is a credentials provider that cannot provide any.
type failingCreds struct{}

func (failingCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("no credentials in the instance profile")
}

// TestCallFailures: what stops a call before or after it reaches S3 is an
// S3 operation error saying what happened; a call that never had a chance
// to be right is not sent at all.
func TestCallFailures(t *testing.T) {
	unreached := ok200("") // the cases that use it send nothing
	for _, tc := range []struct {
		name    string
		answer  func(http.ResponseWriter)
		mod     func(*aws.Config)
		closed  bool // nothing listens at the endpoint
		want    []string
		sent    int // requests S3 received
		wantErr error
	}{
		{name: "middleware refuses to install", answer: unreached,
			mod: func(c *aws.Config) {
				c.APIOptions = append(c.APIOptions, func(*middleware.Stack) error { return errors.New("instrumentation broken") })
			},
			want: []string{"s3blob put", "instrumentation broken"}},
		{name: "no credentials", answer: unreached,
			mod:  func(c *aws.Config) { c.Credentials = failingCreds{} },
			want: []string{"S3: PutObject", "credentials", "instance profile"}},
		{name: "nothing listens", closed: true,
			want: []string{"S3: PutObject", "connect"}},
		{name: "a proxy's error page", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><body>upstream unavailable</body></html>")
		}, want: []string{"S3: PutObject", "StatusCode: 502", "Bad Gateway"}, sent: retry.DefaultMaxAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := fakeS3(t, tc.answer)
			cfg := endpointConfig(srv)
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			if tc.closed {
				srv.Close()
			}
			st, err := s3blob.New(cfg, "bodies")
			require.NoError(t, err)
			_, err = st.Put(ctx(t), []byte("x"))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			if !tc.closed {
				assert.Len(t, requests(), tc.sent)
			}
		})
	}
}

// TestSizeLimits: a body over MaxBlobBytes is neither sent nor read,
// whether S3 declares its size or not, and a body cut short is an error,
// not a short blob.
func TestSizeLimits(t *testing.T) {
	ref := "sha256:" + strings.Repeat("0", 64)
	t.Run("put", func(t *testing.T) {
		srv, requests := fakeS3(t, ok200(""))
		st, err := s3blob.New(endpointConfig(srv), "bodies")
		require.NoError(t, err)
		_, err = st.Put(ctx(t), make([]byte, s3blob.MaxBlobBytes+1))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "over the")
		assert.Empty(t, requests(), "not sent")
	})
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter)
		want   string
	}{
		{name: "declared too large", want: "over the", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(s3blob.MaxBlobBytes+1))
			w.WriteHeader(http.StatusOK)
		}},
		{name: "undeclared and too large", want: "over the", answer: func(w http.ResponseWriter) {
			chunk := make([]byte, 1<<20)
			for range s3blob.MaxBlobBytes>>20 + 1 {
				if _, err := w.Write(chunk); err != nil {
					return // the store stopped reading
				}
			}
		}},
		{name: "cut short", want: "read body", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "only ten b")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakeS3(t, tc.answer)
			st, err := s3blob.New(endpointConfig(srv), "bodies")
			require.NoError(t, err)
			data, err := st.Get(ctx(t), ref)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, data)
		})
	}
}
