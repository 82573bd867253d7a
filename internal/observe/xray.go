package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-xray-sdk-go/daemoncfg"
	"github.com/aws/aws-xray-sdk-go/header"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// This file is the only user of aws-xray-sdk-go (maintenance mode since
// 2026-02-25, unsupported after 2027-02-25). Its three functions are the
// whole tracing API of Agentry; an OpenTelemetry implementation of them
// replaces this file alone.
//
// Of the SDK it uses the trace header (package header: parsing the
// invocation's, writing the one passed on) and the daemon's address
// (package daemoncfg: AWS_XRAY_DAEMON_ADDRESS as the SDK reads it). The
// subsegments themselves are recorded and sent to the daemon here: the
// SDK's recorder, package xray, links gRPC, protobuf, fasthttp and the
// whole AWS SDK v1 (about 9 MB of each function's binary, and a third of
// its init time) for what is, in a Lambda function, a few JSON documents
// sent over UDP.

// EnvXRay forces tracing on ("1") or off ("0") whatever the environment
// looks like, e.g. for `agentry serve` next to an X-Ray daemon.
const EnvXRay = "AGENTRY_XRAY"

// TracingEnabled reports whether AWS calls and outbound HTTP are traced:
// when AGENTRY_XRAY says so, else when running in Lambda with X-Ray active
// (Lambda then sets AWS_XRAY_DAEMON_ADDRESS, and _X_AMZN_TRACE_ID per
// invocation). Everywhere else — tests, a laptop — it is false, and the
// helpers below change nothing, so no daemon is ever looked for.
func TracingEnabled() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvXRay))) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	if os.Getenv("AWS_LAMBDA_FUNCTION_NAME") == "" {
		return false
	}
	return os.Getenv("AWS_XRAY_DAEMON_ADDRESS") != "" || os.Getenv("_X_AMZN_TRACE_ID") != ""
}

// xrayMiddlewareID names the middleware that records an AWS call; its
// presence means a stack is already instrumented.
const xrayMiddlewareID = "AgentryXRaySubsegment"

// InstrumentAWS makes every client built from cfg afterwards record its
// calls as X-Ray subsegments of the invocation's trace. A no-op unless
// TracingEnabled; calling it twice instruments once.
func InstrumentAWS(cfg *aws.Config) {
	if cfg == nil || !TracingEnabled() {
		return
	}
	// A copy of an aws.Config shares its APIOptions array with the
	// original: appending to a clone keeps the caller's config untouched.
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		if _, ok := st.Initialize.Get(xrayMiddlewareID); ok {
			// smithy refuses a second middleware with the same id.
			return nil
		}
		if err := st.Initialize.Add(awsSubsegment{}, middleware.After); err != nil {
			return fmt.Errorf("x-ray instrumentation of the AWS client: %w", err)
		}
		// Build, not Initialize: the request exists from there on, and
		// each retry of it carries the same header.
		if err := st.Build.Add(awsTraceHeader{}, middleware.After); err != nil {
			return fmt.Errorf("x-ray instrumentation of the AWS client: %w", err)
		}
		return nil
	})
}

// WrapHTTP returns rt recording each request as an X-Ray subsegment and
// passing the trace header on. A no-op (rt itself) unless TracingEnabled.
func WrapHTTP(rt http.RoundTripper) http.RoundTripper {
	if !TracingEnabled() {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &tracedTransport{next: rt}
}

// tracedTransport records requests made inside a trace; work outside any
// (a background poller of `agentry serve`) goes straight through.
type tracedTransport struct{ next http.RoundTripper }

func (t *tracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	parent := traceOf(r.Context())
	if parent == nil {
		return t.next.RoundTrip(r)
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	s := parent.child(host, "remote")
	// The URL without its query or user info: a webhook's may hold a
	// token, and traces are readable by more people than secrets are.
	u := *r.URL
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	s.doc.HTTP = &httpDoc{Request: httpRequest{Method: r.Method, URL: u.String()}}
	// A RoundTripper must not change the caller's request.
	r = r.Clone(r.Context())
	r.Header.Set(traceHeaderName, s.header())
	resp, err := t.next.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	s.end(status, err)
	return resp, err
}

const traceHeaderName = "X-Amzn-Trace-Id"

// lambdaTraceKey is the context key under which aws-lambda-go hands each
// invocation's trace header to the handler (the X-Ray SDK reads the same).
const lambdaTraceKey = "x-amzn-trace-id"

type spanKey struct{}

// traceOf returns the span that work in ctx belongs to: an AWS call in
// progress, or the Lambda invocation's segment; nil outside any trace.
func traceOf(ctx context.Context) *span {
	if s, ok := ctx.Value(spanKey{}).(*span); ok {
		return s
	}
	v, _ := ctx.Value(lambdaTraceKey).(string)
	if v == "" {
		return nil
	}
	h := header.FromString(v)
	if h.TraceID == "" {
		return nil
	}
	return &span{traceID: h.TraceID, id: h.ParentID, sampled: h.SamplingDecision == header.Sampled}
}

// span is the invocation's segment (made by Lambda, never sent by us) or
// one of our subsegments of it.
type span struct {
	traceID, id string
	sampled     bool
	start       time.Time
	doc         subsegmentDoc
}

func (p *span) child(name, namespace string) *span {
	s := &span{traceID: p.traceID, id: newID(), sampled: p.sampled, start: time.Now()}
	s.doc = subsegmentDoc{Type: "subsegment", ID: s.id, TraceID: p.traceID, ParentID: p.id, Name: name, Namespace: namespace}
	return s
}

// header is the trace header for a call made in this span.
func (s *span) header() string {
	h := header.Header{TraceID: s.traceID, ParentID: s.id, SamplingDecision: header.NotSampled}
	if s.sampled {
		h.SamplingDecision = header.Sampled
	}
	return h.String()
}

// end records the outcome as X-Ray classifies it (throttle: 429; error:
// another 4xx; fault: 5xx or no answer) and sends the subsegment when the
// trace is sampled.
func (s *span) end(status int, err error) {
	if !s.sampled {
		return
	}
	d := &s.doc
	d.StartTime, d.EndTime = epoch(s.start), epoch(time.Now())
	if status != 0 && d.HTTP != nil {
		d.HTTP.Response = &httpResponse{Status: status}
	}
	switch {
	case status == http.StatusTooManyRequests:
		d.Error, d.Throttle = true, true
	case status >= 400 && status < 500:
		d.Error = true
	case status >= 500 || (status == 0 && err != nil):
		d.Fault = true
	}
	if err != nil {
		d.Cause = &causeDoc{Exceptions: []exceptionDoc{{ID: newID(), Message: err.Error()}}}
	}
	daemon.send(d)
}

func epoch(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// newID is a segment id: 16 hex digits.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// subsegmentDoc is a subsegment sent on its own, as the X-Ray segment
// document format describes it.
type subsegmentDoc struct {
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	TraceID   string         `json:"trace_id"`
	ParentID  string         `json:"parent_id"`
	Name      string         `json:"name"`
	Namespace string         `json:"namespace,omitempty"`
	StartTime float64        `json:"start_time"`
	EndTime   float64        `json:"end_time"`
	Error     bool           `json:"error,omitempty"`
	Throttle  bool           `json:"throttle,omitempty"`
	Fault     bool           `json:"fault,omitempty"`
	Cause     *causeDoc      `json:"cause,omitempty"`
	HTTP      *httpDoc       `json:"http,omitempty"`
	AWS       map[string]any `json:"aws,omitempty"`
}

type httpDoc struct {
	Request  httpRequest   `json:"request"`
	Response *httpResponse `json:"response,omitempty"`
}

type httpRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type httpResponse struct {
	Status int `json:"status"`
}

type causeDoc struct {
	Exceptions []exceptionDoc `json:"exceptions"`
}

type exceptionDoc struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// daemon sends documents to the X-Ray daemon over UDP, as the SDK does.
var daemon udpDaemon

type udpDaemon struct {
	mu   sync.Mutex
	addr string
	conn *net.UDPConn
}

// daemonHeader precedes every document sent to the daemon.
const daemonHeader = `{"format": "json", "version": 1}` + "\n"

func (u *udpDaemon) send(d *subsegmentDoc) {
	body, err := json.Marshal(d)
	if err == nil {
		err = u.write(append([]byte(daemonHeader), body...))
	}
	if err != nil {
		// A lost subsegment is no reason to fail, or to shout, per call.
		slog.Debug("x-ray: subsegment not sent", "name", d.Name, "err", err)
	}
}

func (u *udpDaemon) write(packet []byte) error {
	// Read at each send (the SDK's rules: host:port, or "tcp:… udp:…"),
	// so that a test can point it elsewhere; no DNS is involved.
	ep, err := daemoncfg.GetDaemonEndpointsFromEnv()
	if err != nil {
		return fmt.Errorf("daemon address: %w", err)
	}
	if ep == nil {
		ep = daemoncfg.GetDefaultDaemonEndpoints()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn == nil || u.addr != ep.UDPAddr.String() {
		if u.conn != nil {
			_ = u.conn.Close()
		}
		u.conn, u.addr = nil, ""
		c, err := net.DialUDP("udp", nil, ep.UDPAddr)
		if err != nil {
			return err
		}
		u.conn, u.addr = c, ep.UDPAddr.String()
	}
	_, err = u.conn.Write(packet)
	return err
}

// awsSubsegment records one AWS operation, retries included.
type awsSubsegment struct{}

func (awsSubsegment) ID() string { return xrayMiddlewareID }

func (awsSubsegment) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	parent := traceOf(ctx)
	if parent == nil {
		return next.HandleInitialize(ctx, in)
	}
	s := parent.child(awsmiddleware.GetServiceID(ctx), "aws")
	out, md, err := next.HandleInitialize(context.WithValue(ctx, spanKey{}, s), in)
	s.doc.AWS = map[string]any{"operation": awsmiddleware.GetOperationName(ctx), "region": awsmiddleware.GetRegion(ctx)}
	if id, ok := awsmiddleware.GetRequestIDMetadata(md); ok && id != "" {
		s.doc.AWS["request_id"] = id
	}
	status := 0
	if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && raw != nil {
		status = raw.StatusCode
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		status = respErr.Response.StatusCode
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && strings.Contains(apiErr.ErrorCode(), "Throttl") {
		status = http.StatusTooManyRequests
	}
	s.end(status, err)
	return out, md, err
}

// awsTraceHeader passes the trace on to AWS, which links its own segments
// (SQS, Step Functions) to it.
type awsTraceHeader struct{}

func (awsTraceHeader) ID() string { return "AgentryXRayTraceHeader" }

func (awsTraceHeader) HandleBuild(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
	if s, ok := ctx.Value(spanKey{}).(*span); ok {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			req.Header.Set(traceHeaderName, s.header())
		}
	}
	return next.HandleBuild(ctx, in)
}
