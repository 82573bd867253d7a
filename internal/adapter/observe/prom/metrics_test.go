package prom_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe/prom"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Metrics is what localgw hands to the core as both of its Metrics
// ports, and the local store is what it reads the queue of.
var (
	_ gateway.Metrics   = (*prom.Metrics)(nil)
	_ delivery.Metrics  = (*prom.Metrics)(nil)
	_ prom.QueueStatter = (*pebblestore.DB)(nil)
)

// scrape reads p's handler as a Prometheus server would and parses the
// answer with the Prometheus project's own text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequest("GET", srv.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sample finds the series of family name with exactly labels; ok is false
// when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (*dto.Metric, bool) {
	f, ok := fams[name]
	if !ok {
		return nil, false
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) == len(labels) {
			match := true
			for k, v := range labels {
				match = match && got[k] == v
			}
			if match {
				return m, true
			}
		}
	}
	return nil, false
}

// value is the value of a counter or gauge series, or a histogram's count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := sample(fams, name, labels)
	require.True(t, ok, "no series %s%v", name, labels)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("series %s%v has no value", name, labels)
	return 0
}

func TestPrometheusCountsEachEvent(t *testing.T) {
	ctx := context.Background()
	type want struct {
		name   string
		labels map[string]string
		value  float64
	}
	cases := []struct {
		name  string
		emit  func(p *prom.Metrics)
		wants []want
	}{
		{
			name:  "accepted",
			emit:  func(p *prom.Metrics) { p.MessageAccepted(ctx, "m-1", 3); p.MessageAccepted(ctx, "m-2", 1) },
			wants: []want{{"agentry_messages_accepted_total", nil, 2}},
		},
		{
			name: "refused by code",
			emit: func(p *prom.Metrics) {
				p.MessageRefused(ctx, amtp.CodeInvalidMessageFormat)
				p.MessageRefused(ctx, amtp.CodeInvalidMessageFormat)
				p.MessageRefused(ctx, amtp.CodeAuthenticationFailed)
			},
			wants: []want{
				{"agentry_messages_refused_total", map[string]string{"code": "INVALID_MESSAGE_FORMAT"}, 2},
				{"agentry_messages_refused_total", map[string]string{"code": "AUTHENTICATION_FAILED"}, 1},
			},
		},
		{
			name: "delivered with latency, by route",
			emit: func(p *prom.Metrics) {
				p.MessageDelivered(ctx, "m-3", "bob@example.org", "webhook", 1500*time.Millisecond)
				p.MessageDelivered(ctx, "m-4", "bob@example.org", "inbox", 0)
				p.MessageDelivered(ctx, "m-5", "bob@example.org", "amtp", -1)
			},
			wants: []want{
				{"agentry_messages_delivered_total", map[string]string{"via": "webhook"}, 1},
				{"agentry_messages_delivered_total", map[string]string{"via": "inbox"}, 1},
				{"agentry_messages_delivered_total", map[string]string{"via": "amtp"}, 1},
				{"agentry_messages_delivered_total", map[string]string{"via": "smtp"}, 0},
				{"agentry_delivery_latency_seconds", map[string]string{"via": "webhook"}, 1},
				{"agentry_delivery_latency_seconds", map[string]string{"via": "inbox"}, 1},
				// An unknown latency is not observed.
				{"agentry_delivery_latency_seconds", map[string]string{"via": "amtp"}, 0},
			},
		},
		{
			name:  "retried",
			emit:  func(p *prom.Metrics) { p.DeliveryRetried(ctx, "m-6", 1, "RECIPIENT_UNAVAILABLE") },
			wants: []want{{"agentry_delivery_retries_total", map[string]string{"code": "RECIPIENT_UNAVAILABLE"}, 1}},
		},
		{
			name:  "failed",
			emit:  func(p *prom.Metrics) { p.DeliveryFailed(ctx, "m-7", "bob@example.org", "RECIPIENT_NOT_FOUND") },
			wants: []want{{"agentry_delivery_failures_total", map[string]string{"code": "RECIPIENT_NOT_FOUND"}, 1}},
		},
		{
			name: "workflows by end",
			emit: func(p *prom.Metrics) {
				p.WorkflowFinished(ctx, "completed")
				p.WorkflowFinished(ctx, "timed_out")
			},
			wants: []want{
				{"agentry_workflows_finished_total", map[string]string{"status": "completed"}, 1},
				{"agentry_workflows_finished_total", map[string]string{"status": "timed_out"}, 1},
				{"agentry_workflows_finished_total", map[string]string{"status": "failed"}, 0},
			},
		},
		{
			name: "signature checks by result and outcome",
			emit: func(p *prom.Metrics) {
				p.SignatureAccepted(ctx, "verified")
				p.SignatureRefused(ctx, "invalid")
			},
			wants: []want{
				{"agentry_signature_verifications_total", map[string]string{"result": "verified", "outcome": "accepted"}, 1},
				{"agentry_signature_verifications_total", map[string]string{"result": "invalid", "outcome": "refused"}, 1},
				{"agentry_signature_verifications_total", map[string]string{"result": "unsigned", "outcome": "accepted"}, 0},
			},
		},
		{
			name: "label values outside their set are bounded",
			emit: func(p *prom.Metrics) {
				p.MessageDelivered(ctx, "m-8", "bob@example.org", "carrier-pigeon", 0)
				p.DeliveryFailed(ctx, "m-9", "bob@example.org", "")
				p.DeliveryRetried(ctx, "m-9", 1, "some free text from a peer")
				p.MessageRefused(ctx, amtp.Code("NOT_A_CODE"))
				p.WorkflowFinished(ctx, "exploded")
				p.SignatureAccepted(ctx, "whatever")
			},
			wants: []want{
				{"agentry_messages_delivered_total", map[string]string{"via": "other"}, 1},
				{"agentry_delivery_failures_total", map[string]string{"code": "UNKNOWN"}, 1},
				{"agentry_delivery_retries_total", map[string]string{"code": "UNKNOWN"}, 1},
				{"agentry_messages_refused_total", map[string]string{"code": "UNKNOWN"}, 1},
				{"agentry_workflows_finished_total", map[string]string{"status": "other"}, 1},
				{"agentry_signature_verifications_total", map[string]string{"result": "other", "outcome": "accepted"}, 1},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := prom.New(prom.Options{})
			tc.emit(p)
			fams := scrape(t, p.Handler())
			for _, w := range tc.wants {
				assert.Equal(t, w.value, value(t, fams, w.name, w.labels), "%s%v", w.name, w.labels)
			}
		})
	}
}

// TestPrometheusLatencyBuckets: the histogram is in seconds, so that a
// 1.5 s delivery falls in the 2.5 s bucket and not in the 1 s one.
func TestPrometheusLatencyBuckets(t *testing.T) {
	p := prom.New(prom.Options{})
	p.MessageDelivered(context.Background(), "m", "bob@example.org", "webhook", 1500*time.Millisecond)
	m, ok := sample(scrape(t, p.Handler()), "agentry_delivery_latency_seconds", map[string]string{"via": "webhook"})
	require.True(t, ok)
	assert.InDelta(t, 1.5, m.Histogram.GetSampleSum(), 1e-9)
	for _, b := range m.Histogram.GetBucket() {
		switch b.GetUpperBound() {
		case 1:
			assert.Zero(t, b.GetCumulativeCount(), "le=1")
		case 2.5:
			assert.Equal(t, uint64(1), b.GetCumulativeCount(), "le=2.5")
		}
	}
}

// TestPrometheusInstrumentsTheAPI: every answer of the wrapped handler is
// counted by status and timed.
func TestPrometheusInstrumentsTheAPI(t *testing.T) {
	p := prom.New(prom.Options{})
	api := p.InstrumentAPI(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	for _, path := range []string{"/v1/messages", "/v1/messages", "/missing"} {
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
	}
	fams := scrape(t, p.Handler())
	assert.Equal(t, 2.0, value(t, fams, "agentry_http_requests_total", map[string]string{"code": "202"}))
	assert.Equal(t, 1.0, value(t, fams, "agentry_http_requests_total", map[string]string{"code": "404"}))
	assert.Equal(t, 3.0, value(t, fams, "agentry_http_request_duration_seconds", nil))
}

// TestPrometheusRuntimeAndProcess: the Go runtime's and the process's
// own collectors are registered.
func TestPrometheusRuntimeAndProcess(t *testing.T) {
	fams := scrape(t, prom.New(prom.Options{}).Handler())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds"} {
		assert.Contains(t, fams, name)
	}
}

// TestPrometheusRegistriesAreSeparate: two gateways in one process count
// apart (the registry is not the global default).
func TestPrometheusRegistriesAreSeparate(t *testing.T) {
	a := prom.New(prom.Options{})
	b := prom.New(prom.Options{})
	a.MessageAccepted(context.Background(), "m", 1)
	assert.Equal(t, 1.0, value(t, scrape(t, a.Handler()), "agentry_messages_accepted_total", nil))
	assert.Equal(t, 0.0, value(t, scrape(t, b.Handler()), "agentry_messages_accepted_total", nil))
}

// TestPrometheusReadiness: each check is run at the scrape and reported
// by name; a failing one reads 0 and its error goes nowhere.
func TestPrometheusReadiness(t *testing.T) {
	p := prom.New(prom.Options{Checks: map[string]func(context.Context) error{
		"store": func(context.Context) error { return nil },
		"queue": func(context.Context) error { return errors.New("read /data/agentry.db: input/output error") },
	}})
	fams := scrape(t, p.Handler())
	assert.Equal(t, 1.0, value(t, fams, "agentry_ready", map[string]string{"check": "store"}))
	assert.Equal(t, 0.0, value(t, fams, "agentry_ready", map[string]string{"check": "queue"}))
}

// queueStore is the local store as the queue gauges read it.
type queueStore interface {
	prom.QueueStatter
	CheckQueue(ctx context.Context) error
	Enqueue(ctx context.Context, tasks ...gateway.Task) error
	Receive(ctx context.Context, max int, wait time.Duration) ([]gateway.Task, error)
	Ack(ctx context.Context, t gateway.Task) error
	DeadLetter(ctx context.Context, t gateway.Task, d gateway.DeadLetter) error
	Close() error
}

func localStores(t testing.TB, now func() time.Time) map[string]queueStore {
	t.Helper()
	peb, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: now})
	require.NoError(t, err)
	// Closing twice is harmless: TestQueueGauges closes it itself.
	t.Cleanup(func() { _ = peb.Close() })
	return map[string]queueStore{"pebble": peb}
}

// TestQueueGauges: on the local store the gauges follow the queue:
// every stored task counts (leased ones too), the age is that of the
// most overdue task, dead letters are counted, and a store that cannot be
// read leaves the gauges out of the scrape instead of reporting zeros.
func TestQueueGauges(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return base }
	for engine, st := range localStores(t, now) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			p := prom.New(prom.Options{Queue: st, Now: now})
			gauges := func() (depth, age, dead float64) {
				fams := scrape(t, p.Handler())
				return value(t, fams, "agentry_queue_depth", nil), value(t, fams, "agentry_queue_oldest_task_age_seconds", nil),
					value(t, fams, "agentry_dead_letters", nil)
			}
			depth, age, dead := gauges()
			assert.Equal(t, []float64{0, 0, 0}, []float64{depth, age, dead}, "empty queue")
			require.NoError(t, st.CheckQueue(ctx), "an empty queue reads")

			task := func(id string, due time.Time) gateway.Task {
				return gateway.Task{ID: id, MessageID: id, Kind: gateway.TaskLocal, Recipients: []string{"bob@example.org"}, CreatedAt: base, NotBefore: due}
			}
			require.NoError(t, st.Enqueue(ctx,
				task("overdue", base.Add(-90*time.Second)), task("due-now", base), task("later", base.Add(time.Hour))))
			depth, age, dead = gauges()
			assert.Equal(t, []float64{3, 90, 0}, []float64{depth, age, dead}, "three stored, one 90 s overdue")
			require.NoError(t, st.CheckQueue(ctx))

			got, err := st.Receive(ctx, 1, 0)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, "overdue", got[0].ID)
			depth, _, _ = gauges()
			assert.Equal(t, 3.0, depth, "a leased task is still stored")

			require.NoError(t, st.DeadLetter(ctx, got[0], gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE"}))
			depth, age, dead = gauges()
			assert.Equal(t, []float64{2, 0, 1}, []float64{depth, age, dead}, "the overdue task went to the dead letters")

			require.NoError(t, st.Ack(ctx, task("due-now", base)))
			require.NoError(t, st.Ack(ctx, task("later", base.Add(time.Hour))))
			depth, age, dead = gauges()
			assert.Equal(t, []float64{0, 0, 1}, []float64{depth, age, dead}, "settled")

			require.NoError(t, st.Close())
			assert.Error(t, st.CheckQueue(ctx), "a closed store's queue does not read")
			fams := scrape(t, p.Handler())
			for _, name := range []string{"agentry_queue_depth", "agentry_queue_oldest_task_age_seconds", "agentry_dead_letters"} {
				assert.NotContains(t, fams, name, "a closed store reports nothing")
			}
		})
	}
}

// allEvents drives every event once, with a store and checks, so that
// every agentry_* family has a series.
func allEvents(t *testing.T) *prom.Metrics {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := prom.New(prom.Options{Queue: st,
		Checks: map[string]func(context.Context) error{"store": st.Ping}})
	ctx := context.Background()
	p.MessageAccepted(ctx, "m", 1)
	p.MessageRefused(ctx, amtp.CodeForbidden)
	p.MessageDelivered(ctx, "m", "bob@example.org", "webhook", time.Second)
	p.DeliveryRetried(ctx, "m", 1, "TEMPORARY_FAILURE")
	p.DeliveryFailed(ctx, "m", "bob@example.org", "RECIPIENT_NOT_FOUND")
	p.WorkflowFinished(ctx, "completed")
	p.SignatureAccepted(ctx, "verified")
	api := httptest.NewRecorder()
	p.InstrumentAPI(http.NotFoundHandler()).ServeHTTP(api, httptest.NewRequest("GET", "/", nil))
	return p
}

// promRow is one row of the Prometheus table of docs/metrics.md.
type promRow struct {
	kind   string
	labels []string
}

// repoRoot is four levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "repository root not found from %s", root)
	return root
}

// docPromMetrics reads the table under "## Prometheus (local gateway)":
// | `name` | type | `label`, `label` or — | meaning |.
func docPromMetrics(t *testing.T) map[string]promRow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "metrics.md"))
	require.NoError(t, err)
	doc := string(data)
	rows := map[string]promRow{}
	in := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Prometheus (local gateway)"
			continue
		}
		cells := strings.Split(line, "|")
		if !in || len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`agentry_") {
			continue
		}
		var labels []string
		for _, l := range strings.Split(cells[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "—" {
				labels = append(labels, l)
			}
		}
		sort.Strings(labels)
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = promRow{kind: strings.TrimSpace(cells[2]), labels: labels}
	}
	require.NotEmpty(t, rows, "no Prometheus table found in docs/metrics.md")
	return rows
}

// registered is every agentry_* family the registry exposes, with its
// type and label names.
func registered(t *testing.T, fams map[string]*dto.MetricFamily) map[string]promRow {
	t.Helper()
	out := map[string]promRow{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "agentry_") {
			continue
		}
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		sort.Strings(labels)
		out[name] = promRow{kind: strings.ToLower(f.GetType().String()), labels: labels}
	}
	return out
}

// TestPrometheusNamesMatchTheDocs: what the registry exposes is exactly
// the table of docs/metrics.md: names, types and labels.
func TestPrometheusNamesMatchTheDocs(t *testing.T) {
	assert.Equal(t, docPromMetrics(t), registered(t, scrape(t, allEvents(t).Handler())))
}
