package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// The names of docs/metrics.md, the contract with the CDK dashboard and
// alarms (infra/observability.go). Tests parse that document and the infra
// source so that the three cannot drift apart.
const (
	Namespace = "Agentry"

	DimDeployment = "Deployment" // on every metric: AGENTRY_RESOURCE_PREFIX
	DimFunction   = "Function"   // on ColdStart only: api, deliver or deadletter

	MetricMessagesAccepted  = "MessagesAccepted"
	MetricMessagesDelivered = "MessagesDelivered"
	MetricDeliveryLatency   = "DeliveryLatencyMs"
	MetricDeliveryRetries   = "DeliveryRetries"
	MetricDeliveryFailures  = "DeliveryFailures"
	MetricDeadLettered      = "DeadLettered"
	MetricColdStart         = "ColdStart"
	MetricSenderUnverified  = "SenderUnverified"

	UnitCount        = "Count"
	UnitMilliseconds = "Milliseconds"
)

// EMF publishes metrics as CloudWatch embedded metric format: one JSON
// object per line, which CloudWatch Logs turns into metrics when the line
// reaches a Lambda log stream. Nothing is aggregated: each event is one
// line, and the metrics of one event share it. It implements the Metrics
// ports of internal/usecase/gateway and internal/usecase/delivery and is safe for
// concurrent use.
//
// Writing is best effort: a failed write is dropped, because a metric must
// never fail a delivery (and on Lambda, stdout failing means the logs are
// gone too).
type EMF struct {
	deployment string
	now        func() time.Time

	mu sync.Mutex // serialises writes so that lines never interleave
	w  io.Writer

	coldStart sync.Once
}

// NewEMF returns an EMF writing to w (os.Stdout in a Lambda) with
// Deployment = deployment, the resource prefix.
func NewEMF(w io.Writer, deployment string) (*EMF, error) {
	if w == nil {
		return nil, errors.New("emf: no writer")
	}
	if deployment == "" {
		// CloudWatch drops metrics with an empty dimension value, and the
		// dashboard selects by Deployment: fail at start, not silently.
		return nil, errors.New("emf: the Deployment dimension (AGENTRY_RESOURCE_PREFIX) is empty")
	}
	return &EMF{deployment: deployment, now: time.Now, w: w}, nil
}

// MessageAccepted counts one accepted message (MessagesAccepted).
func (e *EMF) MessageAccepted(ctx context.Context, messageID string, recipients int) {
	e.emit(ctx, nil,
		[]metric{{MetricMessagesAccepted, UnitCount, 1}},
		prop{"message_id", messageID}, prop{"recipients", recipients})
}

// MessageDelivered counts one delivered recipient (MessagesDelivered) and
// its latency from acceptance (DeliveryLatencyMs) on the same line; a
// negative latency is unknown and left out.
func (e *EMF) MessageDelivered(ctx context.Context, messageID, recipient, via string, latency time.Duration) {
	ms := []metric{{MetricMessagesDelivered, UnitCount, 1}}
	if latency >= 0 {
		// Microsecond resolution keeps sub-millisecond inbox deliveries
		// from all reading as zero.
		ms = append(ms, metric{MetricDeliveryLatency, UnitMilliseconds, float64(latency.Microseconds()) / 1000})
	}
	e.emit(ctx, nil, ms, prop{"message_id", messageID}, prop{"recipient", recipient}, prop{"via", via})
}

// DeliveryRetried counts one scheduled retry (DeliveryRetries).
func (e *EMF) DeliveryRetried(ctx context.Context, messageID string, attempt int, code string) {
	e.emit(ctx, nil,
		[]metric{{MetricDeliveryRetries, UnitCount, 1}},
		prop{"message_id", messageID}, prop{"attempt", attempt}, prop{"error_code", code})
}

// DeliveryFailed counts one recipient failed for good (DeliveryFailures).
func (e *EMF) DeliveryFailed(ctx context.Context, messageID, recipient, code string) {
	e.emit(ctx, nil,
		[]metric{{MetricDeliveryFailures, UnitCount, 1}},
		prop{"message_id", messageID}, prop{"recipient", recipient}, prop{"error_code", code})
}

// DeadLettered counts one dead-letter queue record settled (DeadLettered).
func (e *EMF) DeadLettered(ctx context.Context, messageID, reason string) {
	e.emit(ctx, nil,
		[]metric{{MetricDeadLettered, UnitCount, 1}},
		prop{"message_id", messageID}, prop{"failure_reason", reason})
}

// SenderUnverified counts one message from another domain accepted
// without a verified signature under the flag policy (draft §9.3.4: "emit
// a warning log, and increment a verification metric"); result is
// unsigned, invalid or key_unavailable.
func (e *EMF) SenderUnverified(ctx context.Context, result string) {
	e.emit(ctx, nil,
		[]metric{{MetricSenderUnverified, UnitCount, 1}},
		prop{"result", result})
}

// ColdStart emits ColdStart = 1 with the Function dimension, once per EMF:
// each Lambda instance builds one EMF at init, so this is once per
// instance. It writes one line and makes no network call.
func (e *EMF) ColdStart(function string) {
	e.coldStart.Do(func() {
		e.emit(context.Background(), []prop{{DimFunction, function}},
			[]metric{{MetricColdStart, UnitCount, 1}})
	})
}

type metric struct {
	name, unit string
	value      float64
}

type prop struct {
	key   string
	value any
}

// The `_aws` metadata object, exactly as CloudWatch specifies it.
type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// emit writes one line: the metadata, then the dimension values, the
// metric values and the searchable properties at the top level. Empty
// properties are left out; dimensions and metrics never are.
func (e *EMF) emit(ctx context.Context, extraDims []prop, ms []metric, props ...prop) {
	dims := append([]prop{{DimDeployment, e.deployment}}, extraDims...)
	names := make([]string, len(dims))
	for i, d := range dims {
		names[i] = d.key
	}
	dir := emfDirective{Namespace: Namespace, Dimensions: [][]string{names}, Metrics: make([]emfMetric, len(ms))}
	for i, m := range ms {
		dir.Metrics[i] = emfMetric{Name: m.name, Unit: m.unit}
	}
	meta, err := json.Marshal(emfMeta{Timestamp: e.now().UnixMilli(), CloudWatchMetrics: []emfDirective{dir}})
	if err != nil {
		return // cannot happen: fixed types of strings and numbers
	}

	var b bytes.Buffer
	b.WriteString(`{"_aws":`)
	b.Write(meta)
	for _, d := range dims {
		field(&b, d.key, d.value)
	}
	for _, m := range ms {
		b.WriteByte(',')
		writeKey(&b, m.name)
		b.WriteString(strconv.FormatFloat(m.value, 'f', -1, 64))
	}
	// The line's own properties win over the context's: the context may
	// carry the id of the message that triggered this one (a failure
	// report accepted while delivering another message).
	seen := map[string]bool{}
	for _, p := range props {
		if s, ok := p.value.(string); ok && s == "" {
			continue
		}
		seen[p.key] = true
		field(&b, p.key, p.value)
	}
	var ids [3]slog.Attr
	for _, a := range appendCorrelationIDs(ids[:0], ctx) {
		if !seen[a.Key] {
			field(&b, a.Key, a.Value.String())
		}
	}
	b.WriteString("}\n")

	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(b.Bytes()) // best effort, see EMF
}

func field(b *bytes.Buffer, key string, value any) {
	v, err := json.Marshal(value)
	if err != nil {
		return
	}
	b.WriteByte(',')
	writeKey(b, key)
	b.Write(v)
}

func writeKey(b *bytes.Buffer, key string) {
	k, _ := json.Marshal(key) // a string always marshals
	b.Write(k)
	b.WriteByte(':')
}
