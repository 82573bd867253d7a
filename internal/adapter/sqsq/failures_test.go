package sqsq

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// unencodable is a time encoding/json refuses (years past 9999).
var unencodable = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

func newTasks(n int) []gateway.Task {
	tasks := make([]gateway.Task, n)
	for i := range tasks {
		tasks[i] = newTask(fmt.Sprintf("rcpt%d@a.example", i))
	}
	return tasks
}

// failTask takes the entry of task id out of the first `times` batches
// that carry it, and reports it failed: by the sender's fault (SQS will
// never take it) or not (worth sending again).
func failTask(id string, senderFault bool, times int) func(*sqs.SendMessageBatchInput) []types.BatchResultErrorEntry {
	calls := 0
	return func(in *sqs.SendMessageBatchInput) []types.BatchResultErrorEntry {
		pos := slices.IndexFunc(in.Entries, func(e types.SendMessageBatchRequestEntry) bool {
			return strings.Contains(aws.ToString(e.MessageBody), fmt.Sprintf("%q", id))
		})
		if pos < 0 {
			return nil
		}
		if calls++; calls > times {
			return nil
		}
		e := in.Entries[pos]
		in.Entries = slices.Delete(slices.Clone(in.Entries), pos, pos+1)
		code := "InternalError"
		if senderFault {
			code = "InvalidParameterValue"
		}
		return []types.BatchResultErrorEntry{{Id: e.Id, Code: aws.String(code), Message: aws.String("entry " + aws.ToString(e.Id)), SenderFault: senderFault}}
	}
}

// TestSendBatchPartialFailures: SendMessageBatch succeeds as a call while
// failing some of its entries. Entries SQS failed through no fault of
// ours are sent again; those it refuses, or that keep failing, are
// reported with their task; the rest of the batch is queued either way.
func TestSendBatchPartialFailures(t *testing.T) {
	t.Parallel()
	tasks := newTasks(3)
	failing := tasks[1].ID
	cases := []struct {
		name   string
		batch  func(*sqs.SendMessageBatchInput) []types.BatchResultErrorEntry
		cancel bool // the caller gives up once the first batch is answered
		queued int
		calls  int64
		err    string
	}{
		{"failed entry sent again", failTask(failing, false, 1), false, 3, 2, ""},
		{"refused entry", failTask(failing, true, 100), false, 2, 1, "SQS refused"},
		{"entry failing every time", failTask(failing, false, 100), false, 2, sendTries, "still failing after 3 tries"},
		{"failure of an entry never sent", func(*sqs.SendMessageBatchInput) []types.BatchResultErrorEntry {
			return []types.BatchResultErrorEntry{{Id: aws.String("7"), Code: aws.String("InternalError")}}
		}, false, 3, 1, `failure for entry "7", which was not sent`},
		{"caller gives up", failTask(failing, false, 100), true, 2, 1, "1 not sent: context canceled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, 0)
			c, cancel := context.WithCancel(ctx(t))
			defer cancel()
			calls := &awstest.Counted[*sqs.SendMessageBatchInput]{}
			f := faults{fail: calls.Fail, batch: tc.batch}
			if tc.cancel {
				f.after = func(in any) {
					if _, ok := in.(*sqs.SendMessageBatchInput); ok {
						cancel()
					}
				}
			}
			q := env.faultyQueue(t, f, nil)
			err := q.Enqueue(c, tasks...)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
				if tc.queued < len(tasks) && !tc.cancel {
					assert.ErrorContains(t, err, failing, "the task not queued is named")
				}
			}
			assert.Equal(t, tc.calls, calls.Calls(), "batches sent")
			assert.Equal(t, tc.queued, env.count(t, env.url), "tasks queued")
		})
	}
}

// TestEnqueueFailures: a task that cannot be a queue message is refused
// before anything is sent; a batch that fails ends the call, and the
// batches before it stay queued (the doc says so).
func TestEnqueueFailures(t *testing.T) {
	t.Parallel()
	huge := newTask("bob@a.example")
	for i := range 5000 {
		huge.Recipients = append(huge.Recipients, fmt.Sprintf("r%04d-%s@a.example", i, strings.Repeat("x", 200)))
	}
	bad := newTask("bob@a.example")
	bad.CreatedAt = unencodable
	cases := []struct {
		name   string
		tasks  []gateway.Task
		fail   func(any) error
		queued int
		err    string
	}{
		{"task that does not encode", append(newTasks(2), bad), nil, 0, "encode task"},
		{"task over the SQS limit", append(newTasks(2), huge), nil, 0, "over the SQS limit"},
		{"a full batch fails", newTasks(12), failAll[*sqs.SendMessageBatchInput](), 0, "send 10 tasks"},
		{"the last batch fails", newTasks(12), awstest.FailCalls[*sqs.SendMessageBatchInput](2, nil, errInjected), 10, "send 2 tasks"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, 0)
			q := env.faultyQueue(t, faults{fail: tc.fail}, nil)
			err := q.Enqueue(ctx(t), tc.tasks...)
			require.ErrorContains(t, err, tc.err)
			assert.ErrorContains(t, err, "enqueue")
			if tc.fail != nil {
				assert.ErrorIs(t, err, errInjected)
			}
			assert.Equal(t, tc.queued, env.count(t, env.url))
		})
	}
}

func TestReceiveEdges(t *testing.T) {
	t.Parallel()

	t.Run("nothing asked for", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		calls := &awstest.Counted[*sqs.ReceiveMessageInput]{}
		q := env.faultyQueue(t, faults{fail: calls.Fail}, nil)
		got, err := q.Receive(ctx(t), 0, time.Second)
		require.NoError(t, err)
		assert.Empty(t, got)
		assert.Zero(t, calls.Calls(), "SQS is not asked")
	})

	t.Run("receive fails", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		q := env.faultyQueue(t, faults{fail: failAll[*sqs.ReceiveMessageInput]()}, nil)
		_, err := q.Receive(ctx(t), 10, time.Second)
		require.ErrorIs(t, err, errInjected)
		assert.ErrorContains(t, err, "receive tasks from "+env.url)
	})

	t.Run("caller gives up while only poison came", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		_, err := env.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(env.url), MessageBody: aws.String("not json")})
		require.NoError(t, err)
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		q := env.faultyQueue(t, faults{after: func(in any) {
			if _, ok := in.(*sqs.ReceiveMessageInput); ok {
				cancel()
			}
		}}, func(c *Config) { c.Logger = (&logBuffer{}).logger() })
		got, err := q.Receive(c, 10, 5*time.Second)
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, got)
	})

	t.Run("a record that cannot be handled is logged and left", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, 0)
		logs := &logBuffer{}
		clock := &fakeClock{}
		q := env.faultyQueue(t, faults{fail: awstest.AnyOf(failAll[*sqs.ChangeMessageVisibilityInput](), failAll[*sqs.SendMessageInput]())},
			func(c *Config) { c.Now, c.Logger = clock.Now, logs.logger() })
		task := newTask("bob@a.example")
		task.NotBefore = gatewaytest.Now().Add(20 * time.Minute)
		// Sent a second before its time, by that clock: it arrives early.
		clock.Set(task.NotBefore.Add(-time.Second))
		require.NoError(t, q.Enqueue(ctx(t), task))
		clock.Set(time.Now())

		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(logs.String(), "delivery record not handled") && time.Now().Before(deadline) {
			got, err := q.Receive(ctx(t), 10, time.Second)
			require.NoError(t, err)
			assert.Empty(t, got, "not handed out before it is due")
		}
		assert.Contains(t, logs.String(), "delivery record not handled")
		assert.Contains(t, logs.String(), errInjected.Error())
		assert.Equal(t, 1, env.count(t, env.url), "the record stays for the visibility timeout to bring back")
	})
}

// received is one message of e's delivery queue, received with the plain
// SDK, as a Record.
func (e *env) received(t *testing.T) Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.url), WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
		require.NoError(t, err)
		if len(out.Messages) > 0 {
			m := out.Messages[0]
			return Record{MessageID: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body), Attributes: m.Attributes}
		}
	}
	t.Fatal("no message received")
	return Record{}
}

// sendBody puts body on e's delivery queue, due at once whatever it says.
func (e *env) sendBody(t *testing.T, body string) {
	t.Helper()
	_, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(e.url), MessageBody: aws.String(body)})
	require.NoError(t, err)
}

// TestHoldBackFailures: a copy received before its time is hidden until
// due; when SQS will not hide it, a fresh copy replaces it. What fails on
// the way is reported, and the task is never handed out early nor lost.
func TestHoldBackFailures(t *testing.T) {
	t.Parallel()
	visibility := failAll[*sqs.ChangeMessageVisibilityInput]()
	cases := []struct {
		name string
		fail func(any) error
		// cancelOnVisibility: the caller gives up during the visibility change.
		cancelOnVisibility bool
		copies             int
		err, log           string
	}{
		{"replaced when it cannot be hidden", visibility, false, 1, "", "sending a fresh copy"},
		{"caller gives up", visibility, true, 1, "change visibility", ""},
		{"fresh copy not sent", awstest.AnyOf(visibility, failAll[*sqs.SendMessageInput]()), false, 1, "send task", "sending a fresh copy"},
		{"replaced copy not deleted", awstest.AnyOf(visibility, failAll[*sqs.DeleteMessageInput]()), false, 2, "delete the copy replaced", "sending a fresh copy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, 0)
			logs := &logBuffer{}
			c, cancel := context.WithCancel(ctx(t))
			defer cancel()
			fail := tc.fail
			if tc.cancelOnVisibility {
				fail = func(in any) error {
					if _, ok := in.(*sqs.ChangeMessageVisibilityInput); ok {
						cancel()
					}
					return tc.fail(in)
				}
			}
			q := env.faultyQueue(t, faults{fail: fail}, func(c *Config) { c.Logger = logs.logger() })
			task := newTask("bob@a.example")
			task.NotBefore = time.Now().Add(time.Hour)
			m, err := q.encode(task, time.Time{}, time.Now())
			require.NoError(t, err)
			env.sendBody(t, m.body)

			got, ok, err := q.Admit(c, env.received(t))
			assert.False(t, ok, "not handed out before it is due")
			assert.Empty(t, got.ID)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
				assert.ErrorContains(t, err, "hold back task "+task.ID)
			}
			if tc.log != "" {
				assert.Contains(t, logs.String(), tc.log)
			}
			assert.Equal(t, tc.copies, env.count(t, env.url), "copies of the task in the queue")
		})
	}
}

// TestDuplicateThatCannotBeDropped: a second copy of a task leased here is
// not handed out even when deleting it fails.
func TestDuplicateThatCannotBeDropped(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.faultyQueue(t, faults{fail: failAll[*sqs.DeleteMessageInput]()}, nil)
	task := newTask("bob@a.example")
	m, err := q.encode(task, time.Time{}, time.Now())
	require.NoError(t, err)
	env.sendBody(t, m.body)
	env.sendBody(t, m.body)

	first, ok, err := q.Admit(ctx(t), env.received(t))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, task.ID, first.ID)
	_, ok, err = q.Admit(ctx(t), env.received(t))
	require.ErrorContains(t, err, "drop duplicate of task "+task.ID)
	assert.ErrorIs(t, err, errInjected)
	assert.False(t, ok)
}

// TestAttemptCountsRedeliveries: a copy handed out before (its receive
// count) counts the attempts its crashed workers made; a hold-back
// receive does not count, and a count that does not parse is one.
func TestAttemptCountsRedeliveries(t *testing.T) {
	q, err := New(sqs.New(sqs.Options{Region: awstest.Region}), Config{QueueURL: "http://q", DeadLetterURL: "http://dlq"})
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		count string
		early bool
		want  int
	}{
		{"first receive", "1", false, 2},
		{"third receive", "3", false, 4},
		{"no count", "", false, 2},
		{"count that does not parse", "many", false, 2},
		{"count of zero", "0", false, 2},
		{"early copy, second receive", "2", true, 2},
		{"early copy, third receive", "3", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := newTask("bob@a.example")
			task.Attempt = 2
			body := fmt.Sprintf(`{"v":1,"id":%q,"message_id":%q,"kind":"local","recipients":["bob@a.example"],"attempt":2,"created_at":%q,"early":%v}`,
				task.ID, task.MessageID, task.CreatedAt.Format(time.RFC3339Nano), tc.early)
			attrs := map[string]string{}
			if tc.count != "" {
				attrs[string(types.MessageSystemAttributeNameApproximateReceiveCount)] = tc.count
			}
			got, ok, err := q.Admit(t.Context(), Record{MessageID: "m-" + tc.name, ReceiptHandle: "r", Body: body, Attributes: attrs})
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, tc.want, got.Attempt)
		})
	}
}

// TestLeaseSweep: once the lease map is large, leases that lapsed (tasks
// whose worker never settled them) are swept out; live ones stay.
func TestLeaseSweep(t *testing.T) {
	q, err := New(sqs.New(sqs.Options{Region: awstest.Region}), Config{QueueURL: "http://q", DeadLetterURL: "http://dlq"})
	require.NoError(t, err)
	q.sweepAt = 2
	q.leases["lapsed"] = lease{messageID: "m1", receipt: "r1", until: time.Now().Add(-time.Minute)}
	q.leases["live"] = lease{messageID: "m2", receipt: "r2", until: time.Now().Add(time.Minute)}

	require.True(t, q.lease("new", "m3", "r3", false))
	assert.NotContains(t, q.leases, "lapsed")
	assert.Contains(t, q.leases, "live")
	assert.Contains(t, q.leases, "new")
	assert.Equal(t, leaseSweepAt, q.sweepAt, "the next sweep waits for the map to grow again")
	assert.False(t, q.lease("live", "m4", "r4", false), "a live lease still stops a second copy")
}

// TestSettleFailures: Ack, Retry and DeadLetter report what failed, and
// what is left queued says which of their steps happened.
func TestSettleFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		fail   func(any) error
		settle func(t *testing.T, q *Queue, task gateway.Task) error
		copies int // in the delivery queue afterwards
		dead   int // in the dead-letter queue afterwards
		err    string
	}{
		{"ack not deleted", failAll[*sqs.DeleteMessageInput](), func(t *testing.T, q *Queue, task gateway.Task) error {
			return q.Ack(ctx(t), task)
		}, 1, 0, "ack task"},
		{"retry that does not encode", nil, func(t *testing.T, q *Queue, task gateway.Task) error {
			task.CreatedAt = unencodable
			return q.Retry(ctx(t), task, time.Now())
		}, 1, 0, "retry: encode task"},
		{"retry copy not sent", failAll[*sqs.SendMessageInput](), func(t *testing.T, q *Queue, task gateway.Task) error {
			return q.Retry(ctx(t), task, time.Now())
		}, 1, 0, "retry: send task"},
		{"retried copy not deleted", failAll[*sqs.DeleteMessageInput](), func(t *testing.T, q *Queue, task gateway.Task) error {
			return q.Retry(ctx(t), task, time.Now().Add(time.Hour))
		}, 2, 0, "the new copy is queued, the old one not deleted"},
		{"dead letter that does not encode", nil, func(t *testing.T, q *Queue, task gateway.Task) error {
			return q.DeadLetter(ctx(t), task, gateway.DeadLetter{TaskID: task.ID, FirstAttempt: unencodable})
		}, 1, 0, "encode dead-letter record"},
		{"dead letter not sent", failAll[*sqs.SendMessageInput](), func(t *testing.T, q *Queue, task gateway.Task) error {
			return q.DeadLetter(ctx(t), task, gateway.DeadLetter{TaskID: task.ID})
		}, 1, 0, "dead-letter task"},
		{"dead-lettered task not deleted", failAll[*sqs.DeleteMessageInput](), func(t *testing.T, q *Queue, task gateway.Task) error {
			return q.DeadLetter(ctx(t), task, gateway.DeadLetter{TaskID: task.ID})
		}, 1, 1, "the record is written, the task not deleted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, 0)
			q := env.faultyQueue(t, faults{fail: tc.fail}, nil)
			require.NoError(t, q.Enqueue(ctx(t), newTask("bob@a.example")))
			task := receiveN(t, q, 1, 10*time.Second)[0]
			err := tc.settle(t, q, task)
			require.ErrorContains(t, err, tc.err)
			if tc.fail != nil {
				assert.ErrorIs(t, err, errInjected)
			}
			assert.Equal(t, tc.copies, env.count(t, env.url), "delivery queue")
			assert.Equal(t, tc.dead, env.count(t, env.dlq), "dead-letter queue")
		})
	}
}

// TestRetryThatFailsKeepsTheLease: the task is still out on lease here
// after a Retry whose copy was not sent, so a second copy received
// meanwhile is still dropped rather than delivered twice.
func TestRetryThatFailsKeepsTheLease(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.faultyQueue(t, faults{fail: failAll[*sqs.SendMessageInput]()}, nil)
	task := newTask("bob@a.example")
	require.NoError(t, q.Enqueue(ctx(t), task))
	got := receiveN(t, q, 1, 10*time.Second)[0]
	require.ErrorIs(t, q.Retry(ctx(t), got, time.Now()), errInjected)

	require.NoError(t, q.Enqueue(ctx(t), task))
	again, err := q.Receive(ctx(t), 10, 2*time.Second)
	require.NoError(t, err)
	assert.Empty(t, again, "the second copy is a duplicate of the leased task")
	require.NoError(t, q.Ack(ctx(t), got))
	assert.Equal(t, 0, env.count(t, env.url))
}

// TestRetryWithoutTime: a Retry with no time is due at once.
func TestRetryWithoutTime(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 0)
	q := env.queue(t, nil)
	require.NoError(t, q.Enqueue(ctx(t), newTask("bob@a.example")))
	got := receiveN(t, q, 1, 10*time.Second)[0]
	got.Attempt = 1
	require.NoError(t, q.Retry(ctx(t), got, time.Time{}))
	again := receiveN(t, q, 1, 10*time.Second)[0]
	assert.Equal(t, got.ID, again.ID)
	assert.Equal(t, 1, again.Attempt)
	require.NoError(t, q.Ack(ctx(t), again))
}

// TestReceiptGone: the answers that mean "this receipt no longer holds a
// message" (SQS: expired; moto: invalid) are no error for a delete; other
// failures are.
func TestReceiptGone(t *testing.T) {
	expired := &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "Value AQEB for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."}
	for _, tc := range []struct {
		name string
		err  error
		gone bool
	}{
		{"expired (SQS)", expired, true},
		{"invalid (moto)", &types.ReceiptHandleIsInvalid{Message: aws.String("The input receipt handle is invalid.")}, true},
		{"another parameter", &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "Value 99999 for parameter VisibilityTimeout is invalid."}, false},
		{"another code", &smithy.GenericAPIError{Code: "AccessDenied", Message: "receipt handle"}, false},
		{"no API error", errInjected, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.gone, receiptGone(fmt.Errorf("delete: %w", tc.err)))
		})
	}

	t.Run("ack", func(t *testing.T) {
		env := newEnv(t, 0)
		q := env.faultyQueue(t, faults{fail: awstest.FailCalls[*sqs.DeleteMessageInput](1, nil, expired)}, nil)
		require.NoError(t, q.Enqueue(ctx(t), newTask("bob@a.example")))
		task := receiveN(t, q, 1, 10*time.Second)[0]
		assert.NoError(t, q.Ack(ctx(t), task), "an expired receipt: the task is out with another worker")
	})
}
