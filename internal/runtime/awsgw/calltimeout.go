package awsgw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
)

// DefaultAWSCallTimeout bounds one AWS call: the SDK's attempts and the
// back-off between them together. DynamoDB and SQS answer in milliseconds
// and the SDK's retries of throttled calls wait a few seconds at most, so
// a call still unanswered after this is talking to an endpoint that does
// not answer at all (packets dropped): without a bound, the SDK's HTTP
// client (no response timeout) waits for as long as the outage lasts, and
// a send holds its client that long instead of answering 503.
const DefaultAWSCallTimeout = 10 * time.Second

// AWSCallTimeout replaces DefaultAWSCallTimeout (tests make outages of a
// few seconds). A long poll (ReceiveMessage's WaitTimeSeconds) gets its
// wait on top.
func AWSCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// ErrAWSCallTimeout is what a call that outlived its bound fails with.
// It is deliberately not context.DeadlineExceeded: the caller's context
// has not ended, and the gateway reports this as a backend failure (503,
// logged), not as a request the client gave up.
var ErrAWSCallTimeout = errors.New("AWS did not answer in time")

const callTimeoutID = "AgentryCallTimeout"

// opStreamed is the one operation whose answer is read after the call
// returns (a stack's ID is its operation's name).
const opStreamed = "GetObject"

// boundCalls makes every client built from cfg give up a call after d
// (plus the wait of a long poll), except S3's GetObject: s3blob reads its
// body after the call has returned, when the call's context has ended, so
// that a bound would cut every body short. Only deliveries of large
// messages read S3, and the deliver function's timeout bounds them.
func boundCalls(cfg *aws.Config, d time.Duration) {
	if d <= 0 {
		d = DefaultAWSCallTimeout
	}
	// A copy of an aws.Config shares its APIOptions array with the
	// original: appending to a clone keeps the caller's config untouched.
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		if st.ID() == opStreamed {
			return nil
		}
		// Outermost, so that the bound covers every attempt and back-off.
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc(callTimeoutID, func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			limit := d + longPollWait(in.Parameters)
			cctx, cancel := context.WithTimeout(ctx, limit)
			defer cancel()
			out, md, err := next.HandleInitialize(cctx, in)
			if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %s: %w", limit, ErrAWSCallTimeout)
			}
			return out, md, err
		}), middleware.Before)
	})
}

// maxLongPoll is the longest wait SQS allows a ReceiveMessage.
const maxLongPoll = 20 * time.Second

// longPollWait is how long AWS may rightly hold the call before answering.
func longPollWait(params any) time.Duration {
	in, ok := params.(*sqs.ReceiveMessageInput)
	if !ok {
		return 0
	}
	if in.WaitTimeSeconds <= 0 {
		// Zero is not sent at all, and the queue's own wait applies.
		return maxLongPoll
	}
	return time.Duration(in.WaitTimeSeconds) * time.Second
}
