package awsgw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/s3blob"
)

// silentAWS is an endpoint that accepts requests and never answers, as
// AWS does from behind a network that drops its packets. arrived gets a
// value for each request that reached it.
func silentAWS(t *testing.T) (cfg aws.Config, arrived chan struct{}) {
	arrived = make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read to the end: only then does the server notice that the
		// client has gone and end the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		BaseEndpoint: aws.String(srv.URL),
	}, arrived
}

// TestBoundCallsGivesUpOnSilentAWS: a call to an endpoint that never
// answers fails with ErrAWSCallTimeout (a backend failure), while a caller
// that cancels still gets its cancellation.
func TestBoundCallsGivesUpOnSilentAWS(t *testing.T) {
	getItem := &dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}}}
	cases := []struct {
		name   string
		cancel bool // the caller cancels once the request reached AWS
		want   error
		not    error
	}{
		{"AWS silent", false, ErrAWSCallTimeout, context.DeadlineExceeded},
		{"caller cancels", true, context.Canceled, ErrAWSCallTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, arrived := silentAWS(t)
			boundCalls(&cfg, 200*time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				go func() {
					<-arrived
					cancel()
				}()
			}
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, getItem)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.NotErrorIs(t, err, tc.not)
		})
	}
}

// TestBoundCallsLeavesLongPollsTheirWait: a ReceiveMessage may be held for
// its WaitTimeSeconds (the queue's, up to 20 s, when it sends none) on top
// of the bound; other calls get the bound alone, except S3's GetObject,
// whose body is read after the call returns.
func TestBoundCallsLeavesLongPollsTheirWait(t *testing.T) {
	const bound = time.Second
	errSeen := errors.New("deadline seen")
	var (
		left    time.Duration
		bounded bool
	)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), BaseEndpoint: aws.String("http://127.0.0.1:1")}
	// Records the deadline the call runs under, before anything is sent.
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("seeDeadline", func(ctx context.Context, _ middleware.FinalizeInput, _ middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			var d time.Time
			d, bounded = ctx.Deadline()
			left = time.Until(d)
			return middleware.FinalizeOutput{}, middleware.Metadata{}, errSeen
		}), middleware.Before)
	})
	boundCalls(&cfg, bound)
	q := sqs.NewFromConfig(cfg)
	db := dynamodb.NewFromConfig(cfg)
	blobs, err := s3blob.New(cfg, "bodies")
	require.NoError(t, err)
	getItem := &dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}}}

	cases := []struct {
		name    string
		call    func() error
		bounded bool
		atLeast time.Duration
		atMost  time.Duration
	}{
		{"receive with a 10 s wait", func() error {
			_, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String("q"), WaitTimeSeconds: 10})
			return err
		}, true, 10 * time.Second, bound + 10*time.Second},
		{"receive with the queue's wait", func() error {
			_, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String("q")})
			return err
		}, true, 20 * time.Second, bound + 20*time.Second},
		{"any other call", func() error {
			_, err := db.GetItem(context.Background(), getItem)
			return err
		}, true, 0, bound},
		{"S3 GetObject", func() error {
			_, err := blobs.Get(context.Background(), "sha256:"+strings.Repeat("0", 64))
			return err
		}, false, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.call(), errSeen)
			require.Equal(t, tc.bounded, bounded, "the call has a deadline")
			if tc.bounded {
				assert.Greater(t, left, tc.atLeast)
				assert.LessOrEqual(t, left, tc.atMost)
			}
		})
	}
}
