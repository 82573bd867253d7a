package delivery

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetryScheduleFollowsProtocol(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: time.Hour, Window: 7 * 24 * time.Hour, Jitter: 0.0001}
	cases := []struct {
		attempts int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second},
		{12, 2048 * time.Second}, {13, time.Hour}, {100, time.Hour},
	}
	for _, c := range cases {
		got := p.Delay(c.attempts)
		assert.InDelta(t, float64(c.want), float64(got), float64(c.want)*0.001, "after %d attempts", c.attempts)
	}
}

func TestRetryJitterStaysWithinQuarter(t *testing.T) {
	p := DefaultRetryPolicy()
	seenLow, seenHigh := false, false
	for i := 0; i < 2000; i++ {
		d := p.Delay(5) // 16 s nominal
		require.GreaterOrEqual(t, d, 12*time.Second)
		require.LessOrEqual(t, d, 20*time.Second)
		if d < 14*time.Second {
			seenLow = true
		}
		if d > 18*time.Second {
			seenHigh = true
		}
	}
	assert.True(t, seenLow && seenHigh, "jitter spreads both ways")
	// A jitter outside [0, 1) would make delays negative or unbounded: the
	// protocol's quarter applies instead.
	for _, j := range []float64{-0.5, 1, 3} {
		p := RetryPolicy{Base: 16 * time.Second, Jitter: j}
		for range 200 {
			d := p.Delay(1)
			require.GreaterOrEqual(t, d, 12*time.Second, "jitter %v", j)
			require.LessOrEqual(t, d, 20*time.Second, "jitter %v", j)
		}
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{}
	assert.Zero(t, retryAfter(h, now, time.Hour))
	h.Set("Retry-After", "30")
	assert.Equal(t, 30*time.Second, retryAfter(h, now, time.Hour))
	h.Set("Retry-After", "999999")
	assert.Equal(t, time.Hour, retryAfter(h, now, time.Hour), "bounded by the cap")
	h.Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
	assert.Equal(t, 90*time.Second, retryAfter(h, now, time.Hour))
	h.Set("Retry-After", "soon")
	assert.Zero(t, retryAfter(h, now, time.Hour))
	h.Set("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat))
	assert.Zero(t, retryAfter(h, now, time.Hour), "a date in the past asks for no wait")
}

func TestWebhookSignatureRoundTrip(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"hello":"world"}`)
	sig, err := SignWebhook(secret, "msg_1", ts, body)
	require.NoError(t, err)
	h := map[string]string{HeaderWebhookID: "msg_1", HeaderWebhookTimestamp: "1700000000", HeaderWebhookSignature: "v1,other " + sig}
	require.NoError(t, VerifyWebhook(secret, h, body, ts.Add(time.Minute), 5*time.Minute))
	assert.Error(t, VerifyWebhook(secret, h, []byte(`{"hello":"World"}`), ts, 5*time.Minute), "tampered body")
	assert.Error(t, VerifyWebhook(secret, h, body, ts.Add(time.Hour), 5*time.Minute), "stale timestamp")
	h[HeaderWebhookID] = "msg_2"
	assert.Error(t, VerifyWebhook(secret, h, body, ts, 5*time.Minute), "other id")
	_, err = SignWebhook("whsec_!!!", "x", ts, body)
	assert.Error(t, err)
}

func TestVerifyWebhookRefusals(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"hello":"world"}`)
	sig, err := SignWebhook(secret, "msg_1", ts, body)
	require.NoError(t, err)
	valid := func() map[string]string {
		return map[string]string{HeaderWebhookID: "msg_1", HeaderWebhookTimestamp: "1700000000", HeaderWebhookSignature: sig}
	}
	for _, tc := range []struct {
		name   string
		change func(h map[string]string)
		secret string
		want   string
	}{
		{"no id", func(h map[string]string) { delete(h, HeaderWebhookID) }, secret, "missing webhook headers"},
		{"no timestamp", func(h map[string]string) { delete(h, HeaderWebhookTimestamp) }, secret, "missing webhook headers"},
		{"no signature", func(h map[string]string) { delete(h, HeaderWebhookSignature) }, secret, "missing webhook headers"},
		{"timestamp not a number", func(h map[string]string) { h[HeaderWebhookTimestamp] = "yesterday" }, secret, "bad webhook timestamp"},
		{"unusable secret", func(map[string]string) {}, "whsec_!!!", "secret"},
		{"signed with another secret", func(map[string]string) {}, "whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==", "no matching webhook signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := valid()
			tc.change(h)
			assert.ErrorContains(t, VerifyWebhook(tc.secret, h, body, ts, time.Minute), tc.want)
		})
	}
}

func TestRedact(t *testing.T) {
	ue := &url.Error{Op: "Post", URL: "https://user:pw@hooks.example.com/in?token=s3cret#frag", Err: errors.New("EOF")}
	got := redact(fmt.Errorf("deliver: %w", ue))
	assert.Equal(t, "Post https://user:xxxxx@hooks.example.com/in: EOF", got)
	assert.Equal(t, "plain failure", redact(errors.New("plain failure")), "an error without a URL is kept")
}

func TestSyncReply(t *testing.T) {
	assert.JSONEq(t, `{"a":1}`, string(syncReply([]byte(`{"status":"accepted","response":{"a": 1}}`))))
	assert.Nil(t, syncReply([]byte(`{"status":"ok","response":{"a":1}}`)))
	assert.Nil(t, syncReply([]byte(`{"status":"accepted"}`)))
	assert.Nil(t, syncReply([]byte(`not json`)))
	assert.Nil(t, syncReply(nil))
}

func TestMessagesURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://gw.example.com":          "https://gw.example.com/v1/messages",
		"https://gw.example.com:8443/":    "https://gw.example.com:8443/v1/messages",
		"https://gw.example.com/amtp?x=1": "https://gw.example.com/amtp/v1/messages",
	} {
		got, err := messagesURL(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := messagesURL("ftp://x")
	assert.Error(t, err)
}
