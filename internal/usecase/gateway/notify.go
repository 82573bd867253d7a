package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/core/workflow"
)

// TaskNotify is a notification to one webhook subscription: Domain is the
// subscription's id, MessageID the message or workflow the event is
// about, Recipients its recipient (message events) and Token the event's
// JSON, made once so that every attempt sends the same bytes.
const TaskNotify TaskKind = "notify"

// Notification is the body POSTed to a subscription (draft §12.1.4).
type Notification struct {
	ID        string           `json:"id"`
	Type      WebhookEvent     `json:"type"`
	Timestamp time.Time        `json:"timestamp"`
	Data      NotificationData `json:"data"`
}

// NotificationData is what an event is about.
type NotificationData struct {
	MessageID  string     `json:"message_id,omitempty"`
	Recipient  string     `json:"recipient,omitempty"`
	Status     string     `json:"status"`
	ErrorCode  string     `json:"error_code,omitempty"`
	Attempts   int        `json:"attempts,omitempty"`
	NextRetry  *time.Time `json:"next_retry,omitempty"`
	WorkflowID string     `json:"workflow_id,omitempty"`
}

// MessageNotification is the event of a recipient's new status (delivered,
// failed or retrying); ok is false for any other status.
func MessageNotification(messageID string, st RecipientStatus) (n Notification, ok bool) {
	var e WebhookEvent
	switch st.Status {
	case StateDelivered:
		e = EventMessageDelivered
	case StateFailed:
		e = EventMessageFailed
	case StateRetrying:
		e = EventMessageRetrying
	default:
		return n, false
	}
	return Notification{Type: e, Data: NotificationData{MessageID: MessageIDOf(messageID), Recipient: st.Address,
		Status: string(st.Status), ErrorCode: st.ErrorCode, Attempts: st.Attempts, NextRetry: st.NextRetry}}, true
}

// notifyCacheTTL is how long an owner's subscriptions are trusted: a new
// subscription hears of events this long after its creation at the
// latest, and a sender without subscriptions costs one read per TTL.
const (
	notifyCacheTTL     = 5 * time.Second
	notifyCacheEntries = 4096
)

// Notifier turns events into notification tasks, one per subscription that
// asks for the event, through the delivery queue: notifications get the
// retries of deliveries.
type Notifier struct {
	store WebhookStore // nil: no subscriptions, nothing to do
	queue taskEnqueuer
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedWebhooks
}

type cachedWebhooks struct {
	subs []WebhookSubscription
	at   time.Time
}

// NewNotifier builds a Notifier; a nil store notifies nobody.
func NewNotifier(store WebhookStore, queue TaskQueue, now func() time.Time) *Notifier {
	if now == nil {
		now = time.Now
	}
	return &Notifier{store: store, queue: queue, now: now, cache: map[string]cachedWebhooks{}}
}

// Notify queues n for the subscriptions of owner (a local agent's address)
// and the admin's that ask for its type.
func (nf *Notifier) Notify(ctx context.Context, owner string, n Notification) error {
	if nf == nil || nf.store == nil {
		return nil
	}
	var tasks []Task
	for _, o := range []string{"", strings.ToLower(owner)} {
		subs, err := nf.subscriptions(ctx, o)
		if err != nil {
			return err
		}
		for _, s := range subs {
			if s.Wants(n.Type) {
				t, err := nf.task(s, n)
				if err != nil {
					return err
				}
				tasks = append(tasks, t)
			}
		}
		if owner == "" {
			break
		}
	}
	if len(tasks) == 0 {
		return nil
	}
	if err := nf.queue.Enqueue(ctx, tasks...); err != nil {
		return fmt.Errorf("queue %s notifications: %w", n.Type, err)
	}
	return nil
}

// task is the notification task of n to s. Its id is the same for the
// same event, so that queueing it again adds nothing, and the body's id
// (the webhook-id a receiver deduplicates by) derives from it.
func (nf *Notifier) task(s WebhookSubscription, n Notification) (Task, error) {
	subject := n.Data.MessageID
	if subject == "" {
		subject = n.Data.WorkflowID
	}
	id := TaskID(subject, "notify:"+s.ID+":"+string(n.Type)+":"+n.Data.Recipient+":"+strconv.Itoa(n.Data.Attempts))
	sum := sha256.Sum256([]byte(id))
	n.ID = "evt_" + hex.EncodeToString(sum[:12])
	n.Timestamp = nf.now().UTC().Truncate(time.Millisecond)
	body, err := json.Marshal(n)
	if err != nil {
		return Task{}, fmt.Errorf("notification %s: %w", id, err)
	}
	t := Task{ID: id, MessageID: subject, Kind: TaskNotify, Domain: s.ID, Token: string(body), CreatedAt: n.Timestamp}
	if n.Data.Recipient != "" {
		t.Recipients = []string{n.Data.Recipient}
	}
	return t, nil
}

// subscriptions are owner's, read at most once per notifyCacheTTL.
func (nf *Notifier) subscriptions(ctx context.Context, owner string) ([]WebhookSubscription, error) {
	now := nf.now()
	nf.mu.Lock()
	c, ok := nf.cache[owner]
	nf.mu.Unlock()
	if ok && now.Sub(c.at) < notifyCacheTTL {
		return c.subs, nil
	}
	subs, err := nf.store.ListWebhooks(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("subscriptions of %q: %w", owner, err)
	}
	nf.mu.Lock()
	if len(nf.cache) >= notifyCacheEntries {
		clear(nf.cache)
	}
	nf.cache[owner] = cachedWebhooks{subs: subs, at: now}
	nf.mu.Unlock()
	return subs, nil
}

// WorkflowNotification is the event of a workflow's end: workflow.completed,
// workflow.failed or workflow.timed_out.
func WorkflowNotification(st workflow.State) Notification {
	return Notification{Type: WebhookEvent("workflow." + string(st.Status)),
		Data: NotificationData{WorkflowID: st.WorkflowID, Status: string(st.Status)}}
}

// notifySettled queues the events of the recipients an acceptance settled
// itself (pull agents' inboxes). The message is accepted whatever happens
// here: a failure is logged.
func (k *intake) notifySettled(ctx context.Context, d *draft, statuses []RecipientStatus) {
	owner := ""
	if from := d.m.SenderAddress(); k.site.isLocal(from) {
		owner = from.Key()
	}
	for _, st := range statuses {
		if !st.Status.Terminal() {
			continue
		}
		n, _ := MessageNotification(d.m.MessageID, st)
		if err := k.notify.Notify(ctx, owner, n); err != nil {
			k.log.WarnContext(ctx, "could not queue notification", "message_id", d.m.MessageID, "event", string(n.Type), "err", err)
		}
	}
}
