package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// Prometheus metrics exist on the local runtime only (on AWS the same
// events go to CloudWatch as EMF), so these tests run the embedded
// gateway alone.

// metricsEnv turns the Prometheus listener on, on any free port.
var metricsEnv = map[string]string{"AGENTRY_METRICS_ADDR": "127.0.0.1:0"}

// scrapeMetrics reads x's /metrics as a Prometheus server would and parses
// it with the Prometheus project's own parser.
func (x *gw) scrapeMetrics() map[string]*dto.MetricFamily {
	x.t.Helper()
	require.NotNil(x.t, x.local, "metrics are the local runtime's")
	addr := x.local.MetricsAddr()
	require.NotEmpty(x.t, addr, "no metrics listener: is AGENTRY_METRICS_ADDR set?")
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(x.t, err)
	defer resp.Body.Close()
	require.Equal(x.t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(x.t, err)
	return fams
}

// series is the value of one series (a histogram's count), and whether
// it is there.
func series(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		match := true
		for i, l := range m.GetLabel() {
			// The text format sorts labels by name; callers give them so.
			match = match && l.GetName() == labels[2*i] && l.GetValue() == labels[2*i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// total sums every series of a counter family.
func total(fams map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// TestPrometheusCountsAKnownSequence: after a known sequence of sends —
// one delivered by webhook, one delivered after one retry, one failed for
// good (its failure report delivered to the sender's inbox), three
// refusals under two codes — the scraped counters are exactly that, the
// queue is empty again and the store is ready.
func TestPrometheusCountsAKnownSequence(t *testing.T) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{env: metricsEnv})
	alice, _ := a.register("alice", "pull", "")
	hook, flaky, gone := newPushAgent(t), newPushAgent(t, http.StatusServiceUnavailable), newPushAgent(t, http.StatusGone)
	for name, agent := range map[string]*pushAgent{"carol": hook, "dave": flaky, "erin": gone} {
		_, agent.secret = a.register(name, "push", agent.srv.URL)
	}

	fresh := a.scrapeMetrics()
	accepted, _ := series(fresh, "agentry_messages_accepted_total")
	require.Zero(t, accepted, "nothing sent yet")

	for _, tc := range []struct{ to, want string }{
		{"carol@a.test", "delivered"}, {"dave@a.test", "delivered"}, {"erin@a.test", "failed"},
	} {
		status, out := a.send(alice, msg("alice@a.test", []string{tc.to}, map[string]any{"n": 1}))
		require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, status, "%v", out)
		a.waitStatus(alice, str(out["message_id"]), tc.to, tc.want, settleWithin)
	}
	a.waitInbox(alice, "alice@a.test", 1, settleWithin) // erin's failure report
	for _, tc := range []struct {
		key, body string
		status    int
	}{
		{alice, `{"version":`, http.StatusBadRequest},
		{alice, `[]`, http.StatusBadRequest},
		{"amtp_not_a_key_0123456789", `{}`, http.StatusUnauthorized},
	} {
		status, _ := callRaw(t, "POST", a.url+"/v1/messages", tc.key, tc.body)
		require.Equal(t, tc.status, status, tc.body)
	}

	// Every task is settled once the statuses are final, but the scrape
	// reads the store: wait for it to show the queue empty rather than
	// assume when the last one was acknowledged.
	var fams map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		fams = a.scrapeMetrics()
		depth, ok := series(fams, "agentry_queue_depth")
		return ok && depth == 0
	}, settleWithin, 50*time.Millisecond, "the delivery queue never emptied")

	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		// Three sends and erin's failure report, which is mail too.
		{"agentry_messages_accepted_total", nil, 4},
		{"agentry_messages_refused_total", []string{"code", "INVALID_MESSAGE_FORMAT"}, 2},
		{"agentry_messages_refused_total", []string{"code", "AUTHENTICATION_REQUIRED"}, 1},
		{"agentry_messages_delivered_total", []string{"via", "webhook"}, 2},
		{"agentry_messages_delivered_total", []string{"via", "inbox"}, 1},
		{"agentry_messages_delivered_total", []string{"via", "amtp"}, 0},
		{"agentry_delivery_latency_seconds", []string{"via", "webhook"}, 2},
		{"agentry_delivery_latency_seconds", []string{"via", "inbox"}, 1},
		{"agentry_http_requests_total", []string{"code", "400"}, 2},
		{"agentry_http_requests_total", []string{"code", "401"}, 1},
		{"agentry_queue_oldest_task_age_seconds", nil, 0},
		{"agentry_dead_letters", nil, 1},
		{"agentry_ready", []string{"check", "queue"}, 1},
		{"agentry_ready", []string{"check", "store"}, 1},
	} {
		got, ok := series(fams, w.name, w.labels...)
		if assert.True(t, ok, "no series %s%v", w.name, w.labels) {
			assert.Equal(t, w.want, got, "%s%v", w.name, w.labels)
		}
	}
	assert.Equal(t, 1.0, total(fams, "agentry_delivery_retries_total"), "dave's one retry")
	assert.Equal(t, 1.0, total(fams, "agentry_delivery_failures_total"), "erin")
	failed, _ := series(fams, "agentry_delivery_failures_total", "code", "RECIPIENT_NOT_FOUND")
	assert.Equal(t, 1.0, failed, "a 410 means the recipient is gone")
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		assert.Contains(t, fams, name)
	}
}

// TestPrometheusCountsSignaturesAndWorkflows: mail from another domain is
// counted by its signature check, and a workflow by how it ended.
func TestPrometheusCountsSignaturesAndWorkflows(t *testing.T) {
	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{env: metricsEnv})
	b := startGateway(t, dns, "b.test", gwOpts{})
	boss, reviewer := a.party("boss"), a.party("reviewer")
	bob, _ := b.register("bob", "pull", "")

	status, out := b.send(bob, msg("bob@b.test", []string{boss.addr}, map[string]any{"hello": "a"}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	b.waitStatus(bob, str(out["message_id"]), boss.addr, "delivered", settleWithin)

	id := boss.start(t, []string{reviewer.addr}, map[string]any{"type": "parallel", "timeout": unhurried}, map[string]any{"doc": 1})
	reviewer.waitAsked(t, id)
	reviewer.mustReply(t, id, boss.addr, map[string]any{"approve": true})
	boss.waitResult(t, id, settleWithin)

	fams := a.scrapeMetrics()
	for _, w := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"outcome", "accepted", "result", "verified"}, 1},
		{[]string{"outcome", "accepted", "result", "unsigned"}, 0},
		{[]string{"outcome", "refused", "result", "invalid"}, 0},
	} {
		got, ok := series(fams, "agentry_signature_verifications_total", w.labels...)
		require.True(t, ok, "%v", w.labels)
		assert.Equal(t, w.want, got, "%v", w.labels)
	}
	assert.Equal(t, 1.0, total(fams, "agentry_signature_verifications_total"), "one message from another domain")
	for status, want := range map[string]float64{"completed": 1, "failed": 0, "timed_out": 0} {
		got, ok := series(fams, "agentry_workflows_finished_total", "status", status)
		require.True(t, ok, status)
		assert.Equal(t, want, got, status)
	}
}

// TestReadyzNamesWhatFailed: a gateway whose store fails answers /readyz
// 503 naming the checks that failed, and nothing of why. Locally the
// store is closed, which the queue check notices too; on AWS the table's
// reads fail (the queue is SQS, which /readyz does not check yet).
func TestReadyzNamesWhatFailed(t *testing.T) {
	bothRuntimes(t, testReadyzNamesWhatFailed)
}

func testReadyzNamesWhatFailed(t *testing.T, onAWS bool) {
	var broken atomic.Bool
	o := gwOpts{aws: onAWS}
	if onAWS {
		o.awsConfig = func(c *aws.Config) {
			*c = awstest.WithFaults(*c, awstest.Faults{Fail: awstest.FailCalls(1, func(in *dynamodb.GetItemInput) bool {
				return broken.Load() && aws.ToString(in.TableName) != ""
			}, errors.New("operation error DynamoDB: GetItem, https://dynamodb.internal: connection refused"))})
		}
	}
	a := startGateway(t, dnstest.Start(t), "a.test", o)
	status, out := call(t, "GET", a.url+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, status, "%v", out)

	want := []any{"store"}
	if onAWS {
		broken.Store(true)
	} else {
		require.NoError(t, a.local.DB.Close())
		want = append(want, "queue")
	}
	status, raw := callRaw(t, "GET", a.url+"/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", raw)
	var body struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), "%s", raw)
	assert.Equal(t, "TEMPORARY_FAILURE", body.Error.Code)
	assert.Equal(t, want, body.Error.Details["failed"])
	for _, internal := range []string{"closed", "dynamodb", "connection refused"} {
		assert.NotContains(t, strings.ToLower(string(raw)), internal, "the cause is logged, not shown")
	}
}
