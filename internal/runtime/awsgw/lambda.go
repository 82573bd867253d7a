package awsgw

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/sqsq"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// DeliverBatch handles one SQS batch of delivery tasks (the deliver
// function) and returns the batch item failures (never an error: one that
// failed the whole batch would redeliver the records that succeeded): records to leave in the
// queue. A record that does not parse is a failure, so that SQS's redrive
// policy eventually moves it to the dead-letter queue, and one bad record
// never fails the others.
func (g *Gateway) DeliverBatch(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	type job struct {
		rec  events.SQSMessage
		task gateway.Task
	}
	jobs := make([]job, 0, len(ev.Records))
	for _, rec := range ev.Records {
		// Admit parses the record and holds back a copy that arrived before
		// it is due; either way the record stays in the queue (a failure
		// to Lambda), and a poison record reaches the DLQ by redrive.
		// Lambda deletes the records this batch does not report as failed,
		// so the queue leaves those deletes to it (CallerDeletes).
		t, ok, err := g.Queue.Admit(ctx, sqsq.Record{MessageID: rec.MessageId, ReceiptHandle: rec.ReceiptHandle, Body: rec.Body, Attributes: rec.Attributes, CallerDeletes: true})
		if err != nil || !ok {
			if err != nil {
				g.log.ErrorContext(ctx, "delivery record not admitted", "sqs_message_id", rec.MessageId, "err", err)
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			continue
		}
		jobs = append(jobs, job{rec: rec, task: t})
	}
	failed := make([]bool, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func(i int, j job) {
			defer wg.Done()
			// The worker settles the task (a retry is sent as a new copy),
			// and success here is what deletes this record.
			if err := g.Worker.Process(ctx, j.task); err != nil {
				g.log.ErrorContext(observe.WithMessageID(ctx, j.task.MessageID), "delivery task failed; SQS will redeliver it", "task", j.task.ID, "err", err)
				failed[i] = true
			}
		}(i, j)
	}
	wg.Wait()
	for i, f := range failed {
		if f {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: jobs[i].rec.MessageId})
		}
	}
	return resp, nil
}

// DeadLetterBatch handles records of the dead-letter queue (the
// deadletter function): records our worker put there are already settled
// and reported; raw tasks that SQS moved there after too many failed
// receives are settled now — their recipients fail and the sender gets a
// report.
func (g *Gateway) DeadLetterBatch(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, rec := range ev.Records {
		if err := g.HandleDeadLetter(ctx, rec.Body); err != nil {
			g.log.ErrorContext(ctx, "dead-letter record not handled", "sqs_message_id", rec.MessageId, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

// HandleDeadLetter settles one dead-letter record, and counts it
// (DeadLettered) once it is settled: a record whose handling fails comes
// back and is counted when it finally succeeds.
func (g *Gateway) HandleDeadLetter(ctx context.Context, body string) error {
	t, dl, err := sqsq.ParseDeadLetterRecord(body)
	if err != nil {
		// Nothing to settle: keep a trace and let it go.
		g.log.ErrorContext(ctx, "unreadable dead-letter record dropped", "err", err, "body_prefix", prefix(body, 200))
		return nil
	}
	if dl != nil {
		ctx = observe.WithMessageID(ctx, dl.MessageID)
		g.log.WarnContext(ctx, "dead letter", "message_id", dl.MessageID, "task", dl.TaskID, "failure_reason", dl.FailureReason, "attempts", dl.Attempts)
		// The table is where operators see and redrive dead letters: once
		// it holds the record, the queue's copy is deleted.
		if err := g.keepDead(ctx, t, *dl); err != nil {
			return fmt.Errorf("keep dead letter of %s: %w", t.ID, err)
		}
		g.Metrics.DeadLettered(ctx, dl.MessageID, dl.FailureReason)
		return nil
	}
	ctx = observe.WithMessageID(ctx, t.MessageID)
	g.log.ErrorContext(ctx, "poison task reached the dead-letter queue", "task", t.ID, "message_id", t.MessageID)
	// FailPoison counts the recipients it fails (DeliveryFailures).
	if err := g.Worker.FailPoison(ctx, t, poisonReason); err != nil {
		return fmt.Errorf("settle poison task %s: %w", t.ID, err)
	}
	now := time.Now().UTC()
	poison := gateway.DeadLetter{FailureReason: string(amtp.CodeTemporaryFailure), ErrorMessage: poisonReason, FirstAttempt: t.CreatedAt, LastAttempt: now, DLQTimestamp: now}
	if err := g.keepDead(ctx, t, poison); err != nil {
		return fmt.Errorf("keep dead letter of poison task %s: %w", t.ID, err)
	}
	g.Metrics.DeadLettered(ctx, t.MessageID, "poison")
	return nil
}

// poisonReason is the failure recorded for the recipients of a task that
// crashed its worker until SQS gave up on it.
const poisonReason = "delivery failed repeatedly without completing"

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// PollDeadLetters runs the dead-letter handling as a poller (for `agentry
// serve` on AWS, where no Lambda consumes the DLQ) until ctx ends.
func (g *Gateway) PollDeadLetters(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := g.dlq.receive(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(g.Config.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 10,
		})
		if err != nil {
			if ctx.Err() == nil {
				g.log.Error("poll dead letters", "err", err)
				select {
				case <-time.After(5 * time.Second):
				case <-ctx.Done():
				}
			}
			continue
		}
		for _, m := range out.Messages {
			if err := g.HandleDeadLetter(ctx, aws.ToString(m.Body)); err != nil {
				g.log.Error("dead-letter record not handled", "err", err)
				continue
			}
			if _, err := g.dlq.delete(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(g.Config.DLQURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				g.log.Error("delete dead-letter record", "err", err)
			}
		}
	}
}
