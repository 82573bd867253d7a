package awsres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/awstest"
)

var seq atomic.Int64

// freshNames are names no other test (or earlier run against a shared
// emulator) uses, so that Ensure starts from nothing.
func freshNames(t *testing.T) awsres.Names {
	t.Helper()
	n, err := awsres.NamesFor(fmt.Sprintf("ens%d-%d-%d", os.Getpid()%100000, time.Now().UnixNano()%1000000, seq.Add(1)))
	require.NoError(t, err)
	return n
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestEnsureCreatesWhatIsMissing: from nothing, Ensure creates the table
// (with TTL), the queues (the delivery queue redriving to the DLQ) and the
// bucket, and says where they are; run again, it finds them and leaves
// them as they are.
func TestEnsureCreatesWhatIsMissing(t *testing.T) {
	for _, region := range []string{awstest.Region, "eu-west-1"} {
		t.Run(region, func(t *testing.T) {
			ctx := testCtx(t)
			cfg := awstest.Config(t)
			cfg.Region = region
			n := freshNames(t)

			ep, err := awsres.Ensure(ctx, cfg, n)
			require.NoError(t, err)
			assert.Equal(t, n.Table, ep.Table)
			assert.Equal(t, n.Bucket, ep.Bucket)
			assert.True(t, strings.HasSuffix(ep.DeliveryQueueURL, "/"+n.DeliveryQueue), ep.DeliveryQueueURL)
			assert.True(t, strings.HasSuffix(ep.DeadLetterURL, "/"+n.DeadLetter), ep.DeadLetterURL)
			assert.True(t, strings.HasSuffix(ep.DeadLetterARN, ":"+n.DeadLetter), ep.DeadLetterARN)
			assert.Contains(t, ep.DeadLetterARN, ":"+region+":")
			assert.Empty(t, ep.StateMachineARN, "Ensure makes no state machine")

			ddb := dynamodb.NewFromConfig(cfg)
			table, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(n.Table)})
			require.NoError(t, err)
			assert.Equal(t, ddbtypes.TableStatusActive, table.Table.TableStatus)
			assert.Len(t, table.Table.GlobalSecondaryIndexes, 2)
			ttl, err := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(n.Table)})
			require.NoError(t, err)
			assert.Equal(t, ddbtypes.TimeToLiveStatusEnabled, ttl.TimeToLiveDescription.TimeToLiveStatus)
			assert.Equal(t, awsres.AttrTTL, aws.ToString(ttl.TimeToLiveDescription.AttributeName))

			attrs, err := sqs.NewFromConfig(cfg).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
				QueueUrl: aws.String(ep.DeliveryQueueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
			require.NoError(t, err)
			assert.Contains(t, attrs.Attributes[string(sqstypes.QueueAttributeNameRedrivePolicy)], ep.DeadLetterARN)
			assert.Equal(t, fmt.Sprint(awsres.VisibilityTimeoutSeconds), attrs.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)])

			s := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
			loc, err := s.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(n.Bucket)})
			require.NoError(t, err)
			if region == "us-east-1" {
				assert.Empty(t, loc.LocationConstraint, "us-east-1 takes no location constraint")
			} else {
				assert.EqualValues(t, region, loc.LocationConstraint, "the bucket is in the configured region")
			}

			// What is there already is kept: an item survives a second run.
			item := map[string]ddbtypes.AttributeValue{
				awsres.AttrPK: &ddbtypes.AttributeValueMemberS{Value: "keep"},
				awsres.AttrSK: &ddbtypes.AttributeValueMemberS{Value: "me"},
			}
			_, err = ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(n.Table), Item: item})
			require.NoError(t, err)
			again, err := awsres.Ensure(ctx, cfg, n)
			require.NoError(t, err)
			assert.Equal(t, ep, again)
			got, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(n.Table), Key: item})
			require.NoError(t, err)
			assert.NotEmpty(t, got.Item, "the existing table was not replaced")
		})
	}
}

// canned is an HTTP answer given in place of one attempt's round trip;
// nil lets the attempt through to the emulator.
type canned struct {
	status int
	xml    bool // S3's XML error document, else the JSON protocol's
	code   string
	msg    string
}

func (c *canned) response() *smithyhttp.Response {
	h := http.Header{}
	var body string
	switch {
	case c.code == "":
		// No body at all, as S3 answers a HEAD.
	case c.xml:
		h.Set("Content-Type", "application/xml")
		body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + c.code + `</Code><Message>` + c.msg + `</Message><RequestId>canned</RequestId></Error>`
	default:
		h.Set("Content-Type", "application/x-amz-json-1.0")
		body = `{"__type":"` + c.code + `","message":"` + c.msg + `"}`
	}
	h.Set("X-Amzn-Requestid", "canned")
	return &smithyhttp.Response{Response: &http.Response{
		StatusCode: c.status, Status: fmt.Sprintf("%d %s", c.status, http.StatusText(c.status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}}
}

// faults answers the listed operations' calls, in order, with canned
// responses through the SDK's middleware stack, so that the real clients'
// deserializers and retryers handle them; it records every operation
// Ensure makes.
type faults struct {
	mu      sync.Mutex
	answers map[string][]*canned
	ops     []string
}

func (f *faults) install(cfg aws.Config) aws.Config {
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		// Innermost in the deserialize step: in place of the HTTP round
		// trip, after the retryer and before the deserializer.
		return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("ensureFaults",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				if c := f.next(awsmiddleware.GetOperationName(ctx)); c != nil {
					return middleware.DeserializeOutput{RawResponse: c.response()}, middleware.Metadata{}, nil
				}
				return next.HandleDeserialize(ctx, in)
			}), middleware.After)
	})
	return cfg
}

func (f *faults) next(op string) *canned {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	q := f.answers[op]
	if len(q) == 0 {
		return nil
	}
	f.answers[op] = q[1:]
	return q[0]
}

func (f *faults) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

var (
	ddbDenied        = &canned{status: 400, code: "com.amazonaws.dynamodb.v20120810#AccessDeniedException", msg: "not allowed"}
	ddbNotFound      = &canned{status: 400, code: "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", msg: "Requested resource not found"}
	ttlAlreadyOn     = &canned{status: 400, code: "com.amazon.coral.validate#ValidationException", msg: "TimeToLive is already enabled"}
	sqsDenied        = &canned{status: 400, code: "com.amazonaws.sqs#AccessDenied", msg: "not allowed"}
	s3Denied         = &canned{status: 403, xml: true, code: "AccessDenied", msg: "Access Denied"}
	s3NoBucket       = &canned{status: 404}
	s3AlreadyYours   = &canned{status: 409, xml: true, code: "BucketAlreadyOwnedByYou", msg: "Your previous request to create the named bucket succeeded and you already own it."}
	passThrough      *canned
	allResourceCalls = []string{"DescribeTable", "CreateQueue", "GetQueueAttributes", "CreateQueue", "HeadBucket"}
)

// TestEnsureFailures: each AWS call that fails stops Ensure with an error
// naming what it was doing and wrapping AWS's error; the answers another
// process bootstrapping the same deployment at the same time causes
// (already exists, already owned, TTL already enabled) are not failures.
func TestEnsureFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing bool // Ensure ran once before, without faults
		answers  map[string][]*canned
		wantErr  string // "" = Ensure succeeds
		wantCode string
		wantOps  []string // the calls Ensure made, when checked
	}{
		{name: "table unreadable", answers: map[string][]*canned{"DescribeTable": {ddbDenied}},
			wantErr: "describe table", wantCode: "AccessDeniedException", wantOps: []string{"DescribeTable"}},
		{name: "table refused", answers: map[string][]*canned{"CreateTable": {ddbDenied}},
			wantErr: "create table", wantCode: "AccessDeniedException", wantOps: []string{"DescribeTable", "CreateTable"}},
		{name: "table never seen active", answers: map[string][]*canned{"DescribeTable": {passThrough, ddbDenied}},
			wantErr: "wait for table", wantCode: "AccessDeniedException"},
		{name: "TTL refused", answers: map[string][]*canned{"UpdateTimeToLive": {ddbDenied}},
			wantErr: "enable TTL", wantCode: "AccessDeniedException"},
		{name: "TTL refused and not on", answers: map[string][]*canned{"UpdateTimeToLive": {ttlAlreadyOn}},
			wantErr: "enable TTL", wantCode: "ValidationException"},
		{name: "dead-letter queue refused", answers: map[string][]*canned{"CreateQueue": {sqsDenied}},
			wantErr: "create queue", wantCode: "AccessDenied"},
		{name: "dead-letter queue ARN unreadable", answers: map[string][]*canned{"GetQueueAttributes": {sqsDenied}},
			wantErr: "queue ARN of", wantCode: "AccessDenied"},
		{name: "delivery queue refused", answers: map[string][]*canned{"CreateQueue": {passThrough, sqsDenied}},
			wantErr: "create queue", wantCode: "AccessDenied"},
		{name: "bucket refused", answers: map[string][]*canned{"CreateBucket": {s3Denied}},
			wantErr: "create bucket", wantCode: "AccessDenied"},
		// Another bootstrap of the same deployment created the table
		// between our look and our create, and enabled its TTL first:
		// DynamoDB refuses to enable TTL twice (moto does not, so that
		// answer is AWS's, given here).
		{name: "table created and TTL enabled by another bootstrap", existing: true,
			answers: map[string][]*canned{"DescribeTable": {ddbNotFound}, "UpdateTimeToLive": {ttlAlreadyOn}}},
		{name: "bucket created by another bootstrap", existing: true,
			answers: map[string][]*canned{"HeadBucket": {s3NoBucket}, "CreateBucket": {s3AlreadyYours}},
			wantOps: slices.Concat(allResourceCalls, []string{"CreateBucket"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			n := freshNames(t)
			var before awsres.Endpoints
			if tc.existing {
				var err error
				before, err = awsres.Ensure(ctx, awstest.Config(t), n)
				require.NoError(t, err)
			}
			f := &faults{answers: tc.answers}
			ep, err := awsres.Ensure(ctx, f.install(awstest.Config(t)), n)
			if tc.wantOps != nil {
				assert.Equal(t, tc.wantOps, f.calls())
			}
			for op, left := range f.answers {
				assert.Empty(t, left, "%s was not called as often as the case expects", op)
			}
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, before, ep)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			var apiErr smithy.APIError
			require.True(t, errors.As(err, &apiErr), "AWS's error is wrapped: %v", err)
			assert.Equal(t, tc.wantCode, apiErr.ErrorCode())
		})
	}
}
