package sqsq

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// testLease is the visibility timeout of every test queue: short, so that the
// contract suite's "settled tasks do not come back" waits stay short, but
// well beyond what the suite does while a task must stay leased (receive
// it, then poll for a second to see that nothing else comes), which on a
// busy machine, with moto slow to answer, can take the two seconds that
// an idle one needs only half of.
const testLease = 5 * time.Second

func TestTaskQueueContract(t *testing.T) {
	t.Parallel()
	client := sqs.NewFromConfig(awstest.Config(t))
	gatewaytest.RunTaskQueue(t, func(t *testing.T) gatewaytest.Backend {
		_, ep := awstest.Resources(t)
		q, err := New(client, Config{QueueURL: ep.DeliveryQueueURL, DeadLetterURL: ep.DeadLetterURL, VisibilityTimeout: testLease})
		require.NoError(t, err)
		return gatewaytest.Backend{Queue: q, LeaseTimeout: testLease}
	})
}

func TestEnqueueBatchReceivedOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	var tasks []gateway.Task
	for i := range 25 {
		tasks = append(tasks, newTask(fmt.Sprintf("rcpt%d@a.example", i)))
	}
	// Repeats within one call are sent once.
	all := append(append([]gateway.Task(nil), tasks...), tasks[0], tasks[24], tasks[7])
	require.NoError(t, q.Enqueue(ctx(t), all...))
	assert.Equal(t, 25, env.count(t, env.url))

	got := receiveN(t, q, 25, 15*time.Second)
	require.ElementsMatch(t, ids(tasks), ids(got))
	for _, tk := range got {
		assert.Equal(t, 0, tk.Attempt, tk.ID)
		assert.NotEmpty(t, tk.Lease, tk.ID)
		require.NoError(t, q.Ack(ctx(t), tk))
	}
	assert.Equal(t, 0, env.count(t, env.url), "every message is deleted")
}

func TestHoldBack(t *testing.T) {
	t.Parallel()

	t.Run("NotBefore20MinutesAhead", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		clock := &fakeClock{}
		q := env.queue(t, func(c *Config) { c.Now = clock.Now })
		task := newTask("bob@a.example")
		task.NotBefore = gatewaytest.Now().Add(20 * time.Minute)
		// Seen from a second before its time the task is sent with a one
		// second delay; back at the real time, it arrives 20 minutes early.
		clock.Set(task.NotBefore.Add(-time.Second))
		require.NoError(t, q.Enqueue(ctx(t), task))
		clock.Set(time.Now())

		got, err := q.Receive(ctx(t), 10, 3*time.Second)
		require.NoError(t, err)
		assert.Empty(t, got, "task received 20 minutes before its not_before")
		visible, hidden, delayed := env.counts(t, env.url)
		assert.Equal(t, [3]int{0, 1, 0}, [3]int{visible, hidden, delayed}, "the message is hidden until due")
	})

	t.Run("HiddenOnceUntilDue", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		q := env.queue(t, nil)
		q.maxDelay = time.Second // so the copy is sent "15 minutes" short of its time
		task := newTask("bob@a.example")
		task.NotBefore = gatewaytest.Now().Add(3 * time.Second)
		require.NoError(t, q.Enqueue(ctx(t), task))

		got := receiveN(t, q, 1, 10*time.Second)
		assert.False(t, time.Now().Before(task.NotBefore), "task received before its not_before")
		assert.Equal(t, 0, got[0].Attempt, "the hold-back receive is not an attempt")
		assert.True(t, task.NotBefore.Equal(got[0].NotBefore))
		require.NoError(t, q.Ack(ctx(t), got[0]))
		assert.Equal(t, 0, env.count(t, env.url))
	})

	t.Run("ReplacedWhenEarlyAgain", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		clock := &fakeClock{}
		q := env.queue(t, func(c *Config) { c.Now = clock.Now })
		q.maxDelay, q.maxHold = time.Second, time.Second
		task := newTask("bob@a.example")
		task.Attempt = 2
		task.NotBefore = gatewaytest.Now().Add(20 * time.Minute)
		require.NoError(t, q.Enqueue(ctx(t), task))

		// Hidden for a second, then early again: a fresh copy replaces it,
		// again and again, and none is handed out.
		got, err := q.Receive(ctx(t), 10, 4*time.Second)
		require.NoError(t, err)
		assert.Empty(t, got, "task received 20 minutes before its not_before")
		assert.Equal(t, 1, env.count(t, env.url), "one copy at a time")

		clock.Set(task.NotBefore)
		got = receiveN(t, q, 1, 10*time.Second)
		assert.Equal(t, task.ID, got[0].ID)
		assert.Equal(t, 2, got[0].Attempt, "hold-backs and replacements are not attempts")
		require.NoError(t, q.Ack(ctx(t), got[0]))
		assert.Equal(t, 0, env.count(t, env.url))
	})
}

func TestRetry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// prepare enqueues the task and returns what Retry is given.
		prepare func(t *testing.T, q *Queue, task gateway.Task) gateway.Task
		at      time.Duration // from now
		copies  int           // messages in the queue right after Retry
	}{
		{
			name: "Leased",
			prepare: func(t *testing.T, q *Queue, task gateway.Task) gateway.Task {
				require.NoError(t, q.Enqueue(ctx(t), task))
				return receiveN(t, q, 1, 10*time.Second)[0]
			},
			at: 1500 * time.Millisecond, copies: 1,
		},
		{
			name: "ReceiptGone",
			prepare: func(t *testing.T, q *Queue, task gateway.Task) gateway.Task {
				require.NoError(t, q.Enqueue(ctx(t), task))
				got := receiveN(t, q, 1, 10*time.Second)[0]
				require.NoError(t, q.Ack(ctx(t), got))
				return got
			},
			at: 0, copies: 1,
		},
		{
			name: "NeverReceivedDueBeforeQueuedCopy",
			prepare: func(t *testing.T, q *Queue, task gateway.Task) gateway.Task {
				task.NotBefore = gatewaytest.Now().Add(2 * time.Second)
				require.NoError(t, q.Enqueue(ctx(t), task))
				return task
			},
			at: time.Second, copies: 1,
		},
		{
			name: "NeverReceivedDueAfterQueuedCopy",
			prepare: func(t *testing.T, q *Queue, task gateway.Task) gateway.Task {
				task.NotBefore = gatewaytest.Now().Add(-time.Hour)
				require.NoError(t, q.Enqueue(ctx(t), task))
				return task
			},
			at: 0, copies: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, 0)
			q := env.queue(t, nil)
			task := newTask("bob@a.example")
			r := tc.prepare(t, q, task)
			r.Attempt = 3
			at := time.Now().Add(tc.at)
			require.NoError(t, q.Retry(ctx(t), r, at))
			assert.Equal(t, tc.copies, env.count(t, env.url), "messages after Retry")
			got := receiveN(t, q, 1, 10*time.Second)
			assert.Equal(t, task.ID, got[0].ID)
			assert.False(t, time.Now().Before(at), "retried task received before its time")
			require.NoError(t, q.Ack(ctx(t), got[0]))
		})
	}
}

func TestRetryCarriesAttempt(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	task := newTask("bob@a.example")
	require.NoError(t, q.Enqueue(ctx(t), task))
	got := receiveN(t, q, 1, 10*time.Second)[0]
	for attempt := 1; attempt <= 3; attempt++ {
		got.Attempt = attempt
		require.NoError(t, q.Retry(ctx(t), got, time.Now()))
		got = receiveN(t, q, 1, 10*time.Second)[0]
		assert.Equal(t, attempt, got.Attempt)
		assert.True(t, task.CreatedAt.Equal(got.CreatedAt))
	}
	require.NoError(t, q.Ack(ctx(t), got))
	assert.Equal(t, 0, env.count(t, env.url))
}

func TestDuplicateCopies(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	task := newTask("bob@a.example")
	changed := task
	changed.Attempt = 5
	require.NoError(t, q.Enqueue(ctx(t), task))
	require.NoError(t, q.Enqueue(ctx(t), changed))
	require.Equal(t, 2, env.count(t, env.url))

	// Both copies come in one batch: the first sent is handed out, the
	// other deleted.
	got, err := q.Receive(ctx(t), 10, 2*time.Second)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, 0, got[0].Attempt)
	assert.Equal(t, 1, env.count(t, env.url), "the duplicate is deleted")

	// A copy that arrives while the task is out on lease is deleted too.
	require.NoError(t, q.Enqueue(ctx(t), changed))
	again, err := q.Receive(ctx(t), 10, time.Second)
	require.NoError(t, err)
	assert.Empty(t, again)
	assert.Equal(t, 1, env.count(t, env.url))
	require.NoError(t, q.Ack(ctx(t), got[0]))
	assert.Equal(t, 0, env.count(t, env.url))
}

func TestAckGoneIsNotAnError(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	task := newTask("bob@a.example")
	require.NoError(t, q.Enqueue(ctx(t), task))
	got := receiveN(t, q, 1, 10*time.Second)[0]
	require.NoError(t, q.Ack(ctx(t), got))
	require.NoError(t, q.Ack(ctx(t), got), "acked twice")
	bogus := got
	bogus.Lease = "not-a-receipt-handle"
	require.NoError(t, q.Ack(ctx(t), bogus), "unknown receipt")
	require.NoError(t, q.Ack(ctx(t), task), "never received")
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	received, unleased := newTask("bob@a.example"), newTask("carol@a.example")
	received.Kind, received.Domain = gateway.TaskRemote, "a.example"
	require.NoError(t, q.Enqueue(ctx(t), received))
	got := receiveN(t, q, 1, 10*time.Second)[0]
	now := gatewaytest.Now()
	dl := gateway.DeadLetter{
		MessageID: received.MessageID, TaskID: received.ID, Recipients: received.Recipients,
		FailureReason: "RECIPIENT_UNAVAILABLE", ErrorMessage: "410 Gone", Attempts: 4,
		FirstAttempt: now.Add(-time.Hour), LastAttempt: now, DLQTimestamp: now,
	}
	require.NoError(t, q.DeadLetter(ctx(t), got, dl))
	assert.Equal(t, 0, env.count(t, env.url), "removed from the delivery queue")

	// Never received: the record is written and the queued copy stays.
	require.NoError(t, q.Enqueue(ctx(t), unleased))
	require.NoError(t, q.DeadLetter(ctx(t), unleased, gateway.DeadLetter{TaskID: unleased.ID, FailureReason: "AGENT_UNKNOWN"}))
	assert.Equal(t, 1, env.count(t, env.url))

	bodies := env.drain(t, env.dlq, 2)
	byID := map[string]*gateway.DeadLetter{}
	for _, b := range bodies {
		tk, d, err := ParseDeadLetterRecord(b)
		require.NoError(t, err)
		require.NotNil(t, d, "an explicit record")
		if tk.ID == received.ID {
			assertSameTask(t, received, tk)
		}
		byID[tk.ID] = d
	}
	require.Contains(t, byID, received.ID)
	require.Contains(t, byID, unleased.ID)
	assert.Equal(t, dl.FailureReason, byID[received.ID].FailureReason)
	assert.Equal(t, dl.Recipients, byID[received.ID].Recipients)
	assert.Equal(t, 4, byID[received.ID].Attempts)
	assert.True(t, dl.FirstAttempt.Equal(byID[received.ID].FirstAttempt))
	assert.Equal(t, "AGENT_UNKNOWN", byID[unleased.ID].FailureReason)
}

// TestPoisonAndRedrive runs against a queue that gives up after two
// receives: malformed bodies never break Receive, and they and a task that
// is never settled end up in the dead-letter queue, where
// ParseDeadLetterRecord tells them apart.
func TestPoisonAndRedrive(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 2)
	q := env.queue(t, func(c *Config) { c.VisibilityTimeout = time.Second })
	poison := []string{
		"not json",
		`{"v":2,"id":"m|x","message_id":"m","kind":"local","recipients":["x@a.example"]}`,
		`{"v":1,"message_id":"m"}`,
	}
	for _, b := range poison {
		_, err := env.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(env.url), MessageBody: aws.String(b)})
		require.NoError(t, err)
	}
	task := newTask("bob@a.example")
	require.NoError(t, q.Enqueue(ctx(t), task))

	// First receive: only the task. Second, after its lease lapsed: the
	// task again, counting the lost attempt. Third: SQS has moved all of
	// them to the dead-letter queue.
	for i, want := range []int{0, 1} {
		got := receiveN(t, q, 1, 10*time.Second)
		require.Equal(t, task.ID, got[0].ID, "receive %d", i+1)
		assert.Equal(t, want, got[0].Attempt, "receive %d", i+1)
		time.Sleep(1100 * time.Millisecond)
	}
	got, err := q.Receive(ctx(t), 10, time.Second)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, 0, env.count(t, env.url))

	var tasks, malformed int
	for _, b := range env.drain(t, env.dlq, 4) {
		tk, dl, err := ParseDeadLetterRecord(b)
		if err != nil {
			assert.ErrorIs(t, err, ErrMalformed)
			malformed++
			continue
		}
		assert.Nil(t, dl, "moved by the redrive policy, not by DeadLetter")
		assertSameTask(t, task, tk)
		tasks++
	}
	assert.Equal(t, 1, tasks)
	assert.Equal(t, len(poison), malformed)
}

func TestReceiveHonoursContextDuringLongPoll(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	c, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := q.Receive(c, 10, 20*time.Second)
	assert.Empty(t, got)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// Well under the 20 s poll, with room for a busy moto.
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestParseTaskRoundTrip(t *testing.T) {
	q := &Queue{maxDelay: maxDelay}
	now := gatewaytest.Now()
	task := gateway.Task{
		ID: "m1|@b.example", MessageID: "m1", Kind: gateway.TaskRemote,
		Recipients: []string{"bob@b.example", "carol@b.example"}, Domain: "b.example",
		Attempt: 7, CreatedAt: now.Add(-time.Minute), NotBefore: now.Add(time.Hour),
		Lease: "receipt",
	}
	m, err := q.encode(task, time.Time{}, now)
	require.NoError(t, err)
	assert.Equal(t, int32(900), m.delay, "delay capped at 15 minutes")

	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(m.body), &raw))
	assert.EqualValues(t, 1, raw["v"])
	assert.Equal(t, true, raw["early"])
	assert.NotContains(t, raw, "due", "a first send has no due of its own")
	assert.NotContains(t, m.body, "receipt", "the lease is not serialized")

	got, err := ParseTask(m.body)
	require.NoError(t, err)
	want := task
	want.Lease = ""
	assertSameTask(t, want, got)
	assert.Empty(t, got.Lease)

	retry, err := q.encode(task, now.Add(2500*time.Millisecond), now)
	require.NoError(t, err)
	assert.Equal(t, int32(3), retry.delay, "a retry is due at its own time, rounded up")
}

func TestParseDeadLetterRecord(t *testing.T) {
	q := &Queue{maxDelay: maxDelay}
	task := newTask("bob@a.example")
	now := gatewaytest.Now()
	dl := gateway.DeadLetter{MessageID: task.MessageID, TaskID: task.ID, Recipients: task.Recipients, FailureReason: "RECIPIENT_NOT_FOUND", Attempts: 1, DLQTimestamp: now}
	record, err := encodeDeadLetter(task, dl)
	require.NoError(t, err)
	raw, err := q.encode(task, now.Add(time.Minute), now)
	require.NoError(t, err)

	cases := []struct {
		name   string
		body   string
		wantDL bool
		ok     bool
	}{
		{"ExplicitRecord", record, true, true},
		{"RedrivenTask", raw.body, false, true},
		{"NotJSON", "{", false, false},
		{"EmptyObject", "{}", false, false},
		{"TaskOfUnknownVersion", strings.Replace(raw.body, `"v":1`, `"v":2`, 1), false, false},
		{"RecordOfUnknownVersion", strings.Replace(record, `"v":1`, `"v":2`, 1), false, false},
		{"RecordWithoutTask", `{"v":1,"dead_letter":{"task_id":"x"}}`, false, false},
		{"JSONArray", `[1,2]`, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, d, err := ParseDeadLetterRecord(tc.body)
			if !tc.ok {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assertSameTask(t, task, got)
			if !tc.wantDL {
				assert.Nil(t, d)
				return
			}
			require.NotNil(t, d)
			assert.Equal(t, dl.FailureReason, d.FailureReason)
			assert.True(t, dl.DLQTimestamp.Equal(d.DLQTimestamp))
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	client := sqs.New(sqs.Options{Region: awstest.Region})
	good := Config{QueueURL: "http://q", DeadLetterURL: "http://dlq"}
	cases := []struct {
		name   string
		client *sqs.Client
		mod    func(*Config)
	}{
		{"NoClient", nil, func(*Config) {}},
		{"NoQueue", client, func(c *Config) { c.QueueURL = "" }},
		{"NoDeadLetterQueue", client, func(c *Config) { c.DeadLetterURL = "" }},
		{"LeaseTooShort", client, func(c *Config) { c.VisibilityTimeout = time.Millisecond }},
		{"LeaseTooLong", client, func(c *Config) { c.VisibilityTimeout = 13 * time.Hour }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mod(&cfg)
			_, err := New(tc.client, cfg)
			assert.Error(t, err)
		})
	}
	q, err := New(client, good)
	require.NoError(t, err)
	assert.Equal(t, awsres.VisibilityTimeoutSeconds*time.Second, q.visibility)
}

// ---- helpers ----

// env is a delivery queue and its dead-letter queue made for one test.
type env struct {
	client   *sqs.Client
	url, dlq string
}

var queueSeq atomic.Int64

// newEnv creates the queue pair from awsres's definitions; maxReceive > 0
// replaces the redrive policy's maxReceiveCount.
func newEnv(t *testing.T, maxReceive int) *env {
	t.Helper()
	client := sqs.NewFromConfig(awstest.Config(t))
	name := fmt.Sprintf("sqsq-%d-%d", os.Getpid()%100000, queueSeq.Add(1))
	dlq, err := client.CreateQueue(ctx(t), &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq"), Attributes: awsres.DeadLetterAttributes()})
	require.NoError(t, err)
	attrs, err := client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	require.NoError(t, err)
	arn := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	qa := awsres.QueueAttributes(arn)
	if maxReceive > 0 {
		qa[string(types.QueueAttributeNameRedrivePolicy)] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, arn, maxReceive)
	}
	main, err := client.CreateQueue(ctx(t), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: qa})
	require.NoError(t, err)
	e := &env{client: client, url: aws.ToString(main.QueueUrl), dlq: aws.ToString(dlq.QueueUrl)}
	t.Cleanup(func() {
		for _, u := range []string{e.url, e.dlq} {
			_, _ = client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	return e
}

func (e *env) queue(t *testing.T, mod func(*Config)) *Queue {
	t.Helper()
	cfg := Config{QueueURL: e.url, DeadLetterURL: e.dlq, VisibilityTimeout: testLease}
	if mod != nil {
		mod(&cfg)
	}
	q, err := New(e.client, cfg)
	require.NoError(t, err)
	return q
}

// counts are SQS's approximate numbers of visible, in-flight and delayed
// messages (exact on moto).
func (e *env) counts(t *testing.T, url string) (visible, hidden, delayed int) {
	t.Helper()
	out, err := e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	require.NoError(t, err)
	n := func(a types.QueueAttributeName) int {
		v, err := strconv.Atoi(out.Attributes[string(a)])
		require.NoError(t, err, "attribute %s", a)
		return v
	}
	return n(types.QueueAttributeNameApproximateNumberOfMessages),
		n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed)
}

func (e *env) count(t *testing.T, url string) int {
	t.Helper()
	v, h, d := e.counts(t, url)
	return v + h + d
}

// drain reads n bodies from a queue with the plain SDK and deletes them.
func (e *env) drain(t *testing.T, url string, n int) []string {
	t.Helper()
	var bodies []string
	deadline := time.Now().Add(10 * time.Second)
	for len(bodies) < n {
		require.True(t, time.Now().Before(deadline), "read %d of %d messages from %s", len(bodies), n, url)
		out, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		require.NoError(t, err)
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			_, err := e.client.DeleteMessage(ctx(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
			require.NoError(t, err)
		}
	}
	require.Len(t, bodies, n)
	return bodies
}

// fakeClock runs at real speed from a settable offset, because SQS's own
// timers cannot be faked.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Set makes Now read `at` at this instant.
func (c *fakeClock) Set(at time.Time) { c.off.Store(int64(time.Until(at))) }

func newTask(rcpt string) gateway.Task {
	id := gatewaytest.NewID("msg")
	return gateway.Task{
		ID:         gateway.TaskID(id, rcpt),
		MessageID:  id,
		Kind:       gateway.TaskLocal,
		Recipients: []string{rcpt},
		CreatedAt:  gatewaytest.Now(),
	}
}

func assertSameTask(t *testing.T, want, got gateway.Task) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.MessageID, got.MessageID)
	assert.Equal(t, want.Kind, got.Kind)
	assert.Equal(t, want.Recipients, got.Recipients)
	assert.Equal(t, want.Domain, got.Domain)
	assert.Equal(t, want.Attempt, got.Attempt)
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt), "created_at %v, want %v", got.CreatedAt, want.CreatedAt)
	assert.True(t, want.NotBefore.Equal(got.NotBefore), "not_before %v, want %v", got.NotBefore, want.NotBefore)
}

// receiveN receives until it holds n tasks, failing on a task handed out
// twice or on timeout.
func receiveN(t *testing.T, q *Queue, n int, timeout time.Duration) []gateway.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got []gateway.Task
	seen := map[string]bool{}
	for len(got) < n {
		left := time.Until(deadline)
		require.Positive(t, left, "received %d of %d tasks", len(got), n)
		tasks, err := q.Receive(ctx(t), n-len(got), min(left, time.Second))
		require.NoError(t, err)
		for _, tk := range tasks {
			require.False(t, seen[tk.ID], "task %s handed out twice", tk.ID)
			seen[tk.ID] = true
			got = append(got, tk)
		}
	}
	return got
}

func ids(tasks []gateway.Task) []string {
	out := make([]string, len(tasks))
	for i, tk := range tasks {
		out[i] = tk.ID
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestCallerDeletes: records admitted with CallerDeletes (Lambda's event
// source mapping deletes what the batch does not report as failed) are not
// deleted by Ack, Retry or DeadLetter — a second delete would be a billed
// request for nothing — while other records are.
func TestCallerDeletes(t *testing.T) {
	t.Parallel()
	settle := map[string]func(q *Queue, task gateway.Task) error{
		"Ack":   func(q *Queue, task gateway.Task) error { return q.Ack(ctx(t), task) },
		"Retry": func(q *Queue, task gateway.Task) error { return q.Retry(ctx(t), task, time.Now().Add(time.Hour)) },
		"DeadLetter": func(q *Queue, task gateway.Task) error {
			return q.DeadLetter(ctx(t), task, gateway.DeadLetter{FailureReason: "X"})
		},
	}
	for name, do := range settle {
		for _, callerDeletes := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/callerDeletes=%v", name, callerDeletes), func(t *testing.T) {
				t.Parallel()
				env := newEnv(t, 0)
				q := env.queue(t, nil)
				require.NoError(t, q.Enqueue(ctx(t), newTask("bob@a.example")))
				out, err := env.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(env.url), WaitTimeSeconds: 5,
					MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
				require.NoError(t, err)
				require.Len(t, out.Messages, 1)
				m := out.Messages[0]
				task, ok, err := q.Admit(ctx(t), Record{MessageID: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body), Attributes: m.Attributes, CallerDeletes: callerDeletes})
				require.NoError(t, err)
				require.True(t, ok)
				require.NoError(t, do(q, task))

				_, hidden, _ := env.counts(t, env.url)
				if callerDeletes {
					assert.Equal(t, 1, hidden, "the received record is left for the caller to delete")
				} else {
					assert.Equal(t, 0, hidden, "the received record is deleted")
				}
			})
		}
	}
}
