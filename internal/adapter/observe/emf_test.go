package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// EMF is what awsgw hands to the core as both of its Metrics ports.
var (
	_ gateway.Metrics  = (*observe.EMF)(nil)
	_ delivery.Metrics = (*observe.EMF)(nil)
)

// emfLine is one EMF object as CloudWatch reads it.
type emfLine struct {
	AWS struct {
		Timestamp         *int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	top map[string]any // every top-level member, values included
}

// parseLines checks that out is JSON objects one per line and decodes them.
func parseLines(t *testing.T, out string) []emfLine {
	t.Helper()
	require.True(t, strings.HasSuffix(out, "\n") || out == "", "every line ends with a newline")
	var lines []emfLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l emfLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %q", sc.Text())
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l.top))
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	return lines
}

type unitMetric struct{ name, unit string }

func TestEMFLines(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		emit    func(e *observe.EMF)
		dims    []string
		metrics []unitMetric
		values  map[string]any // top-level members besides Deployment
		absent  []string
	}{
		{
			name:    "accepted",
			emit:    func(e *observe.EMF) { e.MessageAccepted(ctx, "m-1", 3) },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"MessagesAccepted", "Count"}},
			values:  map[string]any{"MessagesAccepted": 1.0, "message_id": "m-1", "recipients": 3.0},
		},
		{
			name: "delivered with latency on one line",
			emit: func(e *observe.EMF) {
				e.MessageDelivered(ctx, "m-2", "bob@example.org", "webhook", 412500*time.Microsecond)
			},
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"MessagesDelivered", "Count"}, {"DeliveryLatencyMs", "Milliseconds"}},
			values:  map[string]any{"MessagesDelivered": 1.0, "DeliveryLatencyMs": 412.5, "message_id": "m-2", "recipient": "bob@example.org", "via": "webhook"},
		},
		{
			name:    "delivered with unknown latency",
			emit:    func(e *observe.EMF) { e.MessageDelivered(ctx, "m-3", "bob@example.org", "inbox", -1) },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"MessagesDelivered", "Count"}},
			values:  map[string]any{"MessagesDelivered": 1.0},
			absent:  []string{"DeliveryLatencyMs"},
		},
		{
			name:    "retried",
			emit:    func(e *observe.EMF) { e.DeliveryRetried(ctx, "m-4", 2, "RECIPIENT_UNAVAILABLE") },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"DeliveryRetries", "Count"}},
			values:  map[string]any{"DeliveryRetries": 1.0, "attempt": 2.0, "error_code": "RECIPIENT_UNAVAILABLE"},
		},
		{
			name:    "failed",
			emit:    func(e *observe.EMF) { e.DeliveryFailed(ctx, "m-5", "bob@example.org", "RECIPIENT_NOT_FOUND") },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"DeliveryFailures", "Count"}},
			values:  map[string]any{"DeliveryFailures": 1.0, "recipient": "bob@example.org", "error_code": "RECIPIENT_NOT_FOUND"},
		},
		{
			name:    "dead-lettered",
			emit:    func(e *observe.EMF) { e.DeadLettered(ctx, "m-6", "poison") },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"DeadLettered", "Count"}},
			values:  map[string]any{"DeadLettered": 1.0, "message_id": "m-6"},
		},
		{
			name:    "sender unverified",
			emit:    func(e *observe.EMF) { e.SenderUnverified(ctx, "invalid") },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"SenderUnverified", "Count"}},
			values:  map[string]any{"SenderUnverified": 1.0, "result": "invalid"},
		},
		{
			name:    "cold start once, with Function",
			emit:    func(e *observe.EMF) { e.ColdStart("deliver"); e.ColdStart("deliver") },
			dims:    []string{"Deployment", "Function"},
			metrics: []unitMetric{{"ColdStart", "Count"}},
			values:  map[string]any{"ColdStart": 1.0, "Function": "deliver"},
		},
		{
			name: "context ids are properties; the line's own id wins",
			emit: func(e *observe.EMF) {
				e.MessageAccepted(observe.WithMessageID(observe.WithRequestID(ctx, "req-9"), "other"), "m-7", 1)
			},
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"MessagesAccepted", "Count"}},
			values:  map[string]any{"request_id": "req-9", "message_id": "m-7"},
		},
		{
			name: "no context at all",
			emit: func(e *observe.EMF) {
				var none context.Context // a caller without one must not crash the metric
				e.SenderUnverified(none, "unsigned")
			},
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"SenderUnverified", "Count"}},
			values:  map[string]any{"result": "unsigned"},
			absent:  []string{"request_id", "message_id", "aws_request_id"},
		},
		{
			name:    "empty properties are left out",
			emit:    func(e *observe.EMF) { e.DeliveryFailed(ctx, "m-8", "bob@example.org", "") },
			dims:    []string{"Deployment"},
			metrics: []unitMetric{{"DeliveryFailures", "Count"}},
			absent:  []string{"error_code", "request_id"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e, err := observe.NewEMF(&out, "agentry-test")
			require.NoError(t, err)
			before := time.Now().UnixMilli()
			tc.emit(e)
			after := time.Now().UnixMilli()

			lines := parseLines(t, out.String())
			require.Len(t, lines, 1, "one line per event")
			l := lines[0]
			require.NotNil(t, l.AWS.Timestamp, "_aws.Timestamp")
			assert.GreaterOrEqual(t, *l.AWS.Timestamp, before)
			assert.LessOrEqual(t, *l.AWS.Timestamp, after)
			require.Len(t, l.AWS.CloudWatchMetrics, 1)
			d := l.AWS.CloudWatchMetrics[0]
			assert.Equal(t, "Agentry", d.Namespace)
			assert.Equal(t, [][]string{tc.dims}, d.Dimensions)
			var got []unitMetric
			for _, m := range d.Metrics {
				got = append(got, unitMetric{m.Name, m.Unit})
			}
			assert.Equal(t, tc.metrics, got)

			// CloudWatch takes dimension and metric values from the top
			// level: every one named in _aws must be there.
			assert.Equal(t, "agentry-test", l.top["Deployment"])
			for _, dim := range tc.dims {
				assert.IsType(t, "", l.top[dim], "dimension %s is a string", dim)
			}
			for _, m := range tc.metrics {
				assert.IsType(t, 0.0, l.top[m.name], "metric %s is a number", m.name)
			}
			for k, v := range tc.values {
				assert.Equal(t, v, l.top[k], k)
			}
			for _, k := range tc.absent {
				assert.NotContains(t, l.top, k)
			}
		})
	}
}

func TestNewEMFRefusesWhatCloudWatchWouldDrop(t *testing.T) {
	for _, tc := range []struct {
		name       string
		w          io.Writer
		deployment string
	}{
		{"no writer", nil, "agentry-dev"},
		{"no deployment", io.Discard, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := observe.NewEMF(tc.w, tc.deployment)
			assert.Error(t, err)
		})
	}
}

// TestEMFConcurrent: lines written from many goroutines never interleave
// (run with -race).
func TestEMFConcurrent(t *testing.T) {
	var out bytes.Buffer
	e, err := observe.NewEMF(&out, "agentry-test")
	require.NoError(t, err)
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("m-", i)
			e.MessageAccepted(context.Background(), id, 1)
			e.MessageDelivered(context.Background(), id, "bob@example.org", "webhook", time.Millisecond)
			e.ColdStart("api")
		}()
	}
	wg.Wait()
	lines := parseLines(t, out.String())
	assert.Len(t, lines, 2*n+1, "two lines per goroutine and one cold start")
}
