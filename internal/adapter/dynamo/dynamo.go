// Package dynamo implements gateway.MessageStore, InboxStore, AgentStore
// and WorkflowStore on Agentry's single DynamoDB table
// (awsres.CreateTableInput), with bodies and workflow states over
// awsres.MaxItemBytes claim-checked to S3 (s3blob).
//
// docs/dynamodb.md is the design: the item kinds and their keys, which call
// reads and writes which items, what each costs in write units, and the
// TTLs. The short version:
//
//	IDK#<key>            FROM#<sender>     idempotency record (+ owner's deadline); IDEM#<sender>/KEY#<key> before (legacy.go)
//	MSG#<id>             MSG               message: body or S3 ref, meta, initial statuses, tasks; gsi1 FROM#, gsi2 DAY#
//	MSG#<id>             MSG               or a void: the id of an acceptance a retry took over
//	TO#<recipient>[#<s>] <t>#<id>          the status of a message to one recipient, its own TO# entry; gsi2 INBOX# while filed
//	MSG#<id>             RCPT#<address>    the same for messages to several (+ gsi1 TO#), and for any other address
//	AGENT#<address>      AGENT             agent; gsi1 AGENTS
//	APIKEY#<hash>        APIKEY            key-hash lookup (a copy of the agent)
//	WF#<id>              WF                workflow state JSON or S3 ref, ver
//	LAYOUT               IDK               since when idempotency records are spread (legacy.go)
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Enqueuer hands delivery tasks to the queue (sqsq in AWS, the embedded
// queue in tests).
type Enqueuer interface {
	Enqueue(ctx context.Context, tasks ...gateway.Task) error
}

// Config configures a Store. Zero values take the documented defaults.
type Config struct {
	// Table is the table's physical name (awsres.Names.Table).
	Table string
	// Blobs stores bodies larger than awsres.MaxItemBytes. It may be nil:
	// such bodies are then refused with ErrBodyTooLarge.
	Blobs *s3blob.Store
	// Queue receives the tasks of every accepted message.
	Queue Enqueuer
	// Now replaces the clock in tests. Default time.Now.
	Now func() time.Time
	// Retention is how long a message (body, statuses, inbox entries) is
	// kept after it was accepted; DynamoDB's TTL then deletes it. Default
	// DefaultRetention. With Blobs set it may not exceed the bucket's
	// lifecycle (awsres.BodyLifecycleDays), or bodies would vanish first.
	Retention time.Duration
	// EnqueueGrace is how long after claiming its key an Accept may still
	// be writing and handing its tasks to the queue. A retry of the same
	// (sender, key) that finds the acceptance unfinished after this takes
	// it over. Default DefaultEnqueueGrace.
	EnqueueGrace time.Duration
	// ListingShards is how many partitions each DAY#, FROM# and TO#
	// listing is written to (shards.go), default DefaultListingShards;
	// InboxShards the same for INBOX#, default DefaultInboxShards. Either
	// may grow between deployments, never shrink.
	ListingShards, InboxShards int
	// AgentCacheTTL is how long GetAgent reuses an agent it read
	// (agentcache.go), default DefaultAgentCacheTTL; negative: never.
	AgentCacheTTL time.Duration
}

// Defaults of Config.
const (
	DefaultRetention    = 30 * 24 * time.Hour
	DefaultEnqueueGrace = 10 * time.Second
)

// ErrBodyTooLarge is returned (wrapped) by Accept for a body that does not
// fit in an item when no blob store is configured.
var ErrBodyTooLarge = errors.New("message body does not fit in a DynamoDB item and no S3 blob store is configured")

// Store is the DynamoDB adapter. It is safe for concurrent use.
type Store struct {
	db        calls
	table     string
	blobs     *s3blob.Store
	queue     Enqueuer
	now       func() time.Time
	retention time.Duration
	grace     time.Duration
	shards    shards
	agents    *agentCache
	legacy    legacyWindow
	refs      refCache

	// afterClaim and afterCommit, when set (by tests), run in Accept
	// between the claim of the idempotency key and the write of the
	// message item, and right after that write; an error ends Accept right
	// there, as a crash would.
	afterClaim, afterCommit func() error
}

var (
	_ gateway.MessageStore = (*Store)(nil)
	_ gateway.InboxStore   = (*Store)(nil)
	_ gateway.AgentStore   = (*Store)(nil)
	_ gateway.Pinger       = (*Store)(nil)
)

// calls are the DynamoDB operations a Store makes, as method values of
// the client rather than the *dynamodb.Client itself, so that the api
// function does not link every other operation (why:
// functions/TestFunctionsDoNotLinkUnusedAWSOperations).
type calls struct {
	GetItem            func(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem       func(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	Query              func(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	PutItem            func(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem         func(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem         func(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	TransactWriteItems func(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

func callsOf(c *dynamodb.Client) calls {
	return calls{
		GetItem:            c.GetItem,
		BatchGetItem:       c.BatchGetItem,
		Query:              c.Query,
		PutItem:            c.PutItem,
		UpdateItem:         c.UpdateItem,
		DeleteItem:         c.DeleteItem,
		TransactWriteItems: c.TransactWriteItems,
	}
}

// New returns a Store on an existing table.
func New(client *dynamodb.Client, cfg Config) (*Store, error) {
	if client == nil {
		return nil, errors.New("dynamo: a DynamoDB client is required")
	}
	if cfg.Table == "" {
		return nil, errors.New("dynamo: a table name is required")
	}
	if cfg.Queue == nil {
		return nil, errors.New("dynamo: a queue is required (Accept hands it the tasks)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.EnqueueGrace <= 0 {
		cfg.EnqueueGrace = DefaultEnqueueGrace
	}
	if lifecycle := awsres.BodyLifecycleDays * 24 * time.Hour; cfg.Blobs != nil && cfg.Retention > lifecycle {
		return nil, fmt.Errorf("dynamo: retention %v is longer than the body bucket's lifecycle of %d days", cfg.Retention, awsres.BodyLifecycleDays)
	}
	sh, err := newShards(cfg.ListingShards, cfg.InboxShards)
	if err != nil {
		return nil, err
	}
	if cfg.AgentCacheTTL == 0 {
		cfg.AgentCacheTTL = DefaultAgentCacheTTL
	}
	return &Store{
		agents:    newAgentCache(cfg.AgentCacheTTL, cfg.Now),
		shards:    sh,
		db:        callsOf(client),
		table:     cfg.Table,
		blobs:     cfg.Blobs,
		queue:     cfg.Queue,
		now:       cfg.Now,
		retention: cfg.Retention,
		grace:     cfg.EnqueueGrace,
	}, nil
}

// Ping reads one (absent) item: it proves the table exists and that the
// credentials may read it, which is what every request needs.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table),
		Key:       key("PING", "PING"),
	})
	if err != nil {
		return fmt.Errorf("dynamo: ping table %s: %w", s.table, err)
	}
	return nil
}

// getItem reads one item; a missing item is (nil, nil).
func (s *Store) getItem(ctx context.Context, k item, consistent bool, proj *projection) (item, error) {
	in := &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: k, ConsistentRead: aws.Bool(consistent)}
	if proj != nil {
		in.ProjectionExpression = aws.String(proj.expr)
		in.ExpressionAttributeNames = proj.names
	}
	out, err := s.db.GetItem(ctx, in)
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// isConditionFailed reports whether err is a failed condition of a
// single-item write.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
