package dynamo

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/adapter/sqsq"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/policy/policytest"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/schema/schematest"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// env is one test's fresh table, bucket and queues.
type env struct {
	names  awsres.Names
	ep     awsres.Endpoints
	client *dynamodb.Client
	sqs    *sqs.Client
	blobs  *s3blob.Store
	queue  *sqsq.Queue
	clock  *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	names, ep := awstest.Resources(t)
	cfg := awstest.Config(t)
	blobs, err := s3blob.New(cfg, names.Bucket)
	require.NoError(t, err)
	e := &env{names: names, ep: ep, client: dynamodb.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), blobs: blobs, clock: &clock{}}
	e.openQueue(t)
	return e
}

// openQueue makes a client of the env's SQS queues, the queue the store
// runs with in AWS; the suites read the tasks back through it.
func (e *env) openQueue(t *testing.T) {
	t.Helper()
	q, err := sqsq.New(e.sqs, sqsq.Config{QueueURL: e.ep.DeliveryQueueURL, DeadLetterURL: e.ep.DeadLetterURL})
	require.NoError(t, err)
	e.queue = q
}

func (e *env) store(t *testing.T, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{Table: e.names.Table, Blobs: e.blobs, Queue: e.queue, Now: e.clock.Now}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(e.client, cfg)
	require.NoError(t, err)
	return s
}

func (e *env) backend(t *testing.T) gatewaytest.Backend {
	s := e.store(t)
	return gatewaytest.Backend{
		Messages:  s,
		Inbox:     s,
		Agents:    s,
		Queue:     e.queue,
		Workflows: s,
		// Both adapters keep their state in AWS: reopening is building
		// them again.
		Reopen: func(t *testing.T) gatewaytest.Backend {
			e.openQueue(t)
			return e.backend(t)
		},
	}
}

func factory(t *testing.T) gatewaytest.Backend { return newEnv(t).backend(t) }

func TestMessageStore(t *testing.T)  { gatewaytest.RunMessageStore(t, factory) }
func TestInboxStore(t *testing.T)    { gatewaytest.RunInboxStore(t, factory) }
func TestAgentStore(t *testing.T)    { gatewaytest.RunAgentStore(t, factory) }
func TestWorkflowStore(t *testing.T) { gatewaytest.RunWorkflowStore(t, factory) }

// clock is the real clock plus an offset the test moves forward, so that
// times keep their meaning for the emulator while markers can expire
// without waiting.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

func TestSchemaStore(t *testing.T) {
	schematest.RunStore(t, func(t *testing.T) schema.Store { return newEnv(t).store(t) })
}

func TestRateLimiter(t *testing.T) {
	e := newEnv(t)
	policytest.RunLimiter(t, func(t *testing.T) policy.Limiter { return e.store(t) })
}

// A bucket item expires when it is full again: DynamoDB's TTL then removes
// what a missing item means anyway.
func TestRateBucketTTL(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	name := "ttl-test/" + t.Name() + "/" + time.Now().Format(time.RFC3339Nano)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := policy.Limit{Rate: 10, Per: time.Hour}
	for range 3 {
		ok, _, err := s.Allow(t.Context(), name, l, at)
		require.NoError(t, err)
		require.True(t, ok)
	}
	it, err := s.getItem(t.Context(), rateKey(name), true, nil)
	require.NoError(t, err)
	ttl, ok := getNum(it, aTTL)
	require.True(t, ok, "bucket item has a TTL")
	// 3 tokens spent at 6 min per token: full 18 minutes later.
	assert.Equal(t, at.Add(18*time.Minute).Unix()+1, ttl)
	tokens, _ := getDecimal(it, aTokens)
	assert.InDelta(t, 7, tokens, 1e-9)
}
