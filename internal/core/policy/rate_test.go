package policy

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRate(t *testing.T) {
	valid := []struct {
		in   string
		want Limit
	}{
		{"100/hour", Limit{100, time.Hour}},
		{"1/second", Limit{1, time.Second}},
		{"60/minute", Limit{60, time.Minute}},
		{"5/day", Limit{5, 24 * time.Hour}},
		{"1000000000/second", Limit{MaxRate, time.Second}},
	}
	for _, tc := range valid {
		got, err := ParseRate(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, tc.in, got.String(), "String round-trips")
	}

	invalid := []struct{ in, msg string }{
		{"", `invalid rate limit "": want <N>/<second|minute|hour|day>, e.g. 100/hour`},
		{"100", `invalid rate limit "100": want <N>/<second|minute|hour|day>, e.g. 100/hour`},
		{"/hour", `invalid rate limit "/hour": the count before / is missing`},
		{"0/hour", `invalid rate limit "0/hour": count is 0; use action: deny to refuse everything`},
		{"00/hour", `invalid rate limit "00/hour": count "00" has a leading zero`},
		{"010/hour", `invalid rate limit "010/hour": count "010" has a leading zero`},
		{"-1/hour", `invalid rate limit "-1/hour": count "-1" is not a decimal number`},
		{"+1/hour", `invalid rate limit "+1/hour": count "+1" is not a decimal number`},
		{"1.5/hour", `invalid rate limit "1.5/hour": count "1.5" is not a decimal number`},
		{"1e3/hour", `invalid rate limit "1e3/hour": count "1e3" is not a decimal number`},
		{" 100/hour", `invalid rate limit " 100/hour": count " 100" is not a decimal number`},
		{"１００/hour", `invalid rate limit "１００/hour": count "１００" is not a decimal number`},
		{"1000000001/hour", `invalid rate limit "1000000001/hour": count 1000000001 is larger than 1000000000`},
		{"9223372036854775808/hour", `invalid rate limit "9223372036854775808/hour": count 9223372036854775808 is larger than 1000000000`},
		{"99999999999999999999999999/hour", `invalid rate limit "99999999999999999999999999/hour": count 99999999999999999999999999 is larger than 1000000000`},
		{"100/", `invalid rate limit "100/": unit "" is not one of second, minute, hour, day`},
		{"100/hours", `invalid rate limit "100/hours": unit "hours" is not one of second, minute, hour, day`},
		{"100/Hour", `invalid rate limit "100/Hour": unit "Hour" is not one of second, minute, hour, day`},
		{"100/h", `invalid rate limit "100/h": unit "h" is not one of second, minute, hour, day`},
		{"100/hour ", `invalid rate limit "100/hour ": unit "hour " is not one of second, minute, hour, day`},
		{"100/hour/2", `invalid rate limit "100/hour/2": unit "hour/2" is not one of second, minute, hour, day`},
		{"100 per hour", `invalid rate limit "100 per hour": want <N>/<second|minute|hour|day>, e.g. 100/hour`},
	}
	for _, tc := range invalid {
		_, err := ParseRate(tc.in)
		require.Error(t, err, tc.in)
		assert.Equal(t, tc.msg, err.Error(), tc.in)
	}
}

func TestLimitString(t *testing.T) {
	assert.Equal(t, "3/1m30s", Limit{3, 90 * time.Second}.String())
	assert.True(t, Limit{1, time.Second}.Valid())
	assert.False(t, Limit{0, time.Second}.Valid())
	assert.False(t, Limit{1, 0}.Valid())
}

func TestRefill(t *testing.T) {
	l := Limit{Rate: 10, Per: 10 * time.Second} // one token a second
	last := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		tokens float64
		after  time.Duration
		want   float64
	}{
		{"no time", 3, 0, 3},
		{"linear", 3, 2 * time.Second, 5},
		{"fractional", 0, 250 * time.Millisecond, 0.25},
		{"capped", 3, time.Hour, 10},
		{"backwards refills nothing", 3, -time.Hour, 3},
		{"over capacity clamps", 50, 0, 10},
		{"negative clamps", -4, time.Second, 1},
		{"NaN clamps", math.NaN(), time.Second, 1},
		{"+Inf clamps", math.Inf(1), 0, 10},
		{"huge gap", 0, time.Duration(math.MaxInt64), 10},
	}
	for _, tc := range cases {
		got := Refill(tc.tokens, last, l, last.Add(tc.after))
		assert.InDelta(t, tc.want, got, 1e-12, tc.name)
	}
	assert.Zero(t, Refill(5, last, Limit{}, last.Add(time.Hour)), "invalid limit")
	// Far-apart times saturate Sub instead of overflowing.
	assert.Equal(t, 10.0, Refill(0, time.Time{}, l, last))
}

func TestTake(t *testing.T) {
	l := Limit{Rate: 3, Per: time.Minute} // a token every 20s
	rest, ok, ra := Take(2.5, l)
	assert.True(t, ok)
	assert.InDelta(t, 1.5, rest, 1e-12)
	assert.Zero(t, ra)

	rest, ok, ra = Take(0, l)
	assert.False(t, ok)
	assert.Zero(t, rest)
	assert.Equal(t, 20*time.Second, ra)

	_, ok, ra = Take(0.5, l)
	assert.False(t, ok)
	assert.Equal(t, 10*time.Second, ra)

	// Rounded up to a whole millisecond, never down.
	_, ok, ra = Take(1-1e-6, Limit{Rate: 1, Per: time.Hour})
	assert.False(t, ok)
	assert.Equal(t, 4*time.Millisecond, ra, "3.6ms rounds up")

	// A hair under one token after float rounding still counts as one.
	rest, ok, _ = Take(1-1e-12, l)
	assert.True(t, ok)
	assert.Zero(t, rest)

	_, ok, _ = Take(math.NaN(), l)
	assert.False(t, ok)
}

func TestStep(t *testing.T) {
	l := Limit{Rate: 2, Per: time.Minute}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	b, ok, _ := Step(Bucket{}, l, now)
	require.True(t, ok, "the zero bucket is full")
	assert.Equal(t, Bucket{Tokens: 1, Last: now}, b)
	b, ok, _ = Step(b, l, now)
	require.True(t, ok)
	refused, ok, ra := Step(b, l, now)
	require.False(t, ok)
	assert.Equal(t, b, refused, "a refusal changes nothing")
	assert.Equal(t, 30*time.Second, ra)

	// A late caller spends a refilled token but cannot move Last back.
	b = Bucket{Tokens: 1, Last: now}
	next, ok, _ := Step(b, l, now.Add(-time.Hour))
	require.True(t, ok)
	assert.Equal(t, Bucket{Tokens: 0, Last: now}, next)
}

func TestFullAt(t *testing.T) {
	l := Limit{Rate: 4, Per: time.Minute} // a token every 15s
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	assert.Equal(t, now.Add(45*time.Second), Bucket{Tokens: 1, Last: now}.FullAt(l))
	assert.Equal(t, now.Add(time.Minute), Bucket{Tokens: 0, Last: now}.FullAt(l))
	assert.Equal(t, now, Bucket{Tokens: 4, Last: now}.FullAt(l))
	assert.Equal(t, now.Add(time.Minute), Bucket{Tokens: math.NaN(), Last: now}.FullAt(l))
	assert.True(t, Bucket{}.FullAt(l).IsZero(), "a missing bucket is full already")

	// Refilling until FullAt gives a full bucket: the eviction rule.
	b := Bucket{Tokens: 0.3, Last: now}
	assert.Equal(t, 4.0, Refill(b.Tokens, b.Last, l, b.FullAt(l)))
}
