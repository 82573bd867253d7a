package observe

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-xray-sdk-go/instrumentation/awsv2"
	"github.com/aws/aws-xray-sdk-go/strategy/ctxmissing"
	"github.com/aws/aws-xray-sdk-go/xray"
	"github.com/aws/aws-xray-sdk-go/xraylog"
	"github.com/aws/smithy-go/middleware"
)

// This file is the only user of aws-xray-sdk-go (maintenance mode since
// 2026-02-25, unsupported after 2027-02-25). Its three functions are the
// whole tracing API of Agentry; an OpenTelemetry implementation of them
// replaces this file alone.

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

// xrayMiddlewareID is the id under which the SDK's instrumentation adds its
// first middleware; its presence means a stack is already instrumented.
const xrayMiddlewareID = "XRayInitializeMiddlewareAfter"

// InstrumentAWS makes every client built from cfg afterwards record its
// calls as X-Ray subsegments of the invocation's trace. A no-op unless
// TracingEnabled; calling it twice instruments once.
func InstrumentAWS(cfg *aws.Config) {
	if cfg == nil || !TracingEnabled() {
		return
	}
	setupXRay()
	// A copy of an aws.Config shares its APIOptions array with the
	// original: appending to a clone keeps the caller's config untouched.
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		if _, ok := st.Initialize.Get(xrayMiddlewareID); ok {
			// smithy refuses a second middleware with the same id.
			return nil
		}
		var opts []func(*middleware.Stack) error
		awsv2.AWSV2Instrumentor(&opts)
		for _, o := range opts {
			if err := o(st); err != nil {
				return fmt.Errorf("x-ray instrumentation of the AWS client: %w", err)
			}
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
	setupXRay()
	return &tracedTransport{plain: rt, traced: xray.RoundTripper(rt)}
}

// tracedTransport sends a request through X-Ray only when its context
// belongs to a trace; work outside any trace (a background poller of
// `agentry serve`) goes straight through instead of logging, on every
// request, that there is no segment.
type tracedTransport struct{ plain, traced http.RoundTripper }

func (t *tracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if inTrace(r.Context()) {
		return t.traced.RoundTrip(r)
	}
	return t.plain.RoundTrip(r)
}

// inTrace: a segment is open, or the Lambda runtime put the invocation's
// trace header in the context (the SDK then opens a facade segment).
func inTrace(ctx context.Context) bool {
	return xray.GetSegment(ctx) != nil || ctx.Value(xray.LambdaTraceHeaderKey) != nil
}

var setupOnce sync.Once

// setupXRay configures the SDK once, before its first use: its logs go to
// slog as JSON (not its own plain-text lines on stdout), and a call
// without a segment logs and continues, never panics.
func setupXRay() {
	setupOnce.Do(func() {
		xray.SetLogger(xrayLogger{})
		// The SDK lets AWS_XRAY_CONTEXT_MISSING override Configure, and
		// RUNTIME_ERROR there would panic in a request. Only IGNORE_ERROR,
		// which also continues, is left to take effect.
		if v := os.Getenv("AWS_XRAY_CONTEXT_MISSING"); v != "" && v != ctxmissing.IgnoreErrorStrategy {
			_ = os.Unsetenv("AWS_XRAY_CONTEXT_MISSING")
		}
		if err := xray.Configure(xray.Config{ContextMissingStrategy: &logAndContinue{}}); err != nil {
			slog.Warn("x-ray configuration incomplete; tracing continues with defaults", "err", err)
		}
	})
}

// logAndContinue is the context-missing strategy: the first miss is a
// warning (a context that lost its trace is worth fixing), the rest are
// debug lines, so that a systematic miss does not flood the logs.
type logAndContinue struct{ warned atomic.Bool }

func (s *logAndContinue) ContextMissing(v any) {
	level := slog.LevelDebug
	if s.warned.CompareAndSwap(false, true) {
		level = slog.LevelWarn
	}
	slog.Default().Log(context.Background(), level, "x-ray: no segment in the context; the call is not traced", "detail", fmt.Sprint(v))
}

// xrayLogger forwards the SDK's own logs to the default slog logger, read
// at each call so that it follows slog.SetDefault.
type xrayLogger struct{}

func (xrayLogger) Log(level xraylog.LogLevel, msg fmt.Stringer) {
	// The SDK's info lines describe its own plumbing (daemon address,
	// sampling rules): debug for us.
	l := slog.LevelDebug
	switch level {
	case xraylog.LogLevelWarn:
		l = slog.LevelWarn
	case xraylog.LogLevelError:
		l = slog.LevelError
	}
	log := slog.Default()
	if !log.Enabled(context.Background(), l) {
		return
	}
	log.Log(context.Background(), l, "x-ray: "+msg.String())
}
