// Package delivery carries one accepted message to one destination — a
// local push agent's webhook, a local pull agent's inbox, or another
// domain's gateway — and decides, per PROTOCOL.md, whether a failure is
// retried, when, and when it becomes final.
package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy is the schedule of shared/PROTOCOL.md: first retry after
// Base, then doubling, capped at Max, ±Jitter, for Window after acceptance.
type RetryPolicy struct {
	Base   time.Duration
	Max    time.Duration
	Window time.Duration
	Jitter float64
}

// DefaultRetryPolicy is the protocol's schedule.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Base: time.Second, Max: time.Hour, Window: 7 * 24 * time.Hour, Jitter: 0.25}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.Base <= 0 {
		p.Base = d.Base
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.Window <= 0 {
		p.Window = d.Window
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		p.Jitter = d.Jitter
	}
	return p
}

// Delay is the wait after the attempts-th failed attempt (1-based).
func (p RetryPolicy) Delay(attempts int) time.Duration {
	p = p.withDefaults()
	d := p.Base
	for i := 1; i < attempts && d < p.Max; i++ {
		d *= 2
	}
	if d > p.Max {
		d = p.Max
	}
	if p.Jitter > 0 {
		f := 1 + p.Jitter*(2*rand.Float64()-1)
		d = time.Duration(float64(d) * f)
	}
	return d
}

// retryAfter parses a Retry-After header (seconds or an HTTP date),
// bounded by max so that a hostile peer cannot park a task forever.
func retryAfter(h http.Header, now time.Time, max time.Duration) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	if d > max {
		return max
	}
	return d
}
