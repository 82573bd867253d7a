package prom

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueStatter is what the Prometheus collector reads of a local store's
// delivery queue at each scrape (the Pebble store, in its
// queuestats.go). Both counts may stop at a bound the store documents, so
// that a scrape of a huge queue stays cheap.
type QueueStatter interface {
	// QueueStats counts the stored tasks (due, leased or scheduled for a
	// retry) and returns the earliest due time among them, zero when
	// there is none.
	QueueStats(ctx context.Context) (depth int, oldestDue time.Time, err error)
	// DeadLetterCount counts the dead-letter records kept for operators.
	DeadLetterCount(ctx context.Context) (int, error)
}

// checkTimeout bounds each store read of a scrape: a hung store must not
// hold the scrape (and the scraper's connection) for long.
const checkTimeout = 2 * time.Second

// storeCollector reads the store at scrape time: readiness, queue depth,
// the age of the most overdue task, dead letters. Reading at scrape time
// keeps the store free of bookkeeping for metrics nobody may be reading.
type storeCollector struct {
	checks      map[string]func(context.Context) error
	names       []string // of checks, sorted: a stable order of series
	queue       QueueStatter
	now         func() time.Time
	ready       *prometheus.Desc
	depth, age  *prometheus.Desc
	deadLetters *prometheus.Desc
}

func newStoreCollector(o Options) *storeCollector {
	c := &storeCollector{
		checks: o.Checks, queue: o.Queue, now: o.Now,
		ready: prometheus.NewDesc(MetricReady,
			"1 when the named check of /readyz passes (store: the store answers; queue: the delivery queue can be read), else 0.",
			[]string{"check"}, nil),
		depth: prometheus.NewDesc(MetricQueueDepth,
			"Delivery tasks stored: due, leased or scheduled for a retry (counted up to the store's bound).", nil, nil),
		age: prometheus.NewDesc(MetricQueueAge,
			"How long the most overdue delivery task has been due; 0 when none is.", nil, nil),
		deadLetters: prometheus.NewDesc(MetricDeadLetters,
			"Dead-letter records kept for operators (counted up to the store's bound).", nil, nil),
	}
	if c.now == nil {
		c.now = time.Now
	}
	for name := range o.Checks {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	return c
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	if c.queue != nil {
		ch <- c.depth
		ch <- c.age
		ch <- c.deadLetters
	}
}

// Collect runs the checks at once, each within checkTimeout, then reads
// the queue. A read that fails leaves its gauge out of this scrape rather
// than reporting a made-up value; agentry_ready says what failed.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	up := make([]float64, len(c.names))
	var wg sync.WaitGroup
	for i, name := range c.names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
			defer cancel()
			if c.checks[name](ctx) == nil {
				up[i] = 1
			}
		}()
	}
	wg.Wait()
	for i, name := range c.names {
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, up[i], name)
	}
	if c.queue != nil {
		c.collectQueue(ch)
	}
}

func (c *storeCollector) collectQueue(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if depth, oldest, err := c.queue.QueueStats(ctx); err == nil {
		age := 0.0
		if !oldest.IsZero() {
			age = max(c.now().Sub(oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(depth))
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
	}
	if n, err := c.queue.DeadLetterCount(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.deadLetters, prometheus.GaugeValue, float64(n))
	}
}
