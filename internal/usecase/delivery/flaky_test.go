package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// errBackend is what a store says when its backend is down.
var errBackend = errors.New("dial tcp 10.1.2.3:8000: connection refused")

// flakyStore is the embedded store with failures injected per method, as
// an outage of the backend produces them; every other call goes through.
type flakyStore struct {
	*pebblestore.DB
	mu   sync.Mutex
	fail map[string]error
}

func (f *flakyStore) failOn(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

func (f *flakyStore) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.fail)
}

func (f *flakyStore) failure(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[method]
}

func (f *flakyStore) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	if err := f.failure("GetMessage"); err != nil {
		return nil, err
	}
	return f.DB.GetMessage(ctx, id)
}

func (f *flakyStore) GetStatuses(ctx context.Context, id string) ([]gateway.RecipientStatus, error) {
	if err := f.failure("GetStatuses"); err != nil {
		return nil, err
	}
	return f.DB.GetStatuses(ctx, id)
}

func (f *flakyStore) UpdateStatuses(ctx context.Context, id string, updates []gateway.RecipientStatus) error {
	if err := f.failure("UpdateStatuses"); err != nil {
		return err
	}
	return f.DB.UpdateStatuses(ctx, id, updates)
}

func (f *flakyStore) DeliverToInbox(ctx context.Context, recipient, messageID string, status gateway.RecipientStatus) error {
	if err := f.failure("DeliverToInbox"); err != nil {
		return err
	}
	return f.DB.DeliverToInbox(ctx, recipient, messageID, status)
}

func (f *flakyStore) GetAgent(ctx context.Context, address string) (*gateway.Agent, error) {
	if err := f.failure("GetAgent"); err != nil {
		return nil, err
	}
	return f.DB.GetAgent(ctx, address)
}

func (f *flakyStore) Receive(ctx context.Context, limit int, wait time.Duration) ([]gateway.Task, error) {
	if err := f.failure("Receive"); err != nil {
		return nil, err
	}
	return f.DB.Receive(ctx, limit, wait)
}

func (f *flakyStore) Ack(ctx context.Context, t gateway.Task) error {
	if err := f.failure("Ack"); err != nil {
		return err
	}
	return f.DB.Ack(ctx, t)
}

func (f *flakyStore) Retry(ctx context.Context, t gateway.Task, at time.Time) error {
	if err := f.failure("Retry"); err != nil {
		return err
	}
	return f.DB.Retry(ctx, t, at)
}

func (f *flakyStore) DeadLetter(ctx context.Context, t gateway.Task, d gateway.DeadLetter) error {
	if err := f.failure("DeadLetter"); err != nil {
		return err
	}
	return f.DB.DeadLetter(ctx, t, d)
}

func (f *flakyStore) UpdateAndAck(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task) error {
	if err := f.failure("UpdateAndAck"); err != nil {
		return err
	}
	return f.DB.UpdateAndAck(ctx, messageID, updates, t)
}

func (f *flakyStore) UpdateAndRetry(ctx context.Context, messageID string, updates []gateway.RecipientStatus, t gateway.Task, at time.Time) error {
	if err := f.failure("UpdateAndRetry"); err != nil {
		return err
	}
	return f.DB.UpdateAndRetry(ctx, messageID, updates, t, at)
}

// queueOnly hides that the store can also settle tasks with their
// statuses (gateway.Settler), as a queue apart from the message store
// (SQS next to DynamoDB) cannot.
type queueOnly struct{ gateway.TaskQueue }

// testClock is the clock of the worker, the service and the store.
type testClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.at }

func (c *testClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.at = c.at.Add(d) }

// syncBuffer is a log sink safe for the worker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// world is a gateway for example.org on a flakyStore: alice and bob pull
// agents, hook a push agent whose webhook answers hookStatus.
type world struct {
	db         *flakyStore
	svc        *gateway.Service
	clock      *testClock
	logs       *syncBuffer
	hook       *httptest.Server
	hookStatus atomic.Int64
	hookCalls  atomic.Int64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{clock: &testClock{at: time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	w.hookStatus.Store(http.StatusOK)
	w.hook = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		w.hookCalls.Add(1)
		rw.WriteHeader(int(w.hookStatus.Load()))
	}))
	t.Cleanup(w.hook.Close)
	edb, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: w.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = edb.Close() })
	w.db = &flakyStore{DB: edb, fail: map[string]error{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.svc, err = gateway.NewService(gateway.Config{Domain: "example.org", AllowInsecure: true, Now: w.clock.Now, Logger: quiet},
		gateway.Ports{Messages: edb, Inbox: edb, Agents: edb, Queue: edb, Workflows: edb})
	require.NoError(t, err)
	created := w.clock.Now().Add(-time.Hour)
	for _, name := range []string{"alice", "bob"} {
		require.NoError(t, edb.PutAgent(ctx, &gateway.Agent{Address: name + "@example.org", DeliveryMode: gateway.ModePull, CreatedAt: created}))
	}
	require.NoError(t, edb.PutAgent(ctx, pushAgent("hook@example.org", w.hook.URL, created)))
	return w
}

// worker builds a Worker on the world's store; mutate adjusts its
// configuration and ports.
func (w *world) worker(t *testing.T, mutate func(*delivery.Config, *delivery.Deps)) *delivery.Worker {
	t.Helper()
	cfg := delivery.Config{Domain: "example.org", Now: w.clock.Now, Logger: slog.New(slog.NewJSONHandler(w.logs, nil))}
	deps := delivery.Deps{Messages: w.db, Inbox: w.db, Agents: w.db, Queue: w.db, Reporter: w.svc, Client: w.hook.Client()}
	if mutate != nil {
		mutate(&cfg, &deps)
	}
	wk, err := delivery.New(cfg, deps)
	require.NoError(t, err)
	return wk
}

// send has alice send a message to recipients and returns its id.
func (w *world) send(t *testing.T, recipients ...string) string {
	t.Helper()
	return w.sendBody(t, `{"version":"1.0","sender":"alice@example.org","recipients":`+jsonList(recipients)+`,"subject":"hi","payload":{"n":1}}`)
}

func (w *world) sendBody(t *testing.T, body string) string {
	t.Helper()
	res, err := w.svc.Accept(context.Background(), gateway.Principal{Kind: gateway.AdminCaller}, []byte(body))
	require.NoError(t, err)
	return res.MessageID
}

// lease receives the one task that is due.
func (w *world) lease(t *testing.T) gateway.Task {
	t.Helper()
	tasks, err := w.db.DB.Receive(context.Background(), 10, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	return tasks[0]
}

// due lists the tasks due at the world's time, leasing them.
func (w *world) due(t *testing.T) []gateway.Task {
	t.Helper()
	tasks, err := w.db.DB.Receive(context.Background(), 10, 0)
	require.NoError(t, err)
	return tasks
}

// status is the stored status of one recipient of message id.
func (w *world) status(t *testing.T, id, recipient string) gateway.RecipientStatus {
	t.Helper()
	st, err := w.db.DB.GetStatuses(context.Background(), id)
	require.NoError(t, err)
	for _, s := range st {
		if s.Address == recipient {
			return s
		}
	}
	t.Fatalf("%s has no status for %s: %+v", id, recipient, st)
	return gateway.RecipientStatus{}
}

// reports are the failure reports in alice's inbox.
func (w *world) reports(t *testing.T) int {
	t.Helper()
	entries, _, err := w.db.DB.ListInbox(context.Background(), "alice@example.org", 50, "")
	require.NoError(t, err)
	return len(entries)
}

func jsonList(items []string) string {
	out := "["
	for i, s := range items {
		if i > 0 {
			out += ","
		}
		out += `"` + s + `"`
	}
	return out + "]"
}

// routeFunc adapts a function to the Discoverer port.
type routeFunc func(ctx context.Context, domain string) (gateway.Route, error)

func (f routeFunc) Discover(ctx context.Context, domain string) (gateway.Route, error) {
	return f(ctx, domain)
}

// signerFunc adapts a function to the MessageSigner port.
type signerFunc func(raw []byte) ([]byte, error)

func (f signerFunc) SignMessage(_ context.Context, raw []byte) ([]byte, error) { return f(raw) }

// driver is a test double of the worker's Workflows port.
type driver struct {
	mu      sync.Mutex
	again   time.Time
	err     error
	handled []gateway.Task
	failed  []string // recipients reported as undeliverable
	failErr error
}

func (d *driver) HandleWorkflowTask(_ context.Context, t gateway.Task) (time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handled = append(d.handled, t)
	return d.again, d.err
}

func (d *driver) WorkflowDeliveryFailed(_ context.Context, _ string, recipients []string, _ amtp.Code, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failErr != nil {
		return d.failErr
	}
	d.failed = append(d.failed, recipients...)
	return nil
}
