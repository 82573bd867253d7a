package sqsq

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
)

// errInjected is what a failed call answers in these tests.
var errInjected = errors.New("injected SQS failure")

// faults shapes the answers of a queue's SQS calls through the real SDK
// client's middleware stack (aws.Config.APIOptions); nothing of the client
// is replaced.
type faults struct {
	// fail sees each call's input (*sqs.SendMessageInput, …) before it is
	// sent; an error it returns is the call's answer, and the call never
	// reaches SQS (nor the SDK's retries).
	fail func(in any) error
	// batch may take entries out of a SendMessageBatch before it is sent,
	// returning them as the answer's failures, as SQS reports entries it
	// did not take.
	batch func(in *sqs.SendMessageBatchInput) []types.BatchResultErrorEntry
	// after runs once a call was answered.
	after func(in any)
}

// faultyQueue is a Queue on e's queues whose SQS calls go through f.
func (e *env) faultyQueue(t *testing.T, f faults, mod func(*Config)) *Queue {
	t.Helper()
	cfg := awstest.Config(t)
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("testFaults", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if f.fail != nil {
				if err := f.fail(in.Parameters); err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
			}
			var failed []types.BatchResultErrorEntry
			if b, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok && f.batch != nil {
				if failed = f.batch(b); len(b.Entries) == 0 {
					// SQS refuses an empty batch: every entry "failed".
					return middleware.InitializeOutput{Result: &sqs.SendMessageBatchOutput{Failed: failed}}, middleware.Metadata{}, nil
				}
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if res, ok := out.Result.(*sqs.SendMessageBatchOutput); ok && err == nil {
				res.Failed = append(res.Failed, failed...)
			}
			if f.after != nil {
				f.after(in.Parameters)
			}
			return out, md, err
		}), middleware.Before)
	})
	c := Config{QueueURL: e.url, DeadLetterURL: e.dlq, VisibilityTimeout: testLease}
	if mod != nil {
		mod(&c)
	}
	q, err := New(sqs.NewFromConfig(cfg), c)
	require.NoError(t, err)
	return q
}

// failCalls fails every call of type T that match accepts (nil: all),
// from the from-th such call on, with err.
func failCalls[T any](from int, match func(T) bool, err error) func(any) error {
	var seen atomic.Int64
	return func(in any) error {
		v, ok := in.(T)
		if !ok || (match != nil && !match(v)) || seen.Add(1) < int64(from) {
			return nil
		}
		return err
	}
}

// failAll fails every call of type T with errInjected.
func failAll[T any]() func(any) error { return failCalls[T](1, nil, errInjected) }

// anyOf fails a call when one of rules does.
func anyOf(rules ...func(any) error) func(any) error {
	return func(in any) error {
		for _, r := range rules {
			if err := r(in); err != nil {
				return err
			}
		}
		return nil
	}
}

// counted counts the calls of type T.
type counted[T any] struct{ n atomic.Int64 }

func (c *counted[T]) fail(in any) error {
	if _, ok := in.(T); ok {
		c.n.Add(1)
	}
	return nil
}

// logBuffer is a logger whose records the test reads back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
