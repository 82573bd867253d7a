package policy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxRate bounds N in "N/unit": beyond it a limit is not a limit, and a
// bound keeps the bucket arithmetic far from float64's exact-integer range.
const MaxRate = 1_000_000_000

// Limit is a token bucket: a burst of up to Rate requests, refilled
// continuously at Rate per Per.
type Limit struct {
	Rate int
	Per  time.Duration
}

var rateUnits = []struct {
	name string
	per  time.Duration
}{
	{"second", time.Second},
	{"minute", time.Minute},
	{"hour", time.Hour},
	{"day", 24 * time.Hour},
}

// ParseRate parses the draft's rate_limit form, "<N>/<second|minute|hour|day>",
// e.g. "100/hour". N is a decimal integer from 1 to MaxRate without sign or
// leading zeros; no spaces, units lower-case and singular.
func ParseRate(s string) (Limit, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("invalid rate limit %q: want <N>/<second|minute|hour|day>, e.g. 100/hour", clip(s))
	}
	n, err := parseCount(num)
	if err != nil {
		return Limit{}, fmt.Errorf("invalid rate limit %q: %w", clip(s), err)
	}
	for _, u := range rateUnits {
		if unit == u.name {
			return Limit{Rate: n, Per: u.per}, nil
		}
	}
	return Limit{}, fmt.Errorf("invalid rate limit %q: unit %q is not one of second, minute, hour, day", clip(s), clip(unit))
}

func parseCount(s string) (int, error) {
	if s == "" {
		return 0, errors.New("the count before / is missing")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("count %q is not a decimal number", clip(s))
		}
	}
	if s[0] == '0' {
		if len(s) == 1 {
			return 0, errors.New("count is 0; use action: deny to refuse everything")
		}
		return 0, fmt.Errorf("count %q has a leading zero", clip(s))
	}
	// Checking the length first keeps Atoi from ever seeing a number that
	// overflows int, whatever the platform's int size.
	if len(s) > len(strconv.Itoa(MaxRate)) {
		return 0, fmt.Errorf("count %s is larger than %d", clip(s), MaxRate)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", clip(s), err)
	}
	if n > MaxRate {
		return 0, fmt.Errorf("count %d is larger than %d", n, MaxRate)
	}
	return n, nil
}

// String is the rate_limit form for the units ParseRate knows, and
// "<N>/<duration>" for any other Per.
func (l Limit) String() string {
	for _, u := range rateUnits {
		if l.Per == u.per {
			return strconv.Itoa(l.Rate) + "/" + u.name
		}
	}
	return strconv.Itoa(l.Rate) + "/" + l.Per.String()
}

// Valid reports whether the bucket arithmetic is defined for l.
func (l Limit) Valid() bool { return l.Rate > 0 && l.Per > 0 }

// MaxKeyLen bounds a bucket key, well under DynamoDB's 2048-byte partition
// key, so that every Limiter accepts the same keys. Decide's keys are far
// shorter.
const MaxKeyLen = 1024

// Limiter spends one token of the bucket named key. ok is false when the
// bucket is empty; retryAfter then says when a token will be there, assuming
// nobody else takes it. err is for a limiter that could not decide (store
// down, ctx done, invalid limit, key over MaxKeyLen): the caller chooses to fail open or closed.
// now is passed in, never read from a clock, so that every implementation is
// deterministic under test and all replicas of a key agree on the time base
// their caller chose.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit, now time.Time) (ok bool, retryAfter time.Duration, err error)
}

// tokenEpsilon forgives float rounding: refilling exactly retryAfter after
// an empty bucket can land a hair under 1 token, and refusing then would
// make retryAfter a lie.
const tokenEpsilon = 1e-9

// Refill is the bucket's token count at now, given tokens at last: tokens
// grow linearly at Rate per Per, capped at Rate. Time going backwards (a
// replica with a slower clock) refills nothing rather than taking tokens
// away. Counts outside [0, Rate] (a corrupted store) are clamped; an invalid
// limit refills nothing.
func Refill(tokens float64, last time.Time, l Limit, now time.Time) float64 {
	if !l.Valid() {
		return 0
	}
	capacity := float64(l.Rate)
	switch {
	case math.IsNaN(tokens) || tokens < 0:
		tokens = 0
	case tokens >= capacity:
		return capacity
	}
	elapsed := now.Sub(last)
	if elapsed <= 0 {
		return tokens
	}
	// Multiplying first rounds once instead of twice, and is exact while
	// elapsed·Rate (nanoseconds) stays below 2^53, as it does in tests.
	tokens += float64(elapsed) * capacity / float64(l.Per)
	return min(tokens, capacity)
}

// Take spends one token from an already refilled count. When there is none,
// retryAfter is the time until Refill brings the count to one, rounded up to
// a whole millisecond so that a store keeping times in milliseconds still
// grants at now+retryAfter.
func Take(tokens float64, l Limit) (rest float64, ok bool, retryAfter time.Duration) {
	if math.IsNaN(tokens) || tokens < 0 {
		tokens = 0
	}
	if tokens >= 1-tokenEpsilon {
		return max(tokens-1, 0), true, 0
	}
	if !l.Valid() {
		return tokens, false, 0
	}
	wait := (1 - tokens) * float64(l.Per) / float64(l.Rate)
	retryAfter = time.Duration(math.Ceil(wait))
	if r := retryAfter % time.Millisecond; r != 0 {
		retryAfter += time.Millisecond - r
	}
	return tokens, false, retryAfter
}

// Bucket is the state of one token bucket as a store keeps it. The zero
// Bucket is a bucket never used, which is full: a store that finds no item
// passes Bucket{}.
type Bucket struct {
	Tokens float64
	Last   time.Time
}

// Step is one request against b at now: refill, then take a token. next is
// the state to store when ok; when !ok nothing needs writing, since refilling
// the old state again later gives the same count. Last never moves
// backwards, so that a caller with a late clock cannot replay a refill.
func Step(b Bucket, l Limit, now time.Time) (next Bucket, ok bool, retryAfter time.Duration) {
	tokens := float64(l.Rate)
	last := now
	if !b.Last.IsZero() {
		tokens = Refill(b.Tokens, b.Last, l, now)
		if now.Before(b.Last) {
			last = b.Last
		}
	}
	rest, ok, retryAfter := Take(tokens, l)
	if !ok {
		return b, false, retryAfter
	}
	return Bucket{Tokens: rest, Last: last}, true, 0
}

// FullAt is when b will be full again under l. From then on the bucket is
// indistinguishable from a missing one, so a store may drop it (the memory
// limiter evicts it; DynamoDB can use it as the item's TTL).
func (b Bucket) FullAt(l Limit) time.Time {
	if b.Last.IsZero() || !l.Valid() {
		return b.Last
	}
	missing := float64(l.Rate) - b.Tokens
	if math.IsNaN(missing) || missing > float64(l.Rate) {
		missing = float64(l.Rate)
	}
	if missing <= 0 {
		return b.Last
	}
	// Rate ≤ MaxRate and Per fits a Duration, so the product stays well
	// inside float64 and the quotient inside Duration.
	return b.Last.Add(time.Duration(math.Ceil(missing * float64(l.Per) / float64(l.Rate))))
}

// clip keeps hostile input from bloating error messages and logs.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
