package delivery_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

func TestNewRequiresPorts(t *testing.T) {
	w := newWorld(t)
	_, err := delivery.New(delivery.Config{Domain: "example.org"}, delivery.Deps{Messages: w.db, Inbox: w.db, Agents: w.db, Queue: w.db})
	require.ErrorContains(t, err, "stores, queue and client are required")
	wk, err := delivery.New(delivery.Config{Domain: "example.org"}, delivery.Deps{Messages: w.db, Inbox: w.db, Agents: w.db, Queue: w.db, Client: w.hook.Client()})
	require.NoError(t, err, "everything else has a default")
	id := w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(context.Background(), w.lease(t)))
	assert.Equal(t, gateway.StateDelivered, w.status(t, id, "hook@example.org").Status)
}

// TestLoadFailuresLeaveTheTask: a task whose message or statuses cannot be
// read is neither attempted nor settled: the error returns it to the
// queue, and its next delivery (or poison handling) works.
func TestLoadFailuresLeaveTheTask(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		want   string
		poison bool
	}{
		{"process: read the message", "GetMessage", "load message", false},
		{"process: read the statuses", "GetStatuses", "load status", false},
		{"poison: read the message", "GetMessage", "load message", true},
		{"poison: read the statuses", "GetStatuses", "load status", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			wk := w.worker(t, nil)
			ctx := context.Background()
			id := w.send(t, "hook@example.org")
			task := w.lease(t)
			run := func() error {
				if tc.poison {
					return wk.FailPoison(ctx, task, "crashed its worker")
				}
				return wk.Process(ctx, task)
			}
			w.db.failOn(tc.method, errBackend)
			require.ErrorContains(t, run(), tc.want)
			w.db.heal()
			assert.Equal(t, gateway.StateQueued, w.status(t, id, "hook@example.org").Status, "nothing was recorded")
			assert.Zero(t, w.hookCalls.Load(), "nothing was attempted")

			require.NoError(t, run())
			st := w.status(t, id, "hook@example.org")
			if tc.poison {
				assert.Equal(t, gateway.StateFailed, st.Status)
				assert.Equal(t, "crashed its worker", st.ErrorMessage)
				assert.Equal(t, 1, w.reports(t), "the sender hears of it")
			} else {
				assert.Equal(t, gateway.StateDelivered, st.Status)
			}
		})
	}
}

// TestTasksWithNothingToDo: tasks of messages that are gone, of workflows,
// or whose recipients are settled are dropped without an attempt.
func TestTasksWithNothingToDo(t *testing.T) {
	w := newWorld(t)
	wk := w.worker(t, nil)
	ctx := context.Background()
	gone := gateway.Task{ID: "gone|hook", MessageID: "gone", Kind: gateway.TaskLocal, Recipients: []string{"hook@example.org"}}
	require.NoError(t, w.db.DB.Enqueue(ctx, gone))
	require.NoError(t, wk.Process(ctx, w.lease(t)), "a task of a message that is not stored is dropped")
	assert.Empty(t, w.due(t), "and acknowledged")
	require.NoError(t, wk.FailPoison(ctx, gone, "crashed"))
	require.NoError(t, wk.FailPoison(ctx, gateway.Task{ID: "wf|start", MessageID: "wf", Kind: gateway.TaskWorkflowStart}, "crashed"),
		"a poisoned workflow task has no one to report to")

	id := w.send(t, "hook@example.org")
	task := w.lease(t)
	require.NoError(t, wk.Process(ctx, task))
	require.NoError(t, wk.FailPoison(ctx, task, "crashed"), "a settled task is left alone")
	assert.Equal(t, gateway.StateDelivered, w.status(t, id, "hook@example.org").Status)
	assert.Zero(t, w.reports(t))
	assert.Equal(t, int64(1), w.hookCalls.Load())
}

// TestLocalDeliveryEdges: local deliveries whose agent changed, or whose
// record at this gateway is unusable, and tasks the worker cannot read.
func TestLocalDeliveryEdges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		agent   func(a *gateway.Agent) // changes hook's record before the delivery
		method  string                 // a store method that fails
		task    func(id string) gateway.Task
		want    gateway.State
		code    amtp.Code
		message string
		inbox   int // entries in hook's inbox afterwards
	}{
		{name: "agent switched to pull", agent: func(a *gateway.Agent) { a.DeliveryMode = gateway.ModePull }, want: gateway.StateDelivered, inbox: 1},
		{name: "agent without a delivery mode", agent: func(a *gateway.Agent) { a.DeliveryMode = "" }, want: gateway.StateFailed,
			code: amtp.CodeAgentUnknown, message: "has no delivery mode"},
		{name: "unusable webhook secret", agent: func(a *gateway.Agent) { a.WebhookSecret = "whsec_!!!" }, want: gateway.StateFailed,
			code: amtp.CodeAuthenticationFailed, message: "webhook secret at this gateway is unusable"},
		{name: "unusable webhook URL", agent: func(a *gateway.Agent) { a.WebhookURL = "::no scheme" }, want: gateway.StateFailed,
			code: amtp.CodeRecipientUnavailable, message: "webhook URL is unusable"},
		{name: "agent registry down", method: "GetAgent", want: gateway.StateRetrying, code: amtp.CodeTemporaryFailure, message: "agent registry unavailable"},
		{name: "unknown task kind", task: func(id string) gateway.Task {
			return gateway.Task{ID: id + "|x", MessageID: id, Kind: "carrier-pigeon", Recipients: []string{"hook@example.org"}}
		}, want: gateway.StateFailed, code: amtp.CodeTemporaryFailure, message: "unknown task kind carrier-pigeon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			wk := w.worker(t, nil)
			ctx := context.Background()
			id := w.send(t, "hook@example.org")
			task := w.lease(t)
			if tc.task != nil {
				task = tc.task(id)
			}
			if tc.agent != nil {
				ag, err := w.db.DB.GetAgent(ctx, "hook@example.org")
				require.NoError(t, err)
				tc.agent(ag)
				require.NoError(t, w.db.DB.PutAgent(ctx, ag))
			}
			if tc.method != "" {
				w.db.failOn(tc.method, errBackend)
			}
			require.NoError(t, wk.Process(ctx, task))
			w.db.heal()
			st := w.status(t, id, "hook@example.org")
			assert.Equal(t, tc.want, st.Status)
			assert.Equal(t, string(tc.code), st.ErrorCode)
			assert.Contains(t, st.ErrorMessage, tc.message)
			assert.NotContains(t, st.ErrorMessage, "10.1.2.3")
			assert.Zero(t, w.hookCalls.Load(), "the webhook was not called")
			entries, _, err := w.db.DB.ListInbox(ctx, "hook@example.org", 10, "")
			require.NoError(t, err)
			assert.Len(t, entries, tc.inbox)
		})
	}
}

// TestLocalTaskForAMalformedAddress: a task naming no address fails that
// recipient for good.
func TestLocalTaskForAMalformedAddress(t *testing.T) {
	w := newWorld(t)
	wk := w.worker(t, nil)
	ctx := context.Background()
	id := w.send(t, "hook@example.org")
	require.NoError(t, wk.Process(ctx, gateway.Task{ID: id + "|x", MessageID: id, Kind: gateway.TaskLocal, Recipients: []string{"no-address"}}))
	st := w.status(t, id, "no-address")
	assert.Equal(t, gateway.StateFailed, st.Status)
	assert.Equal(t, string(amtp.CodeInvalidRecipient), st.ErrorCode)
}

// TestInboxWriteFailureLeavesTheTask: a delivery into an inbox that cannot
// be written is not recorded, and the task comes back.
func TestInboxWriteFailureLeavesTheTask(t *testing.T) {
	w := newWorld(t)
	wk := w.worker(t, nil)
	ctx := context.Background()
	id := w.send(t, "hook@example.org")
	task := w.lease(t)
	ag, err := w.db.DB.GetAgent(ctx, "hook@example.org")
	require.NoError(t, err)
	ag.DeliveryMode = gateway.ModePull
	require.NoError(t, w.db.DB.PutAgent(ctx, ag))
	w.db.failOn("DeliverToInbox", errBackend)
	require.ErrorContains(t, wk.Process(ctx, task), "to inbox of hook@example.org")
	w.db.heal()
	assert.Equal(t, gateway.StateQueued, w.status(t, id, "hook@example.org").Status)
	require.NoError(t, wk.Process(ctx, task))
	assert.Equal(t, gateway.StateDelivered, w.status(t, id, "hook@example.org").Status)
}

// TestRemoteDelivery: what becomes of a recipient at another domain for
// each answer of discovery and of the peer gateway. A sender learns the
// kind of failure, never our resolver or the parser's detail.
func TestRemoteDelivery(t *testing.T) {
	accepted := func(body string) func(http.ResponseWriter, *http.Request) {
		return func(rw http.ResponseWriter, _ *http.Request) {
			rw.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(rw, body)
		}
	}
	var peerURL string
	found := func(mutate func(*gateway.Route)) gateway.Discoverer {
		return routeFunc(func(_ context.Context, domain string) (gateway.Route, error) {
			r := gateway.Route{Domain: domain, Found: true, Gateway: peerURL}
			if mutate != nil {
				mutate(&r)
			}
			return r, nil
		})
	}
	for _, tc := range []struct {
		name     string
		discover func() gateway.Discoverer
		signer   delivery.MessageSigner
		peer     func(http.ResponseWriter, *http.Request)
		want     gateway.State
		code     amtp.Code
		message  string
		calls    int
	}{
		{name: "delivered", discover: func() gateway.Discoverer { return found(nil) }, calls: 1, want: gateway.StateDelivered,
			peer: accepted(`{"recipients":[{"address":"carol@remote.example","status":"queued"}]}`)},
		{name: "delivered signed", discover: func() gateway.Discoverer { return found(nil) }, calls: 1, want: gateway.StateDelivered,
			signer: signerFunc(func(raw []byte) ([]byte, error) {
				return append(raw[:len(raw)-1:len(raw)-1], []byte(`,"signature":{"algorithm":"test"}}`)...), nil
			}),
			peer: func(rw http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if !strings.Contains(string(b), `"signature":{"algorithm":"test"}`) {
					rw.WriteHeader(http.StatusBadRequest)
					return
				}
				rw.WriteHeader(http.StatusAccepted)
			}},
		{name: "peer refuses the recipient", discover: func() gateway.Discoverer { return found(nil) }, calls: 1, want: gateway.StateFailed,
			code: amtp.CodeRecipientUnavailable, message: "remote.example refused: no agent carol",
			peer: accepted(`{"recipients":[{"address":"CAROL@remote.example","status":"failed","error_message":"no agent carol"}]}`)},
		{name: "no discovery", want: gateway.StateRetrying, code: amtp.CodeTemporaryFailure, message: "discovery is not configured"},
		{name: "lookup fails", discover: func() gateway.Discoverer {
			return routeFunc(func(context.Context, string) (gateway.Route, error) {
				return gateway.Route{}, fmt.Errorf("lookup _amtp.remote.example on 10.1.2.3:53: i/o timeout")
			})
		}, want: gateway.StateRetrying, code: amtp.CodeTemporaryFailure, message: "could not be looked up in DNS"},
		{name: "no AMTP record", discover: func() gateway.Discoverer { return found(func(r *gateway.Route) { r.Found = false }) },
			want: gateway.StateFailed, code: amtp.CodeRecipientNotFound, message: "has no AMTP gateway"},
		{name: "only mail exchangers", discover: func() gateway.Discoverer {
			return found(func(r *gateway.Route) { r.Found, r.MX = false, []string{"mx.remote.example"} })
		}, want: gateway.StateFailed, code: amtp.CodeRecipientNotFound, message: "does not bridge to email"},
		{name: "unusable record", discover: func() gateway.Discoverer {
			return found(func(r *gateway.Route) { r.Found, r.Invalid = false, "discovery: gateway= is not https (10.1.2.3)" })
		}, want: gateway.StateFailed, code: amtp.CodeRecipientNotFound, message: "publishes an unusable AMTP record"},
		{name: "cannot sign", discover: func() gateway.Discoverer { return found(nil) },
			signer: signerFunc(func([]byte) ([]byte, error) { return nil, errBackend }),
			want:   gateway.StateRetrying, code: amtp.CodeTemporaryFailure, message: "could not sign"},
		{name: "too large for the peer", discover: func() gateway.Discoverer { return found(func(r *gateway.Route) { r.MaxSize = 10 }) },
			want: gateway.StateFailed, code: amtp.CodeMessageTooLarge, message: "remote.example accepts at most 10"},
		{name: "unusable gateway URL", discover: func() gateway.Discoverer {
			return found(func(r *gateway.Route) { r.Gateway = "ftp://gw.remote.example" })
		},
			want: gateway.StateFailed, code: amtp.CodeRecipientNotFound, message: "gateway URL of remote.example is unusable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var mu sync.Mutex
			peer := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls++
				mu.Unlock()
				tc.peer(rw, r)
			}))
			defer peer.Close()
			peerURL = peer.URL
			w := newWorld(t)
			wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
				if tc.discover != nil {
					d.Discover = tc.discover()
				}
				d.Signer = tc.signer
			})
			id := w.send(t, "carol@remote.example")
			require.NoError(t, wk.Process(context.Background(), w.lease(t)))
			st := w.status(t, id, "carol@remote.example")
			assert.Equal(t, tc.want, st.Status)
			assert.Equal(t, string(tc.code), st.ErrorCode)
			assert.Contains(t, st.ErrorMessage, tc.message)
			assert.NotContains(t, st.ErrorMessage, "10.1.2.3")
			mu.Lock()
			assert.Equal(t, tc.calls, calls, "POSTs to the peer")
			mu.Unlock()
			wantReports := 0
			if tc.want == gateway.StateFailed {
				wantReports = 1
			}
			assert.Equal(t, wantReports, w.reports(t))
		})
	}
}

// TestRemoteForwardsOnlyOurMail: a remote task for a message another
// domain wrote (which accept never queues: we do not relay) fails rather
// than sign another domain's mail.
func TestRemoteForwardsOnlyOurMail(t *testing.T) {
	w := newWorld(t)
	wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
		d.Discover = routeFunc(func(_ context.Context, domain string) (gateway.Route, error) {
			return gateway.Route{Domain: domain, Found: true, Gateway: "https://gw.remote.example"}, nil
		})
	})
	ctx := context.Background()
	res, err := w.svc.Accept(ctx, gateway.Principal{Kind: gateway.Anonymous},
		[]byte(`{"version":"1.0","sender":"zed@other.example","recipients":["bob@example.org"],"payload":{}}`))
	require.NoError(t, err)
	stored := gateway.StorageID(res.MessageID, gateway.OriginRemote, []string{"bob@example.org"})
	require.NoError(t, wk.Process(ctx, gateway.Task{ID: stored + "|x", MessageID: stored, Kind: gateway.TaskRemote,
		Recipients: []string{"carol@remote.example"}, Domain: "remote.example"}))
	st := w.status(t, stored, "carol@remote.example")
	assert.Equal(t, gateway.StateFailed, st.Status)
	assert.Equal(t, string(amtp.CodeForbidden), st.ErrorCode)
	assert.Contains(t, st.ErrorMessage, "refusing to forward a message from other.example")
}

// TestWorkflowTaskSettlement: the worker settles a workflow task by the
// driver's answer: done is acknowledged, a time asks for the task back
// then, an error retries with backoff until the retry window is over, and
// without a driver the task is a dead letter.
func TestWorkflowTaskSettlement(t *testing.T) {
	for _, tc := range []struct {
		name       string
		driver     *driver
		old        bool   // the task was created before the retry window
		method     string // a queue method that fails
		wantErr    string
		dead       string // the dead letter's message
		dueAt      time.Duration
		wantAttemp int
	}{
		{name: "no driver", dead: "no workflow driver configured"},
		{name: "done", driver: &driver{}},
		{name: "asks back later", driver: &driver{again: time.Date(2026, 4, 1, 12, 10, 0, 0, time.UTC)}, dueAt: 10 * time.Minute},
		{name: "fails", driver: &driver{err: errBackend}, dueAt: 2 * time.Second, wantAttemp: 1},
		{name: "fails past the retry window", driver: &driver{err: errBackend}, old: true, dead: "connection refused"},
		{name: "retry not scheduled", driver: &driver{err: errBackend}, method: "Retry", wantErr: "schedule retry"},
		{name: "come-back not scheduled", driver: &driver{again: time.Date(2026, 4, 1, 12, 10, 0, 0, time.UTC)}, method: "Retry", wantErr: "reschedule"},
		{name: "ack fails", driver: &driver{}, method: "Ack", wantErr: "ack wf-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
				if tc.driver != nil {
					d.Workflows = tc.driver
				}
			})
			created := w.clock.Now()
			if tc.old {
				created = created.Add(-8 * 24 * time.Hour)
			}
			require.NoError(t, w.db.DB.Enqueue(ctx, gateway.Task{ID: "wf-1|workflow-start", MessageID: "wf-1", Kind: gateway.TaskWorkflowStart, CreatedAt: created}))
			task := w.lease(t)
			if tc.method != "" {
				w.db.failOn(tc.method, errBackend)
			}
			err := wk.Process(ctx, task)
			w.db.heal()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			dead, err := w.db.DB.DeadLetters(ctx, 10)
			require.NoError(t, err)
			if tc.dead != "" {
				require.Len(t, dead, 1)
				assert.Equal(t, string(amtp.CodeTemporaryFailure), dead[0].FailureReason)
				assert.Contains(t, dead[0].ErrorMessage, tc.dead)
				return
			}
			assert.Empty(t, dead)
			assert.Empty(t, w.due(t), "nothing is due now")
			if tc.dueAt == 0 {
				w.clock.Add(24 * time.Hour)
				assert.Empty(t, w.due(t), "the task is done")
				return
			}
			w.clock.Add(tc.dueAt)
			again := w.due(t)
			require.Len(t, again, 1, "due again")
			assert.Equal(t, tc.wantAttemp, again[0].Attempt)
		})
	}
}

// TestSettlementFailures: when the outcome of an attempt cannot be
// recorded, or the task not settled, Process fails so that the task comes
// back; the next copy finds the recorded outcome and finishes the job
// without delivering twice.
func TestSettlementFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settler  bool // the queue also stores the statuses (one write)
		status   int  // the webhook's answer
		method   string
		wantErr  string
		want     gateway.State
		attempts int64 // webhook calls over both copies
	}{
		{"retry, one write", true, http.StatusServiceUnavailable, "UpdateAndRetry", "record retry", gateway.StateRetrying, 2},
		{"retry, statuses", false, http.StatusServiceUnavailable, "UpdateStatuses", "record retry", gateway.StateRetrying, 2},
		{"retry, queue", false, http.StatusServiceUnavailable, "Retry", "schedule retry", gateway.StateRetrying, 1},
		{"delivered, one write", true, http.StatusOK, "UpdateAndAck", "record outcome", gateway.StateDelivered, 2},
		{"delivered, statuses", false, http.StatusOK, "UpdateStatuses", "record outcome", gateway.StateDelivered, 2},
		{"delivered, ack", false, http.StatusOK, "Ack", "ack", gateway.StateDelivered, 1},
		{"failed, dead letter", true, http.StatusGone, "DeadLetter", "dead-letter", gateway.StateFailed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.hookStatus.Store(int64(tc.status))
			wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
				if !tc.settler {
					d.Queue = queueOnly{w.db}
				}
			})
			ctx := context.Background()
			id := w.send(t, "hook@example.org")
			task := w.lease(t)
			w.db.failOn(tc.method, errBackend)
			require.ErrorContains(t, wk.Process(ctx, task), tc.wantErr)
			w.db.heal()
			require.NoError(t, wk.Process(ctx, task), "the task's next copy")
			assert.Equal(t, tc.want, w.status(t, id, "hook@example.org").Status)
			assert.Equal(t, tc.attempts, w.hookCalls.Load())
		})
	}
}

// TestStaleCopyIsRescheduled: a copy of a task whose retry is already
// recorded goes back to the queue for that time instead of attempting
// early; should that fail too, the copy comes back again.
func TestStaleCopyIsRescheduled(t *testing.T) {
	w := newWorld(t)
	w.hookStatus.Store(http.StatusServiceUnavailable)
	wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) { d.Queue = queueOnly{w.db} })
	ctx := context.Background()
	id := w.send(t, "hook@example.org", "bob@example.org")
	task := w.lease(t)
	w.db.failOn("Retry", errBackend)
	require.ErrorContains(t, wk.Process(ctx, task), "schedule retry")
	require.ErrorContains(t, wk.Process(ctx, task), "reschedule stale copy")
	w.db.heal()
	require.NoError(t, wk.Process(ctx, task))
	assert.Equal(t, int64(1), w.hookCalls.Load(), "no early second attempt")
	st := w.status(t, id, "hook@example.org")
	require.NotNil(t, st.NextRetry)
	assert.Empty(t, w.due(t))
	w.clock.Add(time.Hour)
	require.Len(t, w.due(t), 1, "due at the recorded retry")
}

// TestTransientFailureGivesUpAfterTheWindow: a transient failure after
// the retry window becomes final, with a report to the sender.
func TestTransientFailureGivesUpAfterTheWindow(t *testing.T) {
	w := newWorld(t)
	w.hookStatus.Store(http.StatusServiceUnavailable)
	wk := w.worker(t, nil)
	id := w.send(t, "hook@example.org")
	task := w.lease(t)
	task.CreatedAt = w.clock.Now().Add(-8 * 24 * time.Hour)
	require.NoError(t, wk.Process(context.Background(), task))
	st := w.status(t, id, "hook@example.org")
	assert.Equal(t, gateway.StateFailed, st.Status)
	assert.Equal(t, string(amtp.CodeRecipientUnavailable), st.ErrorCode)
	assert.Contains(t, st.ErrorMessage, "gave up after 1 attempts")
	assert.Equal(t, 1, w.reports(t))
}

// TestWorkflowHearsOfUndeliverableParticipant: a participant of one of our
// workflows that cannot be delivered to is reported to the driver before
// the outcome is recorded; when that fails the task comes back.
func TestWorkflowHearsOfUndeliverableParticipant(t *testing.T) {
	w := newWorld(t)
	w.hookStatus.Store(http.StatusGone)
	d := &driver{failErr: errBackend}
	wk := w.worker(t, func(_ *delivery.Config, deps *delivery.Deps) { deps.Workflows = d })
	ctx := context.Background()
	id := w.sendBody(t, `{"version":"1.0","sender":"alice@example.org","recipients":["hook@example.org"],"coordination":{"type":"parallel","timeout":60},"payload":{}}`)
	start := w.lease(t)
	_, err := w.svc.HandleWorkflowTask(ctx, start)
	require.NoError(t, err)
	require.NoError(t, w.db.DB.Ack(ctx, start))
	task := w.lease(t)
	require.Equal(t, gateway.TaskLocal, task.Kind)

	require.ErrorContains(t, wk.Process(ctx, task), "tell workflow "+id)
	assert.Equal(t, gateway.StateQueued, w.status(t, id, "hook@example.org").Status, "not recorded before the workflow knows")
	d.failErr = nil
	require.NoError(t, wk.Process(ctx, task))
	assert.Equal(t, []string{"hook@example.org"}, d.failed)
	assert.Equal(t, gateway.StateFailed, w.status(t, id, "hook@example.org").Status)
}

// TestDeliverNowWithoutTheAcceptedMessage: the Immediate Path handed no
// message reads it from the store; its failure is recorded and left for
// the queue's copy to retry.
func TestDeliverNowWithoutTheAcceptedMessage(t *testing.T) {
	for _, tc := range []struct {
		status    int
		delivered bool
		want      gateway.State
	}{{http.StatusOK, true, gateway.StateDelivered}, {http.StatusServiceUnavailable, false, gateway.StateRetrying}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			w := newWorld(t)
			w.hookStatus.Store(int64(tc.status))
			wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) { d.Queue = queueOnly{w.db} })
			id := w.send(t, "hook@example.org")
			task := w.lease(t)
			res, err := wk.DeliverNow(context.Background(), task, gateway.Accepted{})
			require.NoError(t, err)
			assert.Equal(t, tc.delivered, res.Delivered)
			require.Len(t, res.Recorded, 1)
			assert.Equal(t, tc.want, res.Recorded[0].Status)
			assert.Equal(t, tc.want, w.status(t, id, "hook@example.org").Status)
		})
	}
}

func TestIsReport(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    amtp.Message
		want bool
	}{
		{"from postmaster", amtp.Message{Sender: "Postmaster@example.org"}, true},
		{"report header", amtp.Message{Sender: "alice@example.org", Headers: map[string]string{"amtp-report": "delivery_failure"}}, true},
		{"other header", amtp.Message{Sender: "alice@example.org", Headers: map[string]string{"amtp-report": "read"}}, false},
		{"ordinary", amtp.Message{Sender: "alice@example.org"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, delivery.IsReport(&tc.m))
		})
	}
}

// TestRunReceivesOnlyWhatItHasSlotsFor: Run never leases more tasks than
// it has free delivery slots, delivers everything, and keeps going after
// the queue failed to answer.
func TestRunReceivesOnlyWhatItHasSlotsFor(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		<-release
		rw.WriteHeader(http.StatusOK)
	}))
	defer slow.Close()
	require.NoError(t, w.db.DB.PutAgent(ctx, pushAgent("slow@example.org", slow.URL, w.clock.Now().Add(-time.Hour))))
	a, b := w.send(t, "slow@example.org"), w.send(t, "slow@example.org")

	q := &countingQueue{TaskQueue: w.db, first: errBackend}
	q.onReceive = func() {
		// Both delivered: nothing is left to do.
		if w.status(t, a, "slow@example.org").Status == gateway.StateDelivered && w.status(t, b, "slow@example.org").Status == gateway.StateDelivered {
			cancel()
		}
		// One in flight and none free: let it finish.
		once.Do(func() { go func() { time.Sleep(50 * time.Millisecond); close(release) }() })
	}
	wk := w.worker(t, func(c *delivery.Config, d *delivery.Deps) { c.Concurrency, d.Queue = 1, q })
	require.NoError(t, wk.Run(ctx))
	assert.Equal(t, gateway.StateDelivered, w.status(t, a, "slow@example.org").Status)
	assert.Equal(t, gateway.StateDelivered, w.status(t, b, "slow@example.org").Status)
	q.mu.Lock()
	defer q.mu.Unlock()
	assert.LessOrEqual(t, q.maxAsked, 1, "never more than the free slots")
	assert.Contains(t, w.logs.String(), "receive tasks", "the failed receive was logged")
}

// countingQueue records what Run asks of the queue; its first Receive
// answers first, and onReceive runs before every other.
type countingQueue struct {
	gateway.TaskQueue
	mu        sync.Mutex
	calls     int
	maxAsked  int
	first     error
	onReceive func()
}

func (q *countingQueue) Receive(ctx context.Context, limit int, _ time.Duration) ([]gateway.Task, error) {
	q.mu.Lock()
	q.calls++
	q.maxAsked = max(q.maxAsked, limit)
	first := q.calls == 1
	q.mu.Unlock()
	if first && q.first != nil {
		return nil, q.first
	}
	q.onReceive()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return q.TaskQueue.Receive(ctx, limit, 10*time.Millisecond)
}

// corruptMessages is a store whose stored messages no longer parse.
type corruptMessages struct{ *flakyStore }

func (c corruptMessages) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	sm, err := c.flakyStore.GetMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	bad := *sm
	bad.Raw = []byte(`{"version":"1.0","sender":`)
	return &bad, nil
}

// TestCorruptStoredMessage: a stored message that does not parse is
// neither delivered nor failed: the error keeps the task for an operator.
func TestCorruptStoredMessage(t *testing.T) {
	w := newWorld(t)
	wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) { d.Messages = corruptMessages{w.db} })
	ctx := context.Background()
	id := w.send(t, "hook@example.org")
	task := w.lease(t)
	require.ErrorContains(t, wk.Process(ctx, task), "does not parse")
	require.ErrorContains(t, wk.FailPoison(ctx, task, "crashed"), "does not parse")
	assert.Equal(t, gateway.StateQueued, w.status(t, id, "hook@example.org").Status)
	assert.Zero(t, w.hookCalls.Load())
}
