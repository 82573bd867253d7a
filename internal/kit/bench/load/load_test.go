package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHistogramQuantilesWithinBucketError(t *testing.T) {
	var h Histogram
	// 1 µs … 10 ms in 1 µs steps: the q-quantile is q·10 ms.
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != 10000 {
		t.Fatalf("count %d", h.Count())
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := time.Duration(q * float64(10*time.Millisecond))
		got := h.Quantile(q)
		if rel := float64(got-want) / float64(want); rel > 0.02 || rel < -0.02 {
			t.Errorf("q%.3f = %v, want %v ±2%%", q, got, want)
		}
	}
	if h.Max() != 10*time.Millisecond || h.Min() != time.Microsecond {
		t.Errorf("min %v max %v", h.Min(), h.Max())
	}
	if h.Quantile(1) != h.Max() || h.Quantile(0) != h.Min() {
		t.Errorf("extreme quantiles %v %v", h.Quantile(0), h.Quantile(1))
	}
	if mean := h.Mean(); mean < 5000*time.Microsecond || mean > 5001*time.Microsecond {
		t.Errorf("mean %v", mean)
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1} {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("%d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Errorf("bucket %d [%d, %d] wider than 1/%d", i, lo, hi, subCount)
		}
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	var a, b, empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Fatal("empty histogram must answer zero")
	}
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(-time.Second) // counted as zero
	a.Merge(&b)
	a.Merge(&empty)
	if a.Count() != 3 || a.Max() != 3*time.Millisecond || a.Min() != 0 {
		t.Errorf("merged: n=%d min=%v max=%v", a.Count(), a.Min(), a.Max())
	}
}

// seqServer answers each request after the delay its X-Seq asks for, and
// remembers every body and idempotency key it saw.
type seqServer struct {
	mu     sync.Mutex
	bodies map[string]int
	keys   map[string]int
	n      int
	delay  func(seq int) time.Duration
	status func(seq int) int
}

func (s *seqServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	seq, _ := strconv.Atoi(r.Header.Get("X-Seq"))
	s.mu.Lock()
	s.bodies[string(body)]++
	s.keys[r.Header.Get("Idempotency-Key")]++
	s.n++
	s.mu.Unlock()
	if s.delay != nil {
		time.Sleep(s.delay(seq))
	}
	code := http.StatusAccepted
	if s.status != nil {
		code = s.status(seq)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func newSeqServer(t *testing.T) (*seqServer, *httptest.Server) {
	s := &seqServer{bodies: map[string]int{}, keys: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func requests(url string) RequestFunc {
	return func(worker, seq int) (*http.Request, error) {
		body := fmt.Sprintf(`{"worker":%d,"seq":%d}`, worker, seq)
		req, err := http.NewRequest("POST", url, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Seq", strconv.Itoa(seq))
		req.Header.Set("Idempotency-Key", "key-"+strconv.Itoa(seq))
		return req, nil
	}
}

func TestRunCountsEveryRequestOnceWithUniqueBodies(t *testing.T) {
	s, srv := newSeqServer(t)
	client := NewClient(4)
	res, err := RunHTTP(context.Background(), Config{Concurrency: 4, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond}, client, requests(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests <= 0 || res.Errors != 0 {
		t.Fatalf("requests %d errors %d (%s)", res.Requests, res.Errors, res.FirstError)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The server also saw the warm-up.
	if int64(s.n) < res.Requests {
		t.Errorf("server saw %d requests, run counted %d", s.n, res.Requests)
	}
	if len(s.bodies) != s.n || len(s.keys) != s.n {
		t.Errorf("bodies and keys must be unique: %d requests, %d bodies, %d keys", s.n, len(s.bodies), len(s.keys))
	}
	if res.Elapsed < 250*time.Millisecond || res.Elapsed > 5*time.Second {
		t.Errorf("elapsed %v for a 300ms run", res.Elapsed)
	}
	if want := float64(res.Requests) / res.Elapsed.Seconds(); res.Throughput != want {
		t.Errorf("throughput %v, want %v", res.Throughput, want)
	}
	if !(res.P50 > 0 && res.P50 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
	}
}

func TestRunCountMode(t *testing.T) {
	s, srv := newSeqServer(t)
	res, err := RunHTTP(context.Background(), Config{Concurrency: 3, Count: 50}, NewClient(3), requests(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 50 || res.Hist.Count() != 50 {
		t.Errorf("requests %d, histogram %d, want 50", res.Requests, res.Hist.Count())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n != 50 {
		t.Errorf("server saw %d", s.n)
	}
}

func TestRunCountsErrors(t *testing.T) {
	s, srv := newSeqServer(t)
	s.status = func(seq int) int {
		if seq%2 == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	}
	res, err := RunHTTP(context.Background(), Config{Concurrency: 2, Count: 40}, NewClient(2), requests(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 40 || res.Errors != 20 {
		t.Errorf("requests %d errors %d, want 40 and 20", res.Requests, res.Errors)
	}
	if res.Hist.Count() != 20 {
		t.Errorf("only successes are in the histogram: %d", res.Hist.Count())
	}
	if !strings.Contains(res.FirstError, "HTTP 500") {
		t.Errorf("first error %q", res.FirstError)
	}
	if want := 20 / res.Elapsed.Seconds(); res.Throughput != want {
		t.Errorf("throughput counts successes only: %v, want %v", res.Throughput, want)
	}

	// Transport errors: nothing listens any more.
	url := srv.URL
	srv.Close()
	res, err = RunHTTP(context.Background(), Config{Concurrency: 2, Count: 10}, NewClient(2), requests(url))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 10 || res.Errors != 10 || res.Throughput != 0 || res.FirstError == "" {
		t.Errorf("closed server: %+v", res)
	}
}

func TestRunPercentilesFollowTheLatencyDistribution(t *testing.T) {
	s, srv := newSeqServer(t)
	// Nine requests in ten take 2 ms, one takes 400 ms. The slow ones are
	// that slow so that a busy machine, which adds its own delay to every
	// request, still cannot move the median anywhere near them.
	const fast, slow = 2 * time.Millisecond, 400 * time.Millisecond
	s.delay = func(seq int) time.Duration {
		if seq%10 == 9 {
			return slow
		}
		return fast
	}
	res, err := RunHTTP(context.Background(), Config{Concurrency: 4, Count: 100}, NewClient(4), requests(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("errors: %s", res.FirstError)
	}
	if res.P50 < fast || res.P50 >= slow/2 {
		t.Errorf("p50 %v, want about %v", res.P50, fast)
	}
	if res.P99 < slow || res.Max < res.P99 {
		t.Errorf("p99 %v max %v, want ≥ %v", res.P99, res.Max, slow)
	}
}

func TestRunOpLatencyAndValidation(t *testing.T) {
	res, err := Run(context.Background(), Config{Concurrency: 2, Count: 10}, func(context.Context, int, int) (time.Duration, error) {
		return 7 * time.Millisecond, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Max != 7*time.Millisecond || res.P50 != 7*time.Millisecond {
		t.Errorf("an Op's own latency is recorded: %+v", res)
	}
	for _, bad := range []Config{{}, {Concurrency: 1}, {Concurrency: 1, Duration: -1}} {
		if _, err := Run(context.Background(), bad, nil); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, Config{Concurrency: 1, Duration: time.Second}, func(ctx context.Context, _, _ int) (time.Duration, error) {
		return 0, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}
