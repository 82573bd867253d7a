// Package prom is the local gateway's Prometheus metrics: the events the
// Lambdas publish as EMF (package observe), counted for a Prometheus
// server to scrape, with what the store says at each scrape. It is a
// package of its own so that the Lambdas, which link observe, do not link
// the Prometheus client.
package prom

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentry/agentry/internal/core/amtp"
)

// The Prometheus names of docs/metrics.md ("Prometheus (local gateway)"),
// the contract with docs/grafana-local.json. A test compares what is
// registered with that table, and the dashboard's queries with what is
// registered.
const (
	MetricAccepted    = "agentry_messages_accepted_total"
	MetricRefused     = "agentry_messages_refused_total"
	MetricDelivered   = "agentry_messages_delivered_total"
	MetricLatency     = "agentry_delivery_latency_seconds"
	MetricRetries     = "agentry_delivery_retries_total"
	MetricFailures    = "agentry_delivery_failures_total"
	MetricWorkflows   = "agentry_workflows_finished_total"
	MetricSignatures  = "agentry_signature_verifications_total"
	MetricHTTP        = "agentry_http_requests_total"
	MetricHTTPLatency = "agentry_http_request_duration_seconds"
	MetricQueueDepth  = "agentry_queue_depth"
	MetricQueueAge    = "agentry_queue_oldest_task_age_seconds"
	MetricDeadLetters = "agentry_dead_letters"
	MetricReady       = "agentry_ready"
)

// The values a label may take. Anything else is counted under
// labelOther (labelUnknownCode for codes), so that no caller can grow
// the number of series: each is a fixed set.
var (
	deliveryRoutes     = []string{"inbox", "webhook", "amtp", "smtp"}
	workflowEnds       = []string{"completed", "failed", "timed_out"}
	signatureResults   = []string{"verified", "unsigned", "invalid", "key_unavailable"}
	signatureOutcomes  = []string{outcomeAccepted, outcomeRefused}
	latencyBuckets     = []float64{.001, .005, .025, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600}
	httpLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

const (
	labelOther       = "other"
	labelUnknownCode = "UNKNOWN"

	// The outcomes of an inbound signature check: the message was let
	// through (verified, or not verified under the accept or flag
	// policy) or refused (the reject policy).
	outcomeAccepted = "accepted"
	outcomeRefused  = "refused"

	// scrapeInFlight bounds concurrent scrapes: each one reads the store
	// (StoreStats), which should not run many times at once.
	scrapeInFlight = 2
	// scrapeTimeout bounds one scrape, the store reads included.
	scrapeTimeout = 10 * time.Second
)

// Metrics counts the gateway's events for a Prometheus server to
// scrape (GET /metrics, Handler): the same events EMF publishes on AWS,
// under the agentry_* names above, with the Go runtime's and the
// process's metrics. It implements the Metrics ports of
// internal/usecase/gateway and internal/usecase/delivery structurally, as
// EMF does, and is safe for concurrent use. Its registry is its own, not
// the process-wide default one, so that two gateways in one process (the
// tests) never share a series.
type Metrics struct {
	reg *prometheus.Registry

	accepted   prometheus.Counter
	refused    *prometheus.CounterVec
	delivered  *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	failures   *prometheus.CounterVec
	workflows  *prometheus.CounterVec
	signatures *prometheus.CounterVec
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec // no labels; promhttp takes only vectors
}

// Options says what Prometheus reads at each scrape besides the
// events it is told.
type Options struct {
	// Checks are the readiness checks by name ("store", "queue": those of
	// /readyz), each run at every scrape: agentry_ready{check}.
	Checks map[string]func(context.Context) error
	// Queue is the delivery queue whose depth, oldest task and dead
	// letters are read at every scrape; nil leaves those gauges out.
	Queue QueueStatter
	// Now is the clock the age of the oldest task is measured with: the
	// store's (tests replace both). Default time.Now.
	Now func() time.Time
}

// New registers every metric on a registry of its own.
func New(o Options) *Metrics {
	p := &Metrics{
		reg: prometheus.NewRegistry(),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricAccepted,
			Help: "Messages newly accepted (202, or 200 on the Immediate Path), replays of an idempotent submission excluded."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRefused,
			Help: "Message submissions (POST /v1/messages) answered with an AMTP error, by its code."}, []string{"code"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricDelivered,
			Help: "Recipients delivered, by route (inbox, webhook, amtp: another gateway, smtp: the email bridge)."}, []string{"via"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricLatency,
			Help: "Delivery time minus the message's accept time, per recipient delivered, by route.", Buckets: latencyBuckets}, []string{"via"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRetries,
			Help: "Retries scheduled after a transient delivery failure, by the failure's code."}, []string{"code"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricFailures,
			Help: "Recipients that failed for good (permanent error, retry window over, poison task), by code."}, []string{"code"}),
		workflows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricWorkflows,
			Help: "Coordinated workflows that ended, by how (completed, failed, timed_out)."}, []string{"status"}),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricSignatures,
			Help: "Signature checks of mail from other domains, by result and by whether the message was accepted or refused."}, []string{"result", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricHTTP,
			Help: "API requests answered, by HTTP status code."}, []string{"code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricHTTPLatency,
			Help: "Time to answer an API request, body written.", Buckets: httpLatencyBuckets}, nil),
	}
	p.reg.MustRegister(p.accepted, p.refused, p.delivered, p.latency, p.retries, p.failures,
		p.workflows, p.signatures, p.requests, p.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStoreCollector(o))
	p.zeroes()
	return p
}

// zeroes creates the series of every fixed label value at 0, so that a
// rate over a series that has not moved yet reads 0 rather than nothing.
func (p *Metrics) zeroes() {
	for _, v := range deliveryRoutes {
		p.delivered.WithLabelValues(v)
		p.latency.WithLabelValues(v)
	}
	for _, s := range workflowEnds {
		p.workflows.WithLabelValues(s)
	}
	for _, r := range signatureResults {
		for _, o := range signatureOutcomes {
			p.signatures.WithLabelValues(r, o)
		}
	}
}

// Handler serves the registry in the Prometheus text format (and
// OpenMetrics or protobuf to a scraper that asks for them).
func (p *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{
		Registry: p.reg, MaxRequestsInFlight: scrapeInFlight, Timeout: scrapeTimeout,
	})
}

// InstrumentAPI counts h's answers by status and times them.
func (p *Metrics) InstrumentAPI(h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerDuration(p.duration, promhttp.InstrumentHandlerCounter(p.requests, h))
}

// MessageAccepted counts one accepted message.
func (p *Metrics) MessageAccepted(context.Context, string, int) { p.accepted.Inc() }

// MessageRefused counts one message submission answered with code.
func (p *Metrics) MessageRefused(_ context.Context, code amtp.Code) {
	p.refused.WithLabelValues(codeLabel(string(code))).Inc()
}

// MessageDelivered counts one delivered recipient and observes its
// latency from acceptance; a negative latency is unknown and left out.
func (p *Metrics) MessageDelivered(_ context.Context, _, _, via string, latency time.Duration) {
	via = oneOf(via, deliveryRoutes)
	p.delivered.WithLabelValues(via).Inc()
	if latency >= 0 {
		p.latency.WithLabelValues(via).Observe(latency.Seconds())
	}
}

// DeliveryRetried counts one scheduled retry.
func (p *Metrics) DeliveryRetried(_ context.Context, _ string, _ int, code string) {
	p.retries.WithLabelValues(codeLabel(code)).Inc()
}

// DeliveryFailed counts one recipient failed for good.
func (p *Metrics) DeliveryFailed(_ context.Context, _, _, code string) {
	p.failures.WithLabelValues(codeLabel(code)).Inc()
}

// WorkflowFinished counts one workflow that ended with status.
func (p *Metrics) WorkflowFinished(_ context.Context, status string) {
	p.workflows.WithLabelValues(oneOf(status, workflowEnds)).Inc()
}

// SignatureAccepted counts one signature check of inbound mail whose
// message was let through, by its result (verified, unsigned, invalid,
// key_unavailable).
func (p *Metrics) SignatureAccepted(_ context.Context, result string) {
	p.signatures.WithLabelValues(oneOf(result, signatureResults), outcomeAccepted).Inc()
}

// SignatureRefused counts one signature check whose message was refused.
func (p *Metrics) SignatureRefused(_ context.Context, result string) {
	p.signatures.WithLabelValues(oneOf(result, signatureResults), outcomeRefused).Inc()
}

func oneOf(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return labelOther
}

// codeLabel is an AMTP code as a label value: one of the draft's codes,
// never free text.
func codeLabel(code string) string {
	if amtp.Code(code).Known() {
		return code
	}
	return labelUnknownCode
}
