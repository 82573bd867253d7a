package observe

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
)

// The attribute keys the correlating handler adds. request_id is the API's
// X-Request-ID (also in every error body), message_id the AMTP message id,
// aws_request_id the Lambda invocation (the key of Lambda's own
// START/END/REPORT lines).
const (
	KeyRequestID    = "request_id"
	KeyMessageID    = "message_id"
	KeyAWSRequestID = "aws_request_id"
)

// WithRequestID returns ctx carrying the API request id: every log line
// written with that context (slog's *Context methods) then carries it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return logctx.WithRequestID(ctx, id)
}

// WithMessageID returns ctx carrying the AMTP message id.
func WithMessageID(ctx context.Context, id string) context.Context {
	return logctx.WithMessageID(ctx, id)
}

// NewLogger returns a JSON logger to w at level, with attrs on every line,
// whose records carry the correlation ids of their context.
func NewLogger(w io.Writer, level slog.Leveler, attrs ...slog.Attr) *slog.Logger {
	var h slog.Handler = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	if len(attrs) > 0 {
		h = h.WithAttrs(attrs)
	}
	return slog.New(NewHandler(h))
}

// Correlate returns l with the correlating handler around its own, for
// loggers built elsewhere (the CLI's, a test's); l itself when it already
// correlates, and slog.Default() when l is nil.
func Correlate(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	if _, ok := l.Handler().(*handler); ok {
		return l
	}
	return slog.New(NewHandler(l.Handler()))
}

// NewHandler wraps next so that each record gets request_id, message_id
// and aws_request_id from the context it was logged with, when present
// and not already given by the call itself. Wrapping twice is harmless:
// an already correlating handler is returned as is.
//
// The ids are added to the record, so a logger that opened a group with
// WithGroup nests them in that group; none of Agentry's loggers does.
func NewHandler(next slog.Handler) slog.Handler {
	if h, ok := next.(*handler); ok {
		return h
	}
	return &handler{next: next}
}

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	// Every log line passes here: the ids go in an array on the stack and
	// the names a call gave itself in a bit set, not a slice and a map.
	var buf [3]slog.Attr
	ids := appendCorrelationIDs(buf[:0], ctx)
	if len(ids) == 0 {
		return h.next.Handle(ctx, r)
	}
	// A call that names an id itself (log.Info(..., "message_id", x)) is
	// not given a second, possibly different one.
	var present uint8
	r.Attrs(func(a slog.Attr) bool {
		present |= idBit(a.Key)
		return true
	})
	// Clone: the record may share its attribute storage with the caller's
	// copy, which slog forbids modifying in place.
	r = r.Clone()
	for _, a := range ids {
		if present&idBit(a.Key) == 0 {
			r.AddAttrs(a)
		}
	}
	return h.next.Handle(ctx, r)
}

// idBit is the bit of a correlation id's key, 0 for any other key.
func idBit(key string) uint8 {
	switch key {
	case KeyRequestID:
		return 1
	case KeyMessageID:
		return 2
	case KeyAWSRequestID:
		return 4
	}
	return 0
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{next: h.next.WithAttrs(as)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name)}
}

// appendCorrelationIDs appends the ids ctx carries, in a fixed order.
func appendCorrelationIDs(out []slog.Attr, ctx context.Context) []slog.Attr {
	if ctx == nil {
		return out
	}
	if id := logctx.RequestID(ctx); id != "" {
		out = append(out, slog.String(KeyRequestID, id))
	}
	if id := logctx.MessageID(ctx); id != "" {
		out = append(out, slog.String(KeyMessageID, id))
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		out = append(out, slog.String(KeyAWSRequestID, lc.AwsRequestID))
	}
	return out
}
