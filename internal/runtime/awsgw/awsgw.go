// Package awsgw assembles the gateway on its AWS adapters — DynamoDB, SQS,
// S3, Secrets Manager — around the same core the local gateway uses. Each
// Lambda main and `agentry serve` with AGENTRY_BACKEND=aws build it here,
// so the two runtimes cannot drift apart.
package awsgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	awssfn "github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/agentry/agentry/internal/adapter/authn"
	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/dynamo"
	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/adapter/ses"
	"github.com/agentry/agentry/internal/adapter/sfn"
	"github.com/agentry/agentry/internal/adapter/signing"
	"github.com/agentry/agentry/internal/adapter/sqsq"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/runtime/assemble"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Version is the gateway's version string, set at build time.
var Version = "dev"

// Gateway is the gateway on AWS adapters.
type Gateway struct {
	Config  config.Config
	AWS     aws.Config
	Store   *dynamo.Store
	Queue   *sqsq.Queue
	Service *gateway.Service
	Worker  *delivery.Worker
	Handler *httpapi.Handler
	// Metrics publishes the gateway's metrics as EMF lines on stdout
	// (docs/metrics.md); the functions also report their cold start here.
	Metrics *observe.EMF
	// Bridge turns received email into AMTP mail (ReceiveEmail).
	Bridge *bridge.Bridge
	log    *slog.Logger
	client *http.Client // outbound HTTP, SSRF-guarded
	dlq    dlqCalls     // what PollDeadLetters calls
	mail   mailCalls    // what ReceiveEmail calls
	// keepDead stores a dead-letter record in the table, where the
	// admin's dead-letter API reads it (HandleDeadLetter).
	keepDead func(context.Context, gateway.Task, gateway.DeadLetter) error
}

// dlqCalls are the SQS operations PollDeadLetters makes, as method values
// rather than the client, for the reason given at sfnCalls.
type dlqCalls struct {
	receive func(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	delete  func(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// New builds every part, the HTTP API included: what `agentry serve` and
// the api function run. It makes no network call unless queue URLs must
// be looked up by name, so that a Lambda's cold start stays small (the
// functions get their URLs from the stack). It creates no resources:
// AGENTRY_AWS_BOOTSTRAP is Bootstrap's, which `agentry serve` runs first.
func New(ctx context.Context, cfg config.Config, awsCfg aws.Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	var schemas func(schema.Store) gateway.SchemaRegistry
	if cfg.SchemaValidation {
		schemas = func(st schema.Store) gateway.SchemaRegistry { return schema.NewRegistry(st) }
	}
	g, err := build(ctx, cfg, awsCfg, log, schemas, opts)
	if err != nil {
		return nil, err
	}
	ident, err := authn.New(g.Config, g.client)
	if err != nil {
		return nil, err
	}
	g.Handler = httpapi.New(g.Service, httpapi.Options{Version: Version, Logger: g.log, BodyBudget: cfg.MaxInflightBytes, Ready: g.Store.Ping, Identity: ident})
	return g, nil
}

// NewWorker builds the gateway without its HTTP API (Handler stays nil):
// what the deliver and deadletter functions run. Their binaries then
// link neither the REST handler nor the caller authentication (JWT,
// certificates) that only the api function uses.
func NewWorker(ctx context.Context, cfg config.Config, awsCfg aws.Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	// Payloads are validated where messages are accepted, in the api
	// function: without a registry here, the workers' binaries do not
	// link the JSON Schema validator (see gateway.SchemaRegistry).
	return build(ctx, cfg, awsCfg, log, nil, opts)
}

// Option adjusts what New and NewWorker build.
type Option func(*options)

type options struct {
	metrics     io.Writer
	lease       time.Duration
	callTimeout time.Duration
}

// MetricsTo sends the metric lines (CloudWatch embedded metric format) to
// w instead of standard output, where Lambda's log agent picks them up:
// for a process that measures or keeps them apart from its own output.
func MetricsTo(w io.Writer) Option { return func(o *options) { o.metrics = w } }

// DeliveryLease sets the visibility timeout of the delivery tasks that the
// poller (Worker.Run) receives, instead of awsres.VisibilityTimeoutSeconds:
// how long a task whose worker failed stays hidden before SQS hands it out
// again. Tests shorten it to see redeliveries in seconds; it must stay
// above the longest delivery, or a task still in progress is handed out
// twice.
func DeliveryLease(d time.Duration) Option { return func(o *options) { o.lease = d } }

// build is New without the HTTP API; schemas makes the schema registry
// (nil for none).
func build(ctx context.Context, cfg config.Config, awsCfg aws.Config, log *slog.Logger, schemas func(schema.Store) gateway.SchemaRegistry, opts []Option) (*Gateway, error) {
	o := options{metrics: os.Stdout}
	for _, opt := range opts {
		opt(&o)
	}
	// Every line logged with a request's or a task's context carries its
	// correlation ids, whoever built the logger.
	log = observe.Correlate(log)
	for _, d := range cfg.Deprecations {
		log.Warn(d)
	}
	metrics, err := observe.NewEMF(o.metrics, cfg.ResourcePrefix)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// Before any client is built from it: clients copy the options. A
	// no-op unless X-Ray tracing is on (in Lambda, or AGENTRY_XRAY=1).
	observe.InstrumentAWS(&awsCfg)
	// Every AWS call is bounded, so that an endpoint that stops answering
	// fails requests with 503 instead of holding them (calltimeout.go).
	boundCalls(&awsCfg, o.callTimeout)
	g := &Gateway{Config: cfg, AWS: awsCfg, Metrics: metrics, log: log}
	sqsc := sqs.NewFromConfig(awsCfg)
	g.dlq = dlqCalls{receive: sqsc.ReceiveMessage, delete: sqsc.DeleteMessage}
	names, err := awsres.NamesFor(cfg.ResourcePrefix)
	if err != nil {
		return nil, err
	}
	if cfg.QueueURL == "" {
		if cfg.QueueURL, err = queueURL(ctx, sqsc, names.DeliveryQueue); err != nil {
			return nil, err
		}
	}
	if cfg.DLQURL == "" {
		if cfg.DLQURL, err = queueURL(ctx, sqsc, names.DeadLetter); err != nil {
			return nil, err
		}
	}
	g.Config = cfg

	g.Queue, err = sqsq.New(sqsc, sqsq.Config{QueueURL: cfg.QueueURL, DeadLetterURL: cfg.DLQURL, VisibilityTimeout: o.lease})
	if err != nil {
		return nil, err
	}
	// Path-style under BaseEndpoint (an emulator), as s3blob says.
	blobs, err := s3blob.New(awsCfg, cfg.Bucket)
	if err != nil {
		return nil, err
	}
	g.Store, err = dynamo.New(dynamodb.NewFromConfig(awsCfg), dynamo.Config{Table: cfg.Table, Blobs: blobs, Queue: g.Queue, ListingShards: cfg.ListingShards, InboxShards: cfg.InboxShards})
	if err != nil {
		return nil, err
	}
	g.keepDead = g.Store.KeepDeadLetter
	signer, err := awsSigner(cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	b := assemble.Backend{Messages: g.Store, Inbox: g.Store, Agents: g.Store, Queue: g.Queue, Workflows: g.Store, DeadLetters: g.Store, Webhooks: g.Store,
		// Buckets live in the table: every Lambda instance draws on the
		// same allowance.
		Limiter: g.Store, Signer: signer, Logger: log, Metrics: metrics, Version: Version,
		// Under flag, each message let through unverified is counted
		// (SenderUnverified) as well as logged.
		Flagged: func(ctx context.Context, r gateway.VerificationResult) { metrics.SenderUnverified(ctx, string(r)) },
		// Outermost, so that the subsegment covers the SSRF checks and
		// the connection; observe.WrapHTTP is a no-op without tracing.
		WrapHTTP: observe.WrapHTTP,
		// An attempt must end (and be recorded) well inside the deliver
		// function's timeout, or a hanging endpoint would kill the
		// invocation before the retry is scheduled.
		AttemptTimeout: time.Duration(awsres.DeliverTimeoutSeconds) * time.Second * 2 / 3,
	}
	if cfg.AdminKey == "" && cfg.AdminKeySecretARN != "" {
		b.AdminKeyFunc = secretFetcher(secretsmanager.NewFromConfig(awsCfg), cfg.AdminKeySecretARN, "admin key")
	}
	if schemas != nil {
		b.Schemas = schemas(g.Store)
	}
	if cfg.Email.SESConfigurationSet != "" {
		// The bridge sends through SES from our domain's identity, with
		// the configuration set that reports bounces and complaints.
		b.Email = ses.NewTransport(sesv2.NewFromConfig(awsCfg), cfg.Email.SESConfigurationSet)
	}
	if cfg.StateMachineARN != "" {
		if b.Runner, err = sfn.New(newSFNCalls(awssfn.NewFromConfig(awsCfg)), cfg.StateMachineARN); err != nil {
			return nil, err
		}
	}
	a, err := assemble.Gateway(cfg, b)
	if err != nil {
		return nil, err
	}
	g.Service, g.Worker, g.client, g.Bridge = a.Service, a.Worker, a.Client, a.Bridge
	g.mail = mailCalls{get: s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = o.BaseEndpoint != nil }).GetObject}
	return g, nil
}

// sfnCalls is the Step Functions client cut down to the two operations
// the runner makes. It holds method values, not the client: a client in
// an interface (the runner's port) would keep every one of its ~40
// operations in each binary, because text/template (which gojsonschema
// links) calls methods by name, and the linker must then keep every
// exported method of every type stored in an interface. That is 1.2 MB
// per function here.
type sfnCalls struct {
	start   func(context.Context, *awssfn.StartExecutionInput, ...func(*awssfn.Options)) (*awssfn.StartExecutionOutput, error)
	success func(context.Context, *awssfn.SendTaskSuccessInput, ...func(*awssfn.Options)) (*awssfn.SendTaskSuccessOutput, error)
}

var _ sfn.API = sfnCalls{}

func newSFNCalls(c *awssfn.Client) sfnCalls {
	return sfnCalls{start: c.StartExecution, success: c.SendTaskSuccess}
}

func (s sfnCalls) StartExecution(ctx context.Context, in *awssfn.StartExecutionInput, opts ...func(*awssfn.Options)) (*awssfn.StartExecutionOutput, error) {
	return s.start(ctx, in, opts...)
}

func (s sfnCalls) SendTaskSuccess(ctx context.Context, in *awssfn.SendTaskSuccessInput, opts ...func(*awssfn.Options)) (*awssfn.SendTaskSuccessOutput, error) {
	return s.success(ctx, in, opts...)
}

func queueURL(ctx context.Context, c *sqs.Client, name string) (string, error) {
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("find queue %s (set AGENTRY_QUEUE_URL/AGENTRY_DLQ_URL, or AGENTRY_AWS_BOOTSTRAP=1 to create it): %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// awsSigner is the worker's signer on AWS: the configured PEM, or the one
// in Secrets Manager read on first use. Without either the gateway still
// starts (the api and deadletter functions never sign), but every forward
// to another domain is retried with the reason in its status and log until
// a key is configured: sending it unsigned would only be refused.
func awsSigner(cfg config.Config, awsCfg aws.Config) (delivery.MessageSigner, error) {
	s, err := signing.Configured(cfg)
	if err != nil {
		return nil, err
	}
	if s != nil {
		return signing.Signer{S: s}, nil
	}
	if cfg.SigningKeySecretARN == "" {
		return &signing.Lazy{Load: func(context.Context) (*signature.Signer, error) {
			return nil, errors.New("no signing key configured: set AGENTRY_SIGNING_KEY or AGENTRY_SIGNING_KEY_SECRET_ARN")
		}}, nil
	}
	fetch := secretFetcher(secretsmanager.NewFromConfig(awsCfg), cfg.SigningKeySecretARN, "signing key")
	return &signing.Lazy{Load: func(ctx context.Context) (*signature.Signer, error) {
		pemText, err := fetch(ctx)
		if err != nil {
			return nil, err
		}
		cfg.SigningKey = pemText
		return signing.Configured(cfg)
	}}, nil
}

// LoadSigner reads the signing key from Secrets Manager now (for a
// process that wants to show its key record at start).
func LoadSigner(ctx context.Context, cfg config.Config, awsCfg aws.Config) (*signature.Signer, error) {
	pemText, err := secretFetcher(secretsmanager.NewFromConfig(awsCfg), cfg.SigningKeySecretARN, "signing key")(ctx)
	if err != nil {
		return nil, err
	}
	cfg.SigningKey = pemText
	return signing.Configured(cfg)
}

// secretFetcher reads a secret (what names it in errors) from Secrets
// Manager on first use.
func secretFetcher(c *secretsmanager.Client, arn, what string) func(context.Context) (string, error) {
	var (
		mu  sync.Mutex
		key string
	)
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if key != "" {
			return key, nil
		}
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil {
			return "", fmt.Errorf("read %s secret: %w", what, err)
		}
		v := strings.TrimSpace(aws.ToString(out.SecretString))
		if v == "" {
			return "", fmt.Errorf("%s secret is empty", what)
		}
		key = v
		return key, nil
	}
}
