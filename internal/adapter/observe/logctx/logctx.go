// Package logctx carries the correlation ids of a unit of work — the API
// request, the AMTP message — in a context.Context.
//
// It is deliberately a leaf that imports only the standard library: the
// core (gateway, delivery) and the HTTP handler put ids into the context
// here without depending on internal/adapter/observe and its tracing/metrics
// dependencies, and observe's log handler reads them back. The arrows all
// point at this package, so replacing observe's backend (an OpenTelemetry
// exporter instead of X-Ray) leaves every caller untouched.
package logctx

import "context"

// key is unexported so that no other package can collide with, or forge,
// these entries.
type key int

const (
	requestIDKey key = iota + 1
	messageIDKey
)

// WithRequestID returns ctx carrying the id of the API request being
// served (httpapi's X-Request-ID).
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID is the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	v, _ := ctx.Value(requestIDKey).(string)
	return v
}

// WithMessageID returns ctx carrying the id of the AMTP message being
// accepted or delivered.
func WithMessageID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, messageIDKey, id)
}

// MessageID is the message id in ctx, or "".
func MessageID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	v, _ := ctx.Value(messageIDKey).(string)
	return v
}
