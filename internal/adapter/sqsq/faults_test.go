package sqsq

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
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
	cfg := awstest.WithFaults(awstest.Config(t), awstest.Faults{Fail: f.fail, After: f.after})
	if f.batch != nil {
		cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("testBatchFaults", f.takeFromBatch), middleware.After)
		})
	}
	c := Config{QueueURL: e.url, DeadLetterURL: e.dlq, VisibilityTimeout: testLease}
	if mod != nil {
		mod(&c)
	}
	q, err := New(sqs.NewFromConfig(cfg), c)
	require.NoError(t, err)
	return q
}

// takeFromBatch lets f.batch take entries out of a SendMessageBatch before
// it is sent and adds them to the answer's failures, as SQS reports
// entries it did not take.
func (f faults) takeFromBatch(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	b, ok := in.Parameters.(*sqs.SendMessageBatchInput)
	if !ok {
		return next.HandleInitialize(ctx, in)
	}
	failed := f.batch(b)
	if len(b.Entries) == 0 {
		// SQS refuses an empty batch: every entry "failed".
		return middleware.InitializeOutput{Result: &sqs.SendMessageBatchOutput{Failed: failed}}, middleware.Metadata{}, nil
	}
	out, md, err := next.HandleInitialize(ctx, in)
	if res, ok := out.Result.(*sqs.SendMessageBatchOutput); ok && err == nil {
		res.Failed = append(res.Failed, failed...)
	}
	return out, md, err
}

// failAll fails every call of type T with errInjected.
func failAll[T any]() func(any) error { return awstest.FailCalls[T](1, nil, errInjected) }

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
