package delivery_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// receiver is a subscriber's endpoint: it answers the statuses of
// answers in turn (then 200) and keeps what it was sent.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
	// answers are the statuses of the next calls, first first.
	answers []int
}

type received struct {
	headers map[string]string
	body    []byte
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := map[string]string{}
		for _, k := range []string{delivery.HeaderWebhookID, delivery.HeaderWebhookTimestamp, delivery.HeaderWebhookSignature} {
			h[k] = req.Header.Get(k)
		}
		r.mu.Lock()
		r.got = append(r.got, received{headers: h, body: body})
		status := http.StatusOK
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		rw.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) calls() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

const testSecret = "whsec_c2VjcmV0LWZvci10ZXN0cw=="

// subscribe stores a subscription of owner to url for events.
func (w *world) subscribe(t *testing.T, owner, url string, events ...gateway.WebhookEvent) gateway.WebhookSubscription {
	t.Helper()
	s := gateway.WebhookSubscription{ID: "wh_" + owner + "_" + url[len(url)-5:], Owner: owner, URL: url, Events: events, Secret: testSecret, CreatedAt: w.clock.Now()}
	require.NoError(t, w.db.DB.PutWebhook(context.Background(), s))
	return s
}

// notifyingWorker is a worker that notifies the world's subscriptions.
func (w *world) notifyingWorker(t *testing.T) *delivery.Worker {
	return w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
		d.Notifier = gateway.NewNotifier(w.db.DB, w.db.DB, w.clock.Now)
		d.Webhooks = w.db.DB
	})
}

// event checks that c is a notification signed with testSecret and
// returns it.
func (w *world) event(t *testing.T, c received) gateway.Notification {
	t.Helper()
	require.NoError(t, delivery.VerifyWebhook(testSecret, c.headers, c.body, w.clock.Now(), 5*time.Minute))
	var n gateway.Notification
	require.NoError(t, json.Unmarshal(c.body, &n))
	assert.Equal(t, n.ID, c.headers[delivery.HeaderWebhookID])
	return n
}

var messageEvents = []gateway.WebhookEvent{gateway.EventMessageDelivered, gateway.EventMessageFailed, gateway.EventMessageRetrying}

func TestNotificationsOfDeliveryOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		hook   int
		event  gateway.WebhookEvent
		status gateway.State
		code   string
	}{
		{"delivered", http.StatusOK, gateway.EventMessageDelivered, gateway.StateDelivered, ""},
		{"failed", http.StatusGone, gateway.EventMessageFailed, gateway.StateFailed, "RECIPIENT_NOT_FOUND"},
		{"retrying", http.StatusServiceUnavailable, gateway.EventMessageRetrying, gateway.StateRetrying, "RECIPIENT_UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.hookStatus.Store(int64(tt.hook))
			alices, admins, bobs := newReceiver(t), newReceiver(t), newReceiver(t)
			w.subscribe(t, "alice@example.org", alices.srv.URL, messageEvents...)
			w.subscribe(t, "", admins.srv.URL, tt.event)
			w.subscribe(t, "bob@example.org", bobs.srv.URL, messageEvents...)
			wk := w.notifyingWorker(t)
			ctx := context.Background()
			id := w.send(t, "hook@example.org")
			require.NoError(t, wk.Process(ctx, w.lease(t)))

			due := w.due(t)
			require.Len(t, due, 2, "one notification to alice's subscription, one to the admin's")
			for _, task := range due {
				assert.Equal(t, gateway.TaskNotify, task.Kind)
				require.NoError(t, wk.Process(ctx, task))
			}
			for _, r := range []*receiver{alices, admins} {
				calls := r.calls()
				require.Len(t, calls, 1)
				n := w.event(t, calls[0])
				assert.Equal(t, tt.event, n.Type)
				assert.Equal(t, id, n.Data.MessageID)
				assert.Equal(t, "hook@example.org", n.Data.Recipient)
				assert.Equal(t, string(tt.status), n.Data.Status)
				assert.Equal(t, tt.code, n.Data.ErrorCode)
			}
			assert.Empty(t, bobs.calls(), "bob hears nothing of alice's mail")
		})
	}
}

func TestNotificationsAtAcceptance(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	w.subscribe(t, "alice@example.org", r.srv.URL, gateway.EventMessageDelivered)
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AllowInsecure: true, Now: w.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		gateway.Ports{Messages: w.db.DB, Inbox: w.db.DB, Agents: w.db.DB, Queue: w.db.DB, Workflows: w.db.DB, Webhooks: w.db.DB})
	require.NoError(t, err)
	res, err := svc.Accept(context.Background(), gateway.Principal{Kind: gateway.AdminCaller},
		[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{}}`))
	require.NoError(t, err)
	wk := w.notifyingWorker(t)
	require.NoError(t, wk.Process(context.Background(), w.lease(t)), "a pull recipient is delivered by the acceptance")
	calls := r.calls()
	require.Len(t, calls, 1)
	n := w.event(t, calls[0])
	assert.Equal(t, gateway.EventMessageDelivered, n.Type)
	assert.Equal(t, res.MessageID, n.Data.MessageID)
	assert.Equal(t, "bob@example.org", n.Data.Recipient)
}

func TestNotificationRetriedUntilDelivered(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	sub := w.subscribe(t, "alice@example.org", r.srv.URL, gateway.EventMessageDelivered)
	wk := w.notifyingWorker(t)
	ctx := context.Background()
	w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(ctx, w.lease(t)))

	for i := range 2 {
		require.NoError(t, wk.Process(ctx, w.lease(t)), "attempt %d", i+1)
		assert.Empty(t, w.due(t), "the retry waits for its time")
		got, err := w.db.DB.GetWebhook(ctx, sub.ID)
		require.NoError(t, err)
		require.NotNil(t, got.FailingSince, "the subscription is failing")
		w.clock.Add(2 * time.Hour)
	}
	require.NoError(t, wk.Process(ctx, w.lease(t)))
	assert.Empty(t, w.due(t), "delivered: nothing left")
	calls := r.calls()
	require.Len(t, calls, 3)
	for _, c := range calls {
		assert.Equal(t, calls[0].body, c.body, "every attempt sends the same event")
		assert.Equal(t, calls[0].headers[delivery.HeaderWebhookID], c.headers[delivery.HeaderWebhookID])
	}
	assert.Equal(t, gateway.EventMessageDelivered, w.event(t, calls[2]).Type)
	got, err := w.db.DB.GetWebhook(ctx, sub.ID)
	require.NoError(t, err)
	assert.Nil(t, got.FailingSince, "a delivered notification clears failing_since")
	assert.False(t, got.Disabled)
}

func TestSubscriptionFailingFiveDaysIsDisabled(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t, http.StatusInternalServerError, http.StatusInternalServerError)
	sub := w.subscribe(t, "alice@example.org", r.srv.URL, gateway.EventMessageDelivered)
	since := w.clock.Now().Add(-delivery.DefaultWebhookDisableAfter)
	sub.FailingSince = &since
	require.NoError(t, w.db.DB.PutWebhook(context.Background(), sub))
	wk := w.notifyingWorker(t)
	ctx := context.Background()
	w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(ctx, w.lease(t)))

	require.NoError(t, wk.Process(ctx, w.lease(t)))
	got, err := w.db.DB.GetWebhook(ctx, sub.ID)
	require.NoError(t, err)
	assert.True(t, got.Disabled)
	assert.Empty(t, w.due(t), "the notification is not retried")
	entries, _, err := w.db.DB.ListInbox(ctx, "alice@example.org", 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1, "alice is told by postmaster")
	var notice struct {
		Sender  string          `json:"sender"`
		Subject string          `json:"subject"`
		Payload json.RawMessage `json:"payload"`
	}
	require.NoError(t, json.Unmarshal(entries[0].Raw, &notice))
	assert.Equal(t, "postmaster@example.org", notice.Sender)
	assert.Contains(t, string(notice.Payload), sub.ID)

	w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(ctx, w.lease(t)))
	// The notifier may still hold the subscription as it was (its cache);
	// the worker reads it before posting.
	for _, task := range w.due(t) {
		require.NoError(t, wk.Process(ctx, task))
	}
	assert.Len(t, r.calls(), 1, "a disabled subscription is not notified")
}

func TestNotificationsWithoutSubscribers(t *testing.T) {
	w := newWorld(t)
	wk := w.notifyingWorker(t)
	w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(context.Background(), w.lease(t)))
	assert.Empty(t, w.due(t), "no subscription, no notification task")
}

// TestPoisonedNotificationFailsNobody: a notification task the queue gave
// up on is dropped; the recipient it is about keeps its status.
func TestPoisonedNotificationFailsNobody(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	w.subscribe(t, "alice@example.org", r.srv.URL, gateway.EventMessageRetrying)
	w.hookStatus.Store(http.StatusServiceUnavailable)
	wk := w.notifyingWorker(t)
	ctx := context.Background()
	id := w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(ctx, w.lease(t)))
	due := w.due(t)
	require.Len(t, due, 1)
	require.Equal(t, gateway.TaskNotify, due[0].Kind)

	require.NoError(t, wk.FailPoison(ctx, due[0], "crashed its worker"))
	assert.Equal(t, gateway.StateRetrying, w.status(t, id, "hook@example.org").Status)
	assert.Zero(t, w.reports(t), "nobody is told of a failure that did not happen")
}

// TestBouncedEmailIsNotified: a bridged recipient that bounces later is a
// failure like any other, and subscribers hear of it.
func TestBouncedEmailIsNotified(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	w.subscribe(t, "alice@example.org", r.srv.URL, gateway.EventMessageFailed)
	wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
		d.Discover, d.Email = mxOnly, &mailbox{}
		d.Notifier, d.Webhooks = gateway.NewNotifier(w.db.DB, w.db.DB, w.clock.Now), w.db.DB
	})
	ctx := context.Background()
	id := w.send(t, "bob@mail.example")
	require.NoError(t, wk.Process(ctx, w.lease(t)))
	require.Equal(t, gateway.StateDelivered, w.status(t, id, "bob@mail.example").Status)
	assert.Empty(t, w.due(t), "alice asked for failures only")

	require.NoError(t, wk.EmailBounced(ctx, delivery.Bounce{MessageID: id, Recipient: "bob@mail.example", Reason: "550 user unknown"}))
	require.NoError(t, wk.Process(ctx, w.lease(t)))
	calls := r.calls()
	require.Len(t, calls, 1)
	n := w.event(t, calls[0])
	assert.Equal(t, gateway.EventMessageFailed, n.Type)
	assert.Equal(t, "bob@mail.example", n.Data.Recipient)
}
