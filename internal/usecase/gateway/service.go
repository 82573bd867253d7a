package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/schema"
)

// Config is what the use cases need to know about this gateway.
type Config struct {
	Domain   string // our domain, lower-case
	AdminKey string // bearer key of the admin API
	// AdminKeyFunc fetches the admin key when AdminKey is empty (from
	// Secrets Manager on AWS), on first use rather than at start, so that
	// a Lambda cold start does no network call it can avoid.
	AdminKeyFunc    func(context.Context) (string, error)
	MaxRecipients   int           // default amtp.DefaultMaxRecipients
	MaxMessageBytes int64         // advertised max-size
	PublicURL       string        // where other gateways reach us (TXT gateway=)
	AuthMethods     []string      // advertised in TXT auth=
	AllowInsecure   bool          // dev/test: http:// and private webhook targets
	ImmediateWindow time.Duration // how long the Immediate Path may hold a push delivery
	Now             func() time.Time
	Logger          *slog.Logger
	// Metrics receives accept-path events (docs/metrics.md); nil means
	// none are published.
	Metrics Metrics
	// Inbound verifies the signature of mail from other domains. nil
	// accepts it unchecked, which only unit tests of the core should do:
	// both compositions always set it.
	Inbound InboundVerifier
	// OAuthAdminScope is the token scope that makes the admin
	// (AGENTRY_OAUTH_ADMIN_SCOPE); "" lets no token administer.
	OAuthAdminScope string
	// RequirePeerMTLS refuses mail from other domains unless their gateway
	// presented a verified client certificate naming the sender's domain
	// (Principal.PeerNames).
	RequirePeerMTLS bool
	// Attachments, when set, fetches the attachments of messages our own
	// agents submit and checks their declared size and hash
	// (AGENTRY_VERIFY_ATTACHMENTS); nil checks only their shape.
	Attachments AttachmentVerifier
}

// AttachmentVerifier checks a message's attachments against what their
// URLs serve. It answers an *amtp.Error for a refusal; anything else is
// treated as a temporary failure.
type AttachmentVerifier interface {
	VerifyAttachments(ctx context.Context, m *amtp.Message) error
}

// ImmediateDeliverer performs the first attempt of a local push delivery
// inside the request (draft §5.1 Immediate Path).
type ImmediateDeliverer interface {
	DeliverNow(ctx context.Context, t Task, acc Accepted) (ImmediateResult, error)
}

// Accepted is the message the Immediate Path has just stored, as the
// service holds it: the deliverer need not read it back and parse it
// again (on DynamoDB, two queries of the request's time).
type Accepted struct {
	Stored   *StoredMessage
	Message  *amtp.Message
	Statuses []RecipientStatus
}

// ImmediateResult is the outcome of an inline attempt.
type ImmediateResult struct {
	Delivered bool
	Reply     json.RawMessage // the agent's synchronous reply, if any
	// Recorded are the statuses the attempt stored (nil when it stored
	// none): with Accepted.Statuses, what the message's statuses now are.
	Recorded []RecipientStatus
}

// SchemaRegistry is the schema registry the service consults
// (*schema.Registry). It is an interface so that a composition without
// validation — the deliver and deadletter functions — does not link the
// JSON Schema validator and its template engine, which keep every AWS
// client's methods in the binary (about 7 MB of each function).
type SchemaRegistry interface {
	Put(ctx context.Context, id string, doc json.RawMessage) (schema.Record, bool, error)
	Get(ctx context.Context, id string) (schema.Record, error)
	List(ctx context.Context) ([]schema.Record, error)
	Delete(ctx context.Context, id string) error
	Validate(ctx context.Context, id string, payload json.RawMessage) (*schema.Result, error)
}

var _ SchemaRegistry = (*schema.Registry)(nil)

// Ports groups what NewService needs.
type Ports struct {
	Messages MessageStore
	Inbox    InboxStore
	Agents   AgentStore
	Queue    TaskQueue
	Discover Discoverer // may be nil: capabilities of other domains unavailable
	// Workflows keeps coordinated workflows; nil refuses coordinated
	// messages (both compositions set it).
	Workflows WorkflowStore
	// Runner runs workflow steps outside the process (Step Functions);
	// nil runs them in process with queue tasks as timers.
	Runner WorkflowRunner
	// Schemas validates payloads that name a schema; nil turns schema
	// validation off (AGENTRY_SCHEMA_VALIDATION=0).
	Schemas SchemaRegistry
	// Policy is the access policy (AGENTRY_POLICY_FILE); nil allows
	// everything. Limiter holds its rate-limit buckets: it must be shared
	// by every instance of the gateway (DynamoDB on AWS); nil counts in
	// this process's memory.
	Policy  *policy.Policy
	Limiter policy.Limiter
	// Immediate makes the first attempt of a local push delivery inside
	// the request; nil leaves every delivery to the queue. It is a port
	// like the others, given at construction: the deliverer must not need
	// this Service (the worker reports through the Submission and drives
	// workflows through the Workflows of a Service of its own, see
	// internal/runtime/assemble).
	Immediate ImmediateDeliverer
	// DeadLetters keeps the records of deliveries given up, for the
	// admin's dead-letter API; nil answers that API NOT_FOUND.
	DeadLetters DeadLetterStore
	// Webhooks keeps notification webhook subscriptions; nil answers
	// that API NOT_FOUND.
	Webhooks WebhookStore
}

// Service is the gateway's use cases together, for the callers that serve
// them all: the HTTP API and the runtimes. It holds no logic: each concern
// is a service of its own, with its own narrow ports, and a caller that
// needs one concern (the delivery worker: Submission and Workflows) takes
// just that one.
type Service struct {
	*Authenticator
	*Submission
	*Reading
	*Mailbox
	*Agents
	*Schemas
	*Workflows
	*Directory
	*DeadLetters
	*Webhooks
	cfg Config
}

// NewService wires the use cases.
func NewService(cfg Config, p Ports) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if p.Messages == nil || p.Inbox == nil || p.Agents == nil || p.Queue == nil {
		return nil, errors.New("gateway: every store port is required")
	}
	if p.Limiter == nil {
		p.Limiter = policy.NewMemoryLimiter()
	}
	if p.Policy != nil {
		cfg.Logger.Info("access policy loaded", "rules", p.Policy.Rules())
	}
	here, now, log := site{domain: cfg.Domain}, clock(cfg.Now), opsLog{cfg.Logger}
	notify := NewNotifier(p.Webhooks, p.Queue, cfg.Now)
	in := &intake{messages: p.Messages, agents: p.Agents, immediate: p.Immediate, metrics: cfg.Metrics, notify: notify,
		site: here, clock: now, log: log, maxRecipients: cfg.MaxRecipients, window: cfg.ImmediateWindow}
	wf := &Workflows{store: p.Workflows, runner: p.Runner, queue: p.Queue, inbox: p.Inbox, agents: p.Agents,
		statuses: p.Messages, results: in, metrics: cfg.Metrics, notify: notify, site: here, clock: now, log: log}
	sub := &Submission{site: here, log: log, maxBytes: cfg.MaxMessageBytes, maxRecipients: cfg.MaxRecipients,
		requirePeerMTLS: cfg.RequirePeerMTLS, inbound: cfg.Inbound, attachments: cfg.Attachments,
		policy:  &accessPolicy{rules: p.Policy, limiter: p.Limiter, clock: now, log: log},
		schemas: p.Schemas, workflows: wf, intake: in}
	return &Service{
		Authenticator: &Authenticator{agents: p.Agents, site: here, log: log, adminScope: cfg.OAuthAdminScope,
			admin: newAdminKey(cfg.AdminKey, cfg.AdminKeyFunc)},
		Submission: sub,
		Reading:    &Reading{messages: p.Messages, log: log, validating: p.Schemas != nil},
		Mailbox:    &Mailbox{inbox: p.Inbox, site: here, log: log},
		Agents:     &Agents{agents: p.Agents, site: here, clock: now, log: log, allowInsecure: cfg.AllowInsecure, webhooks: p.Webhooks},
		Schemas:    &Schemas{registry: p.Schemas, log: log},
		Workflows:  wf,
		Directory: &Directory{own: Route{Domain: cfg.Domain, Found: true, Gateway: cfg.PublicURL, Auth: cfg.AuthMethods, MaxSize: cfg.MaxMessageBytes},
			discover: p.Discover, log: log},
		DeadLetters: &DeadLetters{letters: p.DeadLetters, messages: p.Messages, queue: p.Queue, site: here, clock: now, log: log},
		Webhooks:    &Webhooks{store: p.Webhooks, urls: &Agents{allowInsecure: cfg.AllowInsecure}, clock: now, log: log},
		cfg:         cfg,
	}, nil
}

// withDefaults is cfg with its domain normalised and every unset field at
// its default.
func (cfg Config) withDefaults() (Config, error) {
	d, err := amtp.NormalizeDomain(cfg.Domain)
	if err != nil {
		return cfg, fmt.Errorf("gateway domain %q: %w", cfg.Domain, err)
	}
	cfg.Domain = d
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = amtp.DefaultMaxRecipients
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 10 << 20
	}
	if cfg.ImmediateWindow <= 0 {
		cfg.ImmediateWindow = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if len(cfg.AuthMethods) == 0 {
		cfg.AuthMethods = DefaultAuthMethods
	}
	return cfg, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Domain is our domain.
func (s *Service) Domain() string { return s.cfg.Domain }
