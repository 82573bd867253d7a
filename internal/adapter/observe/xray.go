package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-xray-sdk-go/daemoncfg"
	"github.com/aws/aws-xray-sdk-go/header"
	"github.com/aws/aws-xray-sdk-go/instrumentation/awsv2"
	"github.com/aws/aws-xray-sdk-go/xray"
	"github.com/aws/aws-xray-sdk-go/xraylog"
	"github.com/aws/smithy-go/middleware"
)

// This file is the only user of aws-xray-sdk-go (maintenance mode since
// 2026-02-25, unsupported after 2027-02-25). Its four functions
// (TracingEnabled, InstrumentAWS, WrapHTTP, TraceServer) are the whole
// tracing API of Agentry; an OpenTelemetry implementation of them
// replaces this file alone.
//
// The SDK's recorder does the work: its awsv2 instrumentor records AWS
// calls, its RoundTripper outbound HTTP, and in Lambda both become
// subsegments of the facade segment it builds from the invocation's trace
// header. What is added here is only when to call it (tracing on, inside
// a trace) and how quietly it runs.

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

// sdkSubsegmentID names the awsv2 instrumentor's middleware that records
// an AWS call; its presence means a stack is already instrumented.
const sdkSubsegmentID = "XRayInitializeMiddlewareAfter"

// InstrumentAWS makes every client built from cfg afterwards record its
// calls as X-Ray subsegments of the invocation's trace. A no-op unless
// TracingEnabled; calling it twice instruments once.
func InstrumentAWS(cfg *aws.Config) {
	if cfg == nil || !TracingEnabled() {
		return
	}
	configureRecorder()
	// A copy of an aws.Config shares its APIOptions array with the
	// original: appending to a clone keeps the caller's config untouched.
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), instrumentStack)
}

// instrumentStack adds the SDK's awsv2 middleware to one operation's stack,
// once (smithy refuses a second middleware with the same id).
func instrumentStack(st *middleware.Stack) error {
	if _, ok := st.Initialize.Get(sdkSubsegmentID); ok {
		return nil
	}
	var opts []func(*middleware.Stack) error
	awsv2.AWSV2Instrumentor(&opts)
	for _, add := range opts {
		if err := add(st); err != nil {
			return fmt.Errorf("x-ray instrumentation of the AWS client: %w", err)
		}
	}
	sdk, ok := st.Initialize.Get(sdkSubsegmentID)
	if !ok {
		return errors.New("x-ray instrumentation of the AWS client: the SDK's middleware is missing")
	}
	if _, err := st.Initialize.Swap(sdkSubsegmentID, inTraceOnly{sdk}); err != nil {
		return fmt.Errorf("x-ray instrumentation of the AWS client: %w", err)
	}
	// Inside the SDK's middleware, so that its subsegment is in the context.
	if err := st.Initialize.Insert(awsThrottle{}, sdkSubsegmentID, middleware.After); err != nil {
		return fmt.Errorf("x-ray instrumentation of the AWS client: %w", err)
	}
	return nil
}

// inTraceOnly runs the SDK's middleware for calls made inside a trace.
// Outside one (a Lambda's init, a poller of `agentry serve`) the SDK would
// report a missing segment, which AWS_XRAY_CONTEXT_MISSING=RUNTIME_ERROR
// turns into a panic: such calls go through untraced instead.
type inTraceOnly struct {
	sdk middleware.InitializeMiddleware
}

func (m inTraceOnly) ID() string { return m.sdk.ID() }

func (m inTraceOnly) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if !inTrace(ctx) {
		return next.HandleInitialize(ctx, in)
	}
	return m.sdk.HandleInitialize(ctx, in, next)
}

// isThrottle is the AWS SDK's own list of throttling errors, the one its
// retryer backs off on.
var isThrottle = retry.IsErrorThrottles(retry.DefaultThrottles)

// awsThrottle marks a throttled call as one: AWS answers most throttling
// with a 400 and an error code, which the SDK's middleware records as a
// mere error, while X-Ray counts throttles apart.
type awsThrottle struct{}

func (awsThrottle) ID() string { return "AgentryXRayThrottle" }

func (awsThrottle) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if seg := xray.GetSegment(ctx); seg != nil && err != nil && isThrottle.IsErrorThrottle(err) == aws.TrueTernary {
		seg.Lock()
		seg.Error, seg.Throttle = true, true
		seg.Unlock()
	}
	return out, md, err
}

// TraceServer returns h recording each request it serves as an X-Ray
// segment named name, for a long-running server (`agentry serve` on either
// backend), where no Lambda facade segment exists for the AWS calls and
// outbound HTTP of a request to belong to. An incoming X-Amzn-Trace-Id
// (from a load balancer) is continued; the SDK's sampling rules decide
// otherwise. It is h itself unless TracingEnabled, and in Lambda, whose
// invocations are already segments.
func TraceServer(name string, h http.Handler) http.Handler {
	if !TracingEnabled() || os.Getenv("AWS_LAMBDA_FUNCTION_NAME") != "" {
		return h
	}
	configureRecorder()
	// The SDK records scheme, host and path only: a query (a cursor)
	// never reaches the trace.
	return xray.Handler(xray.NewFixedSegmentNamer(name), h)
}

// WrapHTTP returns rt recording each request as an X-Ray subsegment and
// passing the trace header on. A no-op (rt itself) unless TracingEnabled.
func WrapHTTP(rt http.RoundTripper) http.RoundTripper {
	if !TracingEnabled() {
		return rt
	}
	configureRecorder()
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &tracedTransport{untraced: rt, traced: xray.RoundTripper(rt)}
}

// tracedTransport records requests made inside a trace; work outside any
// goes straight through, as AWS calls do (inTraceOnly says why).
type tracedTransport struct{ untraced, traced http.RoundTripper }

func (t *tracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !inTrace(r.Context()) {
		return t.untraced.RoundTrip(r)
	}
	// The SDK's RoundTripper sets the trace header on the request it is
	// given, and a RoundTripper must not change its caller's.
	return t.traced.RoundTrip(r.Clone(r.Context()))
}

// inTrace reports whether work in ctx belongs to a trace: a segment the
// SDK put there, or a Lambda invocation's trace header (under the key
// aws-lambda-go uses) from which the SDK makes the facade segment.
func inTrace(ctx context.Context) bool {
	if xray.GetSegment(ctx) != nil {
		return true
	}
	v, _ := ctx.Value(xray.LambdaTraceHeaderKey).(string)
	return v != "" && header.FromString(v).TraceID != ""
}

var recorderOnce sync.Once

// configureRecorder sets the SDK's global recorder up, once: quiet, and
// sending to the daemon the environment names.
func configureRecorder() {
	recorderOnce.Do(func() {
		xray.SetLogger(debugLogger{})
		err := xray.Configure(xray.Config{
			Emitter: &envEmitter{},
			// AWS_XRAY_CONTEXT_MISSING, when set, takes precedence.
			ContextMissingStrategy: quietContextMissing{},
		})
		if err != nil {
			slog.Debug("x-ray: recorder configuration", "err", err)
		}
	})
}

// debugLogger hands the SDK's messages to slog at debug: whatever their
// level, a lost subsegment is no reason to shout, per call.
type debugLogger struct{}

func (debugLogger) Log(level xraylog.LogLevel, msg fmt.Stringer) {
	ctx := context.Background()
	if !slog.Default().Enabled(ctx, slog.LevelDebug) {
		return // msg is formatted lazily: skip the work
	}
	slog.DebugContext(ctx, "x-ray", "sdk_level", level.String(), "detail", msg.String())
}

// quietContextMissing drops the SDK's missing-segment reports; inTrace
// keeps Agentry from causing them.
type quietContextMissing struct{}

func (quietContextMissing) ContextMissing(v any) {
	slog.Debug("x-ray: no segment", "detail", fmt.Sprint(v))
}

// envEmitter is the SDK's emitter, sending to AWS_XRAY_DAEMON_ADDRESS as
// it is at each emission rather than as it was when the process started,
// so that a new address (a test's daemon) is used from the next
// subsegment on.
type envEmitter struct {
	mu   sync.Mutex
	addr string
	sdk  *xray.DefaultEmitter
}

// Emit is called with seg locked.
func (e *envEmitter) Emit(seg *xray.Segment) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.follow(os.Getenv("AWS_XRAY_DAEMON_ADDRESS")); err != nil {
		slog.Debug("x-ray: subsegment not sent", "name", seg.Name, "err", err)
		return
	}
	e.sdk.Emit(seg)
}

// follow points the SDK's emitter at addr (the SDK's syntax: host:port, or
// "tcp:… udp:…"; empty means its default) when that has changed.
func (e *envEmitter) follow(addr string) error {
	if e.sdk != nil && addr == e.addr {
		return nil
	}
	ep := daemoncfg.GetDefaultDaemonEndpoints()
	if addr != "" {
		var err error
		if ep, err = daemoncfg.GetDaemonEndpointsFromString(addr); err != nil {
			return fmt.Errorf("daemon address: %w", err)
		}
	}
	if e.sdk == nil {
		sdk, err := xray.NewDefaultEmitter(ep.UDPAddr)
		if err != nil {
			return fmt.Errorf("x-ray emitter: %w", err)
		}
		e.sdk = sdk
	}
	e.sdk.RefreshEmitterWithAddress(ep.UDPAddr)
	e.addr = addr
	return nil
}

// RefreshEmitterWithAddress is how xray.Configure hands over an address;
// the environment's wins at the next emission.
func (e *envEmitter) RefreshEmitterWithAddress(*net.UDPAddr) {}
