// Package awscost counts what a piece of code costs on AWS: the API calls
// it makes through aws-sdk-go-v2, by service and operation, and what
// DynamoDB, SQS and S3 bill for them, and prices that at list prices
// (prices.go).
//
// A Counter installs a middleware into an aws.Config (Instrument). The
// emulators the bench runs against (moto) report no consumed capacity for
// transactions and a flat 1.0 for single writes, so DynamoDB units are
// not taken from the answers but computed from the requests by DynamoDB's
// published rules (units.go). Where a request alone does not tell an
// item's size (an UpdateItem, the item a PutItem replaces, what a
// projected read read in full), the Counter reads the item before and
// after with a second, uncounted client: those reads are the measuring
// instrument, not part of what is measured.
//
// The Counter measures whatever the code does; it knows nothing of any
// table layout beyond what DescribeTable says (key schema, indexes and
// their projections).
package awscost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
)

// Usage is what some calls used of each billed dimension. Values are
// float64 so that a Usage divided by a message count stays exact enough.
type Usage struct {
	// Calls counts SDK operations by "service:Operation" (for instance
	// "dynamodb:TransactWriteItems"), each once however often the SDK
	// retried it.
	Calls map[string]float64
	// Retries counts the attempts beyond the first (each is billed).
	Retries float64

	// WriteUnits are DynamoDB write request units, IndexWriteUnits the
	// part of them spent on secondary indexes; ReadUnits are read request
	// units.
	WriteUnits, IndexWriteUnits, ReadUnits float64
	// FailedWrites counts writes whose condition failed (they are still
	// billed) and cancelled transactions.
	FailedWrites float64

	// SQSRequests are billed SQS requests: one per call and per 64 KB
	// chunk of payload beyond the first. SQSMessagesSent counts messages
	// put on a queue (a batch of n sends n).
	SQSRequests, SQSMessagesSent float64

	// S3Tier1 counts PUT, COPY, POST and LIST requests, S3Tier2 GET,
	// HEAD and the rest; DELETE is free.
	S3Tier1, S3Tier2 float64

	// Unmetered counts data-plane calls this package cannot price
	// (PartiQL statements, services without a price), so that a figure
	// that leaves them out says so.
	Unmetered map[string]float64
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	out := u.Scale(1)
	for k, n := range v.Calls {
		out.Calls[k] += n
	}
	for k, n := range v.Unmetered {
		out.Unmetered[k] += n
	}
	out.Retries += v.Retries
	out.WriteUnits += v.WriteUnits
	out.IndexWriteUnits += v.IndexWriteUnits
	out.ReadUnits += v.ReadUnits
	out.FailedWrites += v.FailedWrites
	out.SQSRequests += v.SQSRequests
	out.SQSMessagesSent += v.SQSMessagesSent
	out.S3Tier1 += v.S3Tier1
	out.S3Tier2 += v.S3Tier2
	return out
}

// Scale returns u with every figure multiplied by f (1/n for "per
// message"); the maps are copies.
func (u Usage) Scale(f float64) Usage {
	out := u
	out.Calls = make(map[string]float64, len(u.Calls))
	for k, n := range u.Calls {
		out.Calls[k] = n * f
	}
	out.Unmetered = make(map[string]float64, len(u.Unmetered))
	for k, n := range u.Unmetered {
		out.Unmetered[k] = n * f
	}
	out.Retries *= f
	out.WriteUnits *= f
	out.IndexWriteUnits *= f
	out.ReadUnits *= f
	out.FailedWrites *= f
	out.SQSRequests *= f
	out.SQSMessagesSent *= f
	out.S3Tier1 *= f
	out.S3Tier2 *= f
	return out
}

// TotalCalls is the number of SDK operations.
func (u Usage) TotalCalls() float64 {
	n := 0.0
	for _, c := range u.Calls {
		n += c
	}
	return n
}

// CallList renders Calls as "dynamodb:GetItem 2, sqs:SendMessageBatch 1",
// most frequent first.
func (u Usage) CallList() string {
	return list(u.Calls)
}

func list(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k, n := range m {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", k, Num(m[k]))
	}
	return strings.Join(parts, ", ")
}

// Num renders a count without trailing zeros: 2, 0.1, 1.05.
func Num(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

type actorKey struct{}

// WithActor labels the calls made with ctx as made by actor (a Lambda
// function, an event source mapping), so that a Counter can break its
// figures down by who made the calls.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Unlabelled is the actor of calls whose context carries none.
const Unlabelled = "other"

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return Unlabelled
}

// Counter counts the calls of the clients built from the configuration
// Instrument returns. It is safe for concurrent use.
type Counter struct {
	// shadow reads items for the unit rules without being counted.
	shadow *dynamodb.Client
	on     atomic.Bool

	mu      sync.Mutex
	usage   map[string]Usage // by actor
	errs    []error
	schemas map[string]*tableSchema
	heat    Heat // nil unless TrackPartitions
}

// New returns a Counter, enabled, whose uncounted reads use cfg (which
// must not carry the Counter's middleware).
func New(cfg aws.Config) *Counter {
	c := &Counter{shadow: dynamodb.NewFromConfig(cfg), usage: map[string]Usage{}, schemas: map[string]*tableSchema{}}
	c.on.Store(true)
	return c
}

// Instrument returns a copy of cfg whose clients are counted.
func (c *Counter) Instrument(cfg aws.Config) aws.Config {
	// A fresh slice: appending to cfg's could write into a backing array
	// that the uncounted configuration shares.
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), c.install)
	return cfg
}

func (c *Counter) install(stack *middleware.Stack) error {
	if err := stack.Initialize.Add(initialize{c}, middleware.After); err != nil {
		return fmt.Errorf("awscost: add the counting middleware: %w", err)
	}
	// Each attempt passes the Finalize step after the retry middleware
	// once; the operation passes Initialize once.
	f := attempts{c}
	if err := stack.Finalize.Insert(f, "Retry", middleware.After); err != nil {
		if err := stack.Finalize.Add(f, middleware.After); err != nil {
			return fmt.Errorf("awscost: add the attempt counter: %w", err)
		}
	}
	return nil
}

// SetEnabled turns counting on or off; off, the middleware passes calls
// through untouched (and costs nothing), for timing runs.
func (c *Counter) SetEnabled(on bool) { c.on.Store(on) }

// Take returns what was counted since the last Take (in total and by
// actor) and starts again from zero. err reports measurements that
// failed (an uncounted read, a table description): the figures are then
// incomplete.
func (c *Counter) Take() (total Usage, byActor map[string]Usage, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byActor = c.usage
	c.usage = map[string]Usage{}
	err = errors.Join(c.errs...)
	c.errs = nil
	total = Usage{}.Scale(1)
	for _, u := range byActor {
		total = total.Add(u)
	}
	return total, byActor, err
}

func (c *Counter) add(actor string, u Usage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.usage[actor] = c.usage[actor].Add(u)
}

func (c *Counter) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

// serviceName is the SDK's service id as a short lower-case prefix:
// "DynamoDB" → "dynamodb", "Secrets Manager" → "secretsmanager".
func serviceName(id string) string {
	return strings.ToLower(strings.ReplaceAll(id, " ", ""))
}

// serviceS3 is S3's service id (the SDK's s3.ServiceID). Named here rather
// than imported: service/s3 is linked into whatever imports it, a large
// price for one constant.
const serviceS3 = "S3"

type initialize struct{ c *Counter }

func (initialize) ID() string { return "agentry/awscost" }

func (m initialize) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	c := m.c
	if !c.on.Load() {
		return next.HandleInitialize(ctx, in)
	}
	svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	var plan *writePlan
	if svc == dynamodb.ServiceID {
		var err error
		if plan, err = c.planWrites(ctx, in.Parameters); err != nil {
			c.fail(fmt.Errorf("awscost: %s before the call: %w", op, err))
		}
	}
	// The attempt counter lives in the operation's stack values, which the
	// retry loop passes to every attempt.
	ctx = middleware.WithStackValue(ctx, attemptKey{}, new(int))
	out, md, err := next.HandleInitialize(ctx, in)
	u := Usage{Calls: map[string]float64{serviceName(svc) + ":" + op: 1}}
	switch svc {
	case dynamodb.ServiceID:
		h := c.tracking()
		if merr := c.meterDynamo(ctx, &u, h, op, in.Parameters, out.Result, err, plan); merr != nil {
			c.fail(fmt.Errorf("awscost: %s: %w", op, merr))
		}
		c.addHeat(h)
	case sqs.ServiceID:
		meterSQS(&u, in.Parameters, out.Result, err)
	case serviceS3:
		meterS3(&u, op)
	default:
		if !freeService(svc) {
			u.Unmetered = map[string]float64{serviceName(svc) + ":" + op: 1}
		}
	}
	c.add(actorOf(ctx), u)
	return out, md, err
}

// freeService: services whose calls here are not per-request billed, or
// are billed per month rather than per call (Secrets Manager's per-call
// price is $0.05 per 10,000, read once per cold start).
func freeService(id string) bool {
	switch id {
	case "STS", "SSO", "SSO OIDC", "Secrets Manager":
		return true
	}
	return false
}

type attempts struct{ c *Counter }

func (attempts) ID() string { return "agentry/awscost/attempts" }

type attemptKey struct{}

func (m attempts) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	if !m.c.on.Load() {
		return next.HandleFinalize(ctx, in)
	}
	// The first attempt is the call itself; later ones are retries.
	n, _ := middleware.GetStackValue(ctx, attemptKey{}).(*int)
	if n == nil {
		// Counting was turned on during the call.
		return next.HandleFinalize(ctx, in)
	}
	*n++
	if *n > 1 {
		m.c.add(actorOf(ctx), Usage{Retries: 1})
	}
	return next.HandleFinalize(ctx, in)
}
