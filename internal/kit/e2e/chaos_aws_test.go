package e2e

// Chaos on the AWS runtime (issue 19, item 10): the gateway on its AWS
// adapters against moto, under load, while AWS fails in the ways it does
// fail: unreachable for seconds, throttling, and the deliver function dying
// between the agent's answer and the acknowledgement of the task. Each test
// prints its figures (answered, delivered, duplicated, lost) and asserts
// that nothing answered 202 is lost and that every duplicate is explained:
// an identical copy (same bytes, same webhook-id = message_id, so the
// receiver can de-duplicate) of a task that came back between the two
// deliveries because a write about it failed or SQS handed it out again
// (awsFaults.explains). The figures show with -v, e.g.
// go test -v -run TestChaosAWS ./internal/kit/e2e/
//
// moto keeps its state in memory and has no persistence option (its
// recorder replays requests, which cannot reproduce receipt handles or
// visibility), so a killed moto comes back empty: not an AWS failure. The
// outage is made instead by a TCP proxy between the gateway and moto.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chaosRecipients: every third message goes to bob alone (the Immediate
// Path: delivered inside the request, its task queued as a backstop), the
// others to bob and carol (the durable path through SQS).
func chaosRecipients(i int) []string {
	if i%3 == 0 {
		return []string{chaosBob}
	}
	return []string{chaosBob, chaosCarol}
}

// TestChaosAWSUnavailable: AWS becomes unreachable in the middle of a load
// of sends and deliveries, for a few seconds, and comes back: its endpoint
// refusing connections, or swallowing them (a blackhole). Every send made
// while it is away answers 503 with Retry-After (never 202, never 500, and
// never hangs for the whole outage), and everything answered 202 is
// delivered once it is back.
func TestChaosAWSUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode outage
	}{
		{"connections refused", outageRefused},
		{"blackhole", outageBlackhole},
	} {
		t.Run(tc.name, func(t *testing.T) { testChaosAWSUnavailable(t, tc.mode) })
	}
}

func testChaosAWSUnavailable(t *testing.T, mode outage) {
	// Calls are bounded at 3 s (10 s by default), so that an outage of a
	// few seconds outlasts them.
	w := newChaosWorld(t, chaosOpts{proxy: true, lease: 5 * time.Second, callTimeout: 3 * time.Second})
	l := w.startLoad(4, func(i int) ([]string, bool) { return chaosRecipients(i), true })
	defer l.stop()

	require.Eventually(t, func() bool { return l.accepted() >= 20 }, time.Minute, 50*time.Millisecond, "messages accepted before the outage")
	cutAt := time.Now()
	w.proxy.cut(mode)
	// Away for at least 3 s and until sends have met the outage, at most
	// for 20 s (sends that hang meet nothing).
	for time.Since(cutAt) < 20*time.Second && (time.Since(cutAt) < 3*time.Second || len(answeredWithin(l.snapshot(), cutAt, time.Now())) < 5) {
		time.Sleep(50 * time.Millisecond)
	}
	restoredAt := time.Now()
	w.proxy.restore()
	before := l.accepted()
	require.Eventually(t, func() bool { return l.accepted() >= before+20 }, time.Minute, 50*time.Millisecond, "messages accepted after the outage")
	l.stop()

	msgs := l.snapshot()
	drained := w.drain(msgs, 90*time.Second)
	f := w.count(msgs)
	during := answeredWithin(msgs, cutAt, restoredAt)
	var unavailable, withRetryAfter int
	for _, a := range during {
		if a.status == http.StatusServiceUnavailable {
			unavailable++
			if a.retryAfter != "" {
				withRetryAfter++
			}
		}
	}
	redelivered, extra := w.faults.redelivered()
	f.log(t, fmt.Sprintf("AWS unreachable (%s) for %s", t.Name(), restoredAt.Sub(cutAt).Round(100*time.Millisecond)),
		fmt.Sprintf("sends answered wholly inside the outage: %d (503: %d, with Retry-After: %d)", len(during), unavailable, withRetryAfter),
		fmt.Sprintf("longest answer: %s", longestAnswer(msgs).Round(100*time.Millisecond)),
		fmt.Sprintf("AWS operations failed after the SDK's retries: %v", w.faults.failedByOp()),
		fmt.Sprintf("SQS messages redelivered: %d (%d extra receives)", redelivered, extra))

	require.True(t, drained, "every accepted message delivered and the queue drained")
	assert.GreaterOrEqual(t, len(during), 5, "sends are answered while AWS is away, not held until it returns")
	assert.Equal(t, len(during), unavailable, "every send made while AWS was away answers 503")
	assert.Equal(t, unavailable, withRetryAfter, "every 503 carries Retry-After")
	assertOnlyStatuses(t, f, http.StatusOK, http.StatusAccepted, http.StatusServiceUnavailable)
	assertNoLoss(t, w, msgs, f)
}

// longestAnswer is the longest time a send waited for its answer.
func longestAnswer(msgs []chaosSent) time.Duration {
	var d time.Duration
	for _, s := range msgs {
		for _, a := range s.answers {
			if !a.end.IsZero() {
				d = max(d, a.end.Sub(a.start))
			}
		}
	}
	return d
}

// answeredWithin lists the answers whose request started after from and
// was answered before to.
func answeredWithin(msgs []chaosSent, from, to time.Time) []chaosAnswer {
	var out []chaosAnswer
	for _, s := range msgs {
		for _, a := range s.answers {
			if a.start.After(from) && !a.end.IsZero() && a.end.Before(to) {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestChaosAWSThrottling: one AWS call attempt in ten answers with a
// throttling error, as DynamoDB and SQS do, through a few hundred sends and
// their deliveries. The SDK's retryer absorbs most; what it does not must
// neither lose nor duplicate a message unexplained.
func TestChaosAWSThrottling(t *testing.T) {
	const messages, every = 200, 10
	w := newChaosWorld(t, chaosOpts{lease: 10 * time.Second})
	w.faults.throttleEvery.Store(every)
	start := time.Now()
	l := w.startLoad(16, func(i int) ([]string, bool) { return chaosRecipients(i), i < messages })
	l.wait()
	sentIn := time.Since(start)
	msgs := l.snapshot()
	drained := w.drain(msgs, 90*time.Second)
	elapsed := time.Since(start)
	w.faults.throttleEvery.Store(0)
	f := w.count(msgs)
	redelivered, extra := w.faults.redelivered()
	f.log(t, fmt.Sprintf("1 AWS call attempt in %d throttled", every),
		fmt.Sprintf("AWS call attempts: %d, throttled: %d", w.faults.attempts.Load(), w.faults.throttled.Load()),
		fmt.Sprintf("AWS operations failed after the SDK's retries: %v", w.faults.failedByOp()),
		fmt.Sprintf("SQS messages redelivered: %d (%d extra receives)", redelivered, extra),
		fmt.Sprintf("sent in %s, sent and delivered in %s", sentIn.Round(100*time.Millisecond), elapsed.Round(100*time.Millisecond)))

	require.True(t, drained, "every accepted message delivered and the queue drained")
	require.Positive(t, w.faults.throttled.Load(), "calls were throttled")
	assertOnlyStatuses(t, f, http.StatusOK, http.StatusAccepted, http.StatusServiceUnavailable)
	assert.Equal(t, messages, f.accepted, "every message is accepted in the end")
	assertNoLoss(t, w, msgs, f)
}

// TestChaosAWSDeliverCrash: the delivery of a task stops after the agent
// got the message and before the task is acknowledged; SQS hands the task
// out again after its visibility timeout. Either the redelivery finds the
// delivery recorded and only acknowledges it (deduplicated), or it
// delivers again: an identical copy, a counted and explained duplicate.
func TestChaosAWSDeliverCrash(t *testing.T) {
	const messages = 16
	plan := func(i int) ([]string, bool) { return []string{chaosBob, chaosCarol}, i < messages }
	cases := []struct {
		name string
		opts chaosOpts
		// arm installs the crash for the target messages and names the
		// operation it crashes.
		arm func(w *chaosWorld) string
		// crashed are the recipients of a target message whose delivery
		// meets the crash, and deliveries how often each then receives it:
		// once when the redelivery finds the delivery recorded, twice when
		// it makes it again.
		crashed    []string
		deliveries int
	}{
		{
			// The poller (`agentry serve` on AWS): the SQS DeleteMessage that
			// acknowledges a delivered task never happens, once for each
			// task (bob's, carol's) of a target message.
			name:       "poller: acknowledgement lost after delivery",
			opts:       chaosOpts{lease: 5 * time.Second},
			crashed:    []string{chaosBob, chaosCarol},
			deliveries: 1,
			arm: func(w *chaosWorld) string {
				var mu sync.Mutex
				done := map[string]bool{}
				w.faults.setCrash(func(c awsCall) bool {
					if c.op != "DeleteMessage" || c.task.ID == "" || !crashTarget(c.task.MessageID) {
						return false
					}
					mu.Lock()
					defer mu.Unlock()
					first := !done[c.task.ID]
					done[c.task.ID] = true
					return first
				})
				return "DeleteMessage"
			},
		},
		{
			// The deliver function (Lambda): the handler dies after bob's
			// webhook answered and before the delivery is recorded (its
			// status write never happens), so Lambda keeps the record.
			// Besides, one whole invocation dies after its work, before
			// Lambda got its answer: none of its records is deleted.
			name:       "lambda: status write lost after the webhook answered",
			opts:       chaosOpts{lease: 5 * time.Second, lambda: true, crashBatch: crashFirstBatch()},
			crashed:    []string{chaosBob},
			deliveries: 2,
			arm: func(w *chaosWorld) string {
				var mu sync.Mutex
				armed := map[string]bool{}
				w.agents[chaosBob].onFirst = func(id string) {
					if crashTarget(id) {
						mu.Lock()
						armed[strings.ToLower(id)] = true
						mu.Unlock()
					}
				}
				w.faults.setCrash(func(c awsCall) bool {
					if c.op != "UpdateItem" || !strings.Contains(string(c.input), chaosBob) {
						return false
					}
					mu.Lock()
					defer mu.Unlock()
					for id := range armed {
						if strings.Contains(string(c.input), id) {
							delete(armed, id) // once: the redelivery records it
							return true
						}
					}
					return false
				})
				return "UpdateItem"
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newChaosWorld(t, tc.opts)
			op := tc.arm(w)
			l := w.startLoad(2, plan)
			l.wait()
			msgs := l.snapshot()
			drained := w.drain(msgs, 60*time.Second)
			f := w.count(msgs)
			targets := 0
			for _, s := range msgs {
				if s.id != "" && crashTarget(s.id) {
					targets++
				}
			}
			redelivered, extra := w.faults.redelivered()
			f.log(t, "deliver crash, "+tc.name,
				fmt.Sprintf("target messages: %d; calls crashed: %v", targets, w.faults.crashed()),
				fmt.Sprintf("SQS messages redelivered: %d (%d extra receives)", redelivered, extra))

			require.True(t, drained, "every accepted message delivered and the queue drained")
			require.Equal(t, messages, f.accepted)
			require.Positive(t, targets, "some messages meet the crash")
			assert.Equal(t, targets*len(tc.crashed), w.faults.crashed()[op], "crashes")
			assert.GreaterOrEqual(t, redelivered, targets*len(tc.crashed), "SQS handed each crashed task out again")
			for _, s := range msgs {
				if !crashTarget(s.id) {
					continue
				}
				for _, rcpt := range tc.crashed {
					assert.Len(t, w.agents[rcpt].calls(s.id), tc.deliveries, "deliveries of crashed %s to %s", s.id, rcpt)
				}
			}
			assertNoLoss(t, w, msgs, f)
		})
	}
}

// crashTarget picks about half the messages, by their id's last hex
// digit (random in both UUIDv7 and UUIDv4), so that a crash rule can
// decide from the id alone.
func crashTarget(id string) bool {
	return id != "" && strings.ContainsRune("02468ace", rune(strings.ToLower(id)[len(id)-1]))
}

// crashFirstBatch "kills" the first invocation that carries records: its
// work is done, its answer never reaches the event source mapping.
func crashFirstBatch() func(events.SQSEvent) bool {
	var once atomic.Bool
	return func(ev events.SQSEvent) bool { return len(ev.Records) > 0 && once.CompareAndSwap(false, true) }
}

func assertOnlyStatuses(t *testing.T, f chaosFigures, allowed ...int) {
	t.Helper()
	for code, n := range f.answers {
		ok := false
		for _, a := range allowed {
			ok = ok || code == a
		}
		assert.True(t, ok, "%d answers with status %d (0: no answer)", n, code)
	}
}

// assertNoLoss: nothing answered 202 is lost, every duplicate is
// explained, and the gateway's own status says delivered for every
// recipient of every accepted message.
func assertNoLoss(t *testing.T, w *chaosWorld, msgs []chaosSent, f chaosFigures) {
	t.Helper()
	assert.Zero(t, f.lost, "lost: %v", f.lostPairs)
	assert.Empty(t, f.unexplained, "unexplained duplicates")
	assert.Equal(t, f.duplicated, f.explained)
	for id, state := range w.finalStates(msgs) {
		assert.Equal(t, "delivered", state, "final state of %s", id)
	}
}
