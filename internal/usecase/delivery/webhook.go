package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// webhookKey decodes a "whsec_<base64>" secret into the HMAC key.
func webhookKey(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, "whsec_")
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) == 0 {
		return nil, errors.New("webhook secret is not whsec_<base64>")
	}
	return k, nil
}

// SignWebhook computes the Standard Webhooks signature header value
// ("v1,<base64 HMAC-SHA256 of id.timestamp.body>").
func SignWebhook(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := webhookKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// VerifyWebhook checks a received webhook the way an agent should:
// signature over id.timestamp.body with the shared secret, timestamp within
// tolerance. It is what our tests' agents use, and what we document.
func VerifyWebhook(secret string, headers map[string]string, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsRaw, sigs := headers[HeaderWebhookID], headers[HeaderWebhookTimestamp], headers[HeaderWebhookSignature]
	if id == "" || tsRaw == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	sec, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return errors.New("bad webhook timestamp")
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return errors.New("webhook timestamp outside tolerance")
	}
	want, err := SignWebhook(secret, id, ts, body)
	if err != nil {
		return err
	}
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no matching webhook signature")
}
