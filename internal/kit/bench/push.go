package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentry/agentry/internal/kit/bench/floor"
	"github.com/agentry/agentry/internal/kit/bench/load"
	"github.com/agentry/agentry/internal/kit/bench/report"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

// webhook is a push agent on loopback: it reads each delivery, notes when
// it arrived, and answers 200. Whoever sent a message waits for its
// message_id (the webhook-id header) here.
type webhook struct {
	srv *floor.Server
	URL string

	mu      sync.Mutex
	waiting map[string]*arrival

	received  atomic.Int64
	unmatched atomic.Int64 // deliveries nobody waited for (any more)
}

func startWebhook() (*webhook, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w := &webhook{waiting: map[string]*arrival{}}
	w.srv = floor.Serve(l, http.HandlerFunc(w.serve))
	w.URL = w.srv.URL + "/hook"
	return w, nil
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	_, err := io.Copy(io.Discard, io.LimitReader(r.Body, floor.MaxBodyBytes))
	at := time.Now() // received: the whole body is in
	if err != nil {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	w.received.Add(1)
	id := r.Header.Get(delivery.HeaderWebhookID)
	w.mu.Lock()
	a := w.waiting[id]
	done := false
	if a != nil {
		a.left--
		done = a.left == 0
		if done {
			delete(w.waiting, id)
		}
	}
	w.mu.Unlock()
	switch {
	case a == nil:
		w.unmatched.Add(1)
	case done:
		a.ch <- at
	}
	rw.WriteHeader(http.StatusOK)
}

// arrival is a message waited for: how many deliveries of it (one per
// recipient) are still to come, and where the last one's time goes.
type arrival struct {
	left int
	ch   chan time.Time
}

// expect registers interest in n deliveries of a message before it is
// sent; the channel receives the time the last of them arrived.
func (w *webhook) expect(id string, n int) <-chan time.Time {
	a := &arrival{left: n, ch: make(chan time.Time, 1)}
	w.mu.Lock()
	w.waiting[id] = a
	w.mu.Unlock()
	return a.ch
}

func (w *webhook) forget(id string) {
	w.mu.Lock()
	delete(w.waiting, id)
	w.mu.Unlock()
}

func (w *webhook) Close() error { return w.srv.Close() }

// deliveryOp submits a message and waits until the webhook has it; the
// latency is from just before the POST to the webhook having read the
// whole delivery. The loop is closed on delivery, so the queue never
// grows beyond the concurrency and latency is not queueing behind an
// ever-growing backlog.
func deliveryOp(client *http.Client, url, key string, msgs *messages, hook *webhook, timeout time.Duration) load.Op {
	return func(ctx context.Context, _, seq int) (time.Duration, error) {
		id, body := msgs.Make(seq)
		arrived := hook.expect(id, msgs.count)
		req, err := post(url, key, body)
		if err != nil {
			hook.forget(id)
			return 0, err
		}
		start := time.Now()
		resp, err := client.Do(req.WithContext(ctx)) //nolint:bodyclose // load.CheckResponse closes it
		if err == nil {
			err = load.CheckResponse(resp)
		}
		if err != nil {
			hook.forget(id)
			return 0, err
		}
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case at := <-arrived:
			return max(at.Sub(start), time.Nanosecond), nil
		case <-timer.C:
			hook.forget(id)
			return 0, fmt.Errorf("message %s accepted but not delivered within %v", id, timeout)
		case <-ctx.Done():
			hook.forget(id)
			return 0, ctx.Err()
		}
	}
}

// deliver runs the closed loop of deliveryOp after one message made it
// through (so that a broken set-up fails fast with a clear error).
func (r *run) deliver(ctx context.Context, section, url, key string, msgs *messages, hook *webhook) error {
	res, err := r.measureDelivery(ctx, section, url, key, msgs, hook)
	if err != nil {
		return err
	}
	r.addLatency(section, "delivered", "msg/s", res, report.RatioAtLeast(deliverRatioTarget), report.AtMost(deliverP99TargetMS))
	if n := hook.unmatched.Load(); n > 0 {
		r.rep.Note("%s: the webhook received %d deliveries nobody waited for (late after a timeout, or duplicates)", section, n)
	}
	return nil
}

func (r *run) measureDelivery(ctx context.Context, section, url, key string, msgs *messages, hook *webhook) (load.Result, error) {
	client := load.NewClient(r.o.Concurrency)
	defer client.CloseIdleConnections()
	op := deliveryOp(client, url, key, msgs, hook, r.o.DeliveryTimeout)
	if _, err := op(ctx, 0, -1); err != nil {
		return load.Result{}, fmt.Errorf("first delivery: %w", err)
	}
	return r.measure(ctx, section, r.loadConfig(), op)
}

// push: a sender agent and a push agent on one gateway. The gateway makes
// the first attempt inside the request (the Immediate Path), so the 202
// comes after the webhook answered.
func (r *run) push(ctx context.Context) (err error) {
	dir, err := r.scenarioDir(Push)
	if err != nil {
		return err
	}
	hook, err := startWebhook()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, hook.Close()) }()
	// Loopback webhooks need AGENTRY_ALLOW_INSECURE=1; nothing else
	// differs from `make run`.
	gw, err := r.startGateway(Push, dir, "localhost", map[string]string{"AGENTRY_ALLOW_INSECURE": "1"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, gw.stop()) }()
	alice, err := register(gw.url, gw.adminKey, "alice", "pull", "")
	if err != nil {
		return err
	}
	if _, err := register(gw.url, gw.adminKey, "carol", "push", hook.URL); err != nil {
		return err
	}
	msgs := newMessages("alice@localhost", "carol@localhost", r.o.PayloadBytes)
	return r.deliver(ctx, Push, gw.url+"/v1/messages", alice, msgs, hook)
}

// federation: alice@a.test sends to carol@b.test, a push agent. a.test
// accepts (202 queued), its worker finds b.test in DNS, signs and hands
// the message over; b.test verifies the signature with the key it looks
// up in DNS, accepts, and its worker calls carol's webhook.
func (r *run) federation(ctx context.Context) (err error) {
	hook, err := startWebhook()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, hook.Close()) }()
	insecure := map[string]string{"AGENTRY_ALLOW_INSECURE": "1"}
	var gws []*gateway
	defer func() {
		for _, g := range gws {
			err = errors.Join(err, g.stop())
		}
	}()
	for _, domain := range []string{"a.test", "b.test"} {
		dir, err := r.scenarioDir(Federation + "-" + domain)
		if err != nil {
			return err
		}
		g, err := r.startGateway(Federation+"-"+domain, dir, domain, insecure)
		if err != nil {
			return err
		}
		gws = append(gws, g)
		if err := g.publish(r.dns); err != nil {
			return err
		}
	}
	a, b := gws[0], gws[1]
	alice, err := register(a.url, a.adminKey, "alice", "pull", "")
	if err != nil {
		return err
	}
	if _, err := register(b.url, b.adminKey, "carol", "push", hook.URL); err != nil {
		return err
	}
	msgs := newMessages("alice@a.test", "carol@b.test", r.o.PayloadBytes)
	if err := r.federationFloor(ctx, msgs, hook); err != nil {
		return err
	}
	res, err := r.measureDelivery(ctx, Federation, a.url+"/v1/messages", alice, msgs, hook)
	if err != nil {
		return err
	}
	r.addLatencyAgainst(Federation, "delivered", "msg/s", FederationFloor+"/delivered", res,
		report.RatioAtLeast(federationRatioTarget), report.AtMost(deliverP99TargetMS))
	// Fan-out: two recipients at one domain leave a.test as two signed
	// single-recipient deliveries (draft §9.3.3). The op waits for both;
	// a message per second here is two deliveries.
	if _, err := register(b.url, b.adminKey, "dave", "push", hook.URL); err != nil {
		return err
	}
	pair := newMessages("alice@a.test", "carol@b.test", r.o.PayloadBytes).also("dave@b.test")
	res, err = r.measureDelivery(ctx, FederationPair, a.url+"/v1/messages", alice, pair, hook)
	if err != nil {
		return err
	}
	// No target: the row shows what fan-out costs next to federation's.
	r.addLatencyAgainst(FederationPair, "delivered to both", "msg/s", FederationFloor+"/delivered", res, nil, nil)
	return nil
}

// federationFloor measures the relay floor with the same messages and
// webhook as federation, just before it.
func (r *run) federationFloor(ctx context.Context, msgs *messages, hook *webhook) (err error) {
	client := load.NewClient(r.o.Concurrency)
	defer client.CloseIdleConnections()
	relay, err := floor.StartRelay(hook.URL, client)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, relay.Close()) }()
	res, err := r.measureDelivery(ctx, FederationFloor, relay.URL, "", msgs, hook)
	if err != nil {
		return err
	}
	r.addLatency(FederationFloor, "delivered", "msg/s", res, nil, nil)
	return nil
}
