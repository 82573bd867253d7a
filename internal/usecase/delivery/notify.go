package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Notifier queues notifications of delivery outcomes to the webhook
// subscriptions that ask for them (*gateway.Notifier).
type Notifier interface {
	Notify(ctx context.Context, owner string, n gateway.Notification) error
}

// DefaultWebhookDisableAfter is how long a subscription's notifications
// may fail before it is disabled and its owner told.
const DefaultWebhookDisableAfter = 5 * 24 * time.Hour

// notifyOutcome queues the events of the statuses just recorded for the
// message m, to its sender's subscriptions (a local sender's) and the
// admin's. A failure is logged, not returned: the delivery is recorded,
// and failing it now would deliver again.
func (w *Worker) notifyOutcome(ctx context.Context, m *amtp.Message, messageID string, ups []gateway.RecipientStatus) {
	if w.d.Notifier == nil {
		return
	}
	owner := ""
	if from := m.SenderAddress(); from.Domain == w.cfg.Domain {
		owner = from.Key()
	}
	for _, st := range ups {
		n, ok := gateway.MessageNotification(messageID, st)
		if !ok {
			continue
		}
		if err := w.d.Notifier.Notify(ctx, owner, n); err != nil {
			w.log.WarnContext(ctx, "could not queue notification", "message_id", messageID, "event", string(n.Type), "err", err)
		}
	}
}

// notifyTask POSTs one notification to its subscription. A notification
// is never dead-lettered: one given up is logged, and a subscription
// failing for Config.WebhookDisableAfter is disabled and its owner told.
func (w *Worker) notifyTask(ctx context.Context, t gateway.Task, h holder) error {
	if w.d.Webhooks == nil || t.Token == "" {
		w.log.WarnContext(ctx, "notification without a subscription store or body; dropping it", "task", t.ID)
		return h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
	}
	sub, err := w.d.Webhooks.GetWebhook(ctx, t.Domain)
	if errors.Is(err, gateway.ErrNotFound) || err == nil && sub.Disabled {
		return h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
	}
	if err != nil {
		return fmt.Errorf("load webhook %s: %w", t.Domain, err)
	}
	o := w.postNotification(ctx, sub, t)
	if o.results != nil && o.results[sub.ID].delivered {
		return w.notified(ctx, t, sub, h)
	}
	return w.notifyFailed(ctx, t, sub, o, h)
}

// notified settles a delivered notification; its subscription is no
// longer failing.
func (w *Worker) notified(ctx context.Context, t gateway.Task, sub gateway.WebhookSubscription, h holder) error {
	if sub.FailingSince != nil {
		sub.FailingSince = nil
		if err := w.d.Webhooks.PutWebhook(ctx, sub); err != nil {
			return fmt.Errorf("record webhook %s working: %w", sub.ID, err)
		}
	}
	return h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
}

// notifyFailed records the failure on the subscription, disables one that
// has failed for too long, and retries a transient failure while the retry
// window lasts.
func (w *Worker) notifyFailed(ctx context.Context, t gateway.Task, sub gateway.WebhookSubscription, o outcome, h holder) error {
	now := w.stamp()
	switch {
	case sub.FailingSince == nil:
		sub.FailingSince = &now
		if err := w.d.Webhooks.PutWebhook(ctx, sub); err != nil {
			return fmt.Errorf("record webhook %s failing: %w", sub.ID, err)
		}
	case now.Sub(*sub.FailingSince) >= w.cfg.WebhookDisableAfter:
		return w.disableWebhook(ctx, t, sub, h)
	}
	attempt := t.Attempt + 1
	next := now.Add(max(w.cfg.Retry.Delay(attempt), o.retryAfter))
	if o.transient != nil && next.Sub(t.CreatedAt) <= w.cfg.Retry.Window {
		w.log.InfoContext(ctx, "notification will be retried", "task", t.ID, "webhook", sub.ID, "attempt", attempt, "next_retry", next, "detail", o.detail)
		t.Attempt = attempt
		return h.queueFailed(w.d.Queue.Retry(ctx, t, next), "schedule retry of "+t.ID)
	}
	w.log.WarnContext(ctx, "notification given up", "task", t.ID, "webhook", sub.ID, "attempt", attempt, "detail", o.detail)
	return h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
}

// disableWebhook stops a subscription's notifications and tells its owner,
// from postmaster, why.
func (w *Worker) disableWebhook(ctx context.Context, t gateway.Task, sub gateway.WebhookSubscription, h holder) error {
	sub.Disabled = true
	if err := w.d.Webhooks.PutWebhook(ctx, sub); err != nil {
		return fmt.Errorf("disable webhook %s: %w", sub.ID, err)
	}
	w.log.WarnContext(ctx, "webhook subscription disabled: its notifications failed for too long", "webhook", sub.ID, "owner", sub.Owner, "failing_since", sub.FailingSince)
	if sub.Owner != "" && w.d.Reporter != nil {
		if _, err := w.d.Reporter.SubmitSystem(ctx, w.disabledNotice(sub)); err != nil && !amtp.IsCode(err, amtp.CodeIdempotencyConflict) {
			// The task comes back and, the subscription disabled, is acked:
			// the notice is lost, the log line above stays.
			return fmt.Errorf("tell %s of disabled webhook %s: %w", sub.Owner, sub.ID, err)
		}
	}
	return h.queueFailed(w.d.Queue.Ack(ctx, t), "ack "+t.ID)
}

// disabledNotice is the message telling the owner its subscription was
// disabled; its key derives from the subscription, so it is sent once.
func (w *Worker) disabledNotice(sub gateway.WebhookSubscription) *amtp.Message {
	payload, _ := json.Marshal(map[string]any{
		"message_type":  "webhook_disabled",
		"webhook_id":    sub.ID,
		"url":           sub.URL,
		"failing_since": amtp.FormatTime(*sub.FailingSince),
	})
	sum := sha256.Sum256([]byte("webhook-disabled/" + sub.ID))
	return &amtp.Message{
		Version:        amtp.Version,
		IdempotencyKey: "whd-" + hex.EncodeToString(sum[:16]),
		Sender:         "postmaster@" + w.cfg.Domain,
		Recipients:     []string{sub.Owner},
		Subject:        "Webhook subscription disabled",
		Headers:        map[string]string{"amtp-report": "webhook_disabled"},
		Payload:        payload,
	}
}

// targetSubscription is the party a notification goes to, as logs read it.
const targetSubscription = "the subscription's webhook"

// postNotification POSTs t's body to sub, signed per Standard Webhooks with
// the subscription's secret, through the guarded client. The outcome
// reports on sub.ID.
func (w *Worker) postNotification(ctx context.Context, sub gateway.WebhookSubscription, t gateway.Task) outcome {
	rcpt := []string{sub.ID}
	var n struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(t.Token), &n); err != nil || n.ID == "" {
		return settledAll(rcpt, amtp.CodeInvalidMessageFormat, "the notification's body is unreadable")
	}
	now := w.cfg.Now()
	sig, err := SignWebhook(sub.Secret, n.ID, now, []byte(t.Token))
	if err != nil {
		return settledAll(rcpt, amtp.CodeAuthenticationFailed, "the subscription's secret is unusable")
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, sub.URL, strings.NewReader(t.Token))
	if err != nil {
		return settledAll(rcpt, amtp.CodeRecipientUnavailable, "the subscription's URL is unusable")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderWebhookID, n.ID)
	req.Header.Set(HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(HeaderWebhookSignature, sig)
	resp, err := w.d.Client.Do(req)
	if err != nil {
		return w.networkFailure(rcpt, targetSubscription, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, w.cfg.MaxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return deliveredAll(rcpt, "webhook", nil)
	}
	return w.httpFailure(rcpt, targetSubscription, resp, data)
}
