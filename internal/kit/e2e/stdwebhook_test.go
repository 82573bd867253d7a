package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/delivery"
)

// verifyStandardWebhook checks a received webhook as the Standard Webhooks
// specification tells a receiver to, written here from the specification
// and sharing nothing with the gateway's signer (delivery.SignWebhook):
// the secret is "whsec_" + base64 key; the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>"; webhook-signature is a
// space-separated list of "v1,<base64 HMAC-SHA256>", one of which must
// match; the timestamp is within five minutes of now.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return errors.New("secret is not whsec_<base64>")
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	if math.Abs(now.Sub(time.Unix(sec, 0)).Seconds()) > 300 {
		return errors.New("timestamp outside five minutes")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// TestStandardWebhookVerifierRefuses: the independent verifier accepts
// what the gateway signs and refuses any change to it.
func TestStandardWebhookVerifierRefuses(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	body := []byte(`{"a":1}`)
	sig, err := delivery.SignWebhook(secret, "msg_1", now, body)
	require.NoError(t, err)
	headers := func(id, ts, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		return h
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	require.NoError(t, verifyStandardWebhook(secret, headers("msg_1", ts, "v1,bm9wZQ== "+sig), body, now))
	for name, err := range map[string]error{
		"other body":   verifyStandardWebhook(secret, headers("msg_1", ts, sig), []byte(`{"a":2}`), now),
		"other id":     verifyStandardWebhook(secret, headers("msg_2", ts, sig), body, now),
		"other secret": verifyStandardWebhook("whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), headers("msg_1", ts, sig), body, now),
		"old":          verifyStandardWebhook(secret, headers("msg_1", ts, sig), body, now.Add(10*time.Minute)),
		"v2 only":      verifyStandardWebhook(secret, headers("msg_1", ts, strings.Replace(sig, "v1,", "v2,", 1)), body, now),
	} {
		assert.Error(t, err, name)
	}
}
