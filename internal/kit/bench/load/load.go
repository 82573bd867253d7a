// Package load is a closed-loop load generator: a fixed number of workers,
// each starting its next operation only when the previous one finished, a
// warm-up that is not counted, then a measured period (or a measured
// number of operations). Latencies go into a log-linear histogram, so
// memory stays bounded however long the run.
//
// Closed loop means the offered load adapts to the system: throughput is
// what the system sustains at that concurrency, and latency is what each
// of the concurrent clients sees. (An open-loop generator would measure
// queueing under a chosen arrival rate instead.)
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how much load and for how long.
type Config struct {
	// Concurrency is the number of workers, each with at most one
	// operation in flight.
	Concurrency int
	// Warmup runs the same load first without counting it: connections,
	// caches, pools and the runtime settle.
	Warmup time.Duration
	// Duration is the measured period; operations started in it are
	// counted, including those that finish after it ends.
	Duration time.Duration
	// Count, when positive, ends the measured period after this many
	// operations were started (Duration, if also set, still bounds it).
	Count int
}

// Op performs one operation. seq is unique within a Run (0, 1, 2, … over
// warm-up and measurement, shared by all workers), so it can make bodies
// and idempotency keys unique. It returns the latency to record, or zero
// to record the time the call took; a non-nil error counts the operation
// as failed (its latency is not recorded).
type Op func(ctx context.Context, worker, seq int) (time.Duration, error)

// Result is what one Run measured.
type Result struct {
	Requests   int64         // operations counted (started in the measured period)
	Errors     int64         // of those, failed: transport error, non-2xx, or the Op's own error
	Elapsed    time.Duration // from the start of the measured period until the last counted operation ended
	Throughput float64       // successful operations per second of Elapsed
	P50        time.Duration // of successful operations
	P99        time.Duration
	Max        time.Duration
	Mean       time.Duration
	FirstError string // the first error seen while measuring, for diagnosis
	Hist       *Histogram
}

// Run drives op as Config says and returns what it measured. It returns an
// error only for a bad Config or a cancelled ctx; failed operations are
// counted in Result.Errors.
func Run(ctx context.Context, cfg Config, op Op) (Result, error) {
	if cfg.Concurrency <= 0 {
		return Result{}, errors.New("load: Concurrency must be positive")
	}
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return Result{}, errors.New("load: set Duration or Count")
	}
	if cfg.Warmup < 0 || cfg.Duration < 0 || cfg.Count < 0 {
		return Result{}, errors.New("load: negative Warmup, Duration or Count")
	}
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	var measureUntil time.Time // zero: no time bound
	if cfg.Duration > 0 {
		measureUntil = measureFrom.Add(cfg.Duration)
	}

	var (
		seq      atomic.Int64
		counted  atomic.Int64 // operations claimed in the measured period
		firstErr atomic.Pointer[string]
		wg       sync.WaitGroup
	)
	type workerResult struct {
		hist     Histogram
		requests int64
		errors   int64
		lastEnd  time.Time
	}
	results := make([]*workerResult, cfg.Concurrency)
	for w := range cfg.Concurrency {
		wr := &workerResult{}
		results[w] = wr
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				now := time.Now()
				measured := !now.Before(measureFrom)
				if measured {
					if !measureUntil.IsZero() && !now.Before(measureUntil) {
						return
					}
					if cfg.Count > 0 && counted.Add(1) > int64(cfg.Count) {
						return
					}
				}
				s := int(seq.Add(1) - 1)
				t0 := time.Now()
				lat, err := op(ctx, w, s)
				end := time.Now()
				if !measured {
					continue
				}
				if ctx.Err() != nil && err != nil {
					// Cancelled, not failed: leave it out.
					return
				}
				wr.requests++
				wr.lastEnd = end
				if err != nil {
					wr.errors++
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				if lat <= 0 {
					lat = end.Sub(t0)
				}
				wr.hist.Record(lat)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	res := Result{Hist: &Histogram{}}
	last := measureFrom
	for _, wr := range results {
		res.Hist.Merge(&wr.hist)
		res.Requests += wr.requests
		res.Errors += wr.errors
		if wr.lastEnd.After(last) {
			last = wr.lastEnd
		}
	}
	res.Elapsed = last.Sub(measureFrom)
	if res.Elapsed > 0 {
		res.Throughput = float64(res.Requests-res.Errors) / res.Elapsed.Seconds()
	}
	res.P50 = res.Hist.Quantile(0.50)
	res.P99 = res.Hist.Quantile(0.99)
	res.Max = res.Hist.Max()
	res.Mean = res.Hist.Mean()
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	return res, nil
}

// NewClient returns an HTTP client for load: keep-alives on, and enough
// idle connections per host that every worker keeps its own, so that a
// run measures requests rather than connection setup. No proxy, no
// compression, no HTTP/2 (the servers measured are HTTP/1.1 on loopback).
func NewClient(concurrency int) *http.Client {
	idle := max(2*concurrency, 16)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        idle,
			MaxIdleConnsPerHost: idle,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
		Timeout: 30 * time.Second,
	}
}

// RequestFunc makes the request of operation seq of a worker; the body
// must be fresh for every call.
type RequestFunc func(worker, seq int) (*http.Request, error)

// maxDrain is how much of an answer is read so the connection can be
// reused; a longer answer costs its connection.
const maxDrain = 1 << 20

// HTTPOp turns a RequestFunc into an Op: send, read the answer, and fail
// on a transport error or a status outside 2xx.
func HTTPOp(client *http.Client, newReq RequestFunc) Op {
	return func(ctx context.Context, worker, seq int) (time.Duration, error) {
		req, err := newReq(worker, seq)
		if err != nil {
			return 0, fmt.Errorf("make request: %w", err)
		}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err
		}
		return 0, CheckResponse(resp)
	}
}

// CheckResponse reads and closes the body of resp (up to 1 MiB, so that
// the connection is reused) and returns an error for a status outside
// 2xx, quoting the start of the body.
func CheckResponse(resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return err
	}
	var head bytes.Buffer
	_, _ = io.Copy(&head, io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return &StatusError{Code: resp.StatusCode, Body: head.String()}
}

// StatusError is an answer outside 2xx.
type StatusError struct {
	Code int
	Body string // the first 512 bytes
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Code, bytes.TrimSpace([]byte(e.Body)))
}

// RunHTTP is Run with HTTPOp.
func RunHTTP(ctx context.Context, cfg Config, client *http.Client, newReq RequestFunc) (Result, error) {
	return Run(ctx, cfg, HTTPOp(client, newReq))
}
