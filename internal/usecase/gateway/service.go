package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
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

// Service implements the gateway's use cases on top of its ports.
type Service struct {
	cfg       Config
	messages  MessageStore
	inbox     InboxStore
	agents    AgentStore
	queue     TaskQueue
	discover  Discoverer
	immediate ImmediateDeliverer
	workflows WorkflowStore
	runner    WorkflowRunner
	schemas   SchemaRegistry
	policy    *policy.Policy
	limiter   policy.Limiter
	log       *slog.Logger
	adminMu   sync.Mutex
	adminHash [32]byte
	adminSet  bool
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
	// this Service (the worker reports through a Service of its own, see
	// internal/runtime/assemble).
	Immediate ImmediateDeliverer
}

// NewService wires the use cases.
func NewService(cfg Config, p Ports) (*Service, error) {
	d, err := amtp.NormalizeDomain(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("gateway domain %q: %w", cfg.Domain, err)
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
	if p.Messages == nil || p.Inbox == nil || p.Agents == nil || p.Queue == nil {
		return nil, errors.New("gateway: every store port is required")
	}
	s := &Service{cfg: cfg, messages: p.Messages, inbox: p.Inbox, agents: p.Agents, queue: p.Queue, discover: p.Discover,
		immediate: p.Immediate, workflows: p.Workflows, runner: p.Runner, schemas: p.Schemas, policy: p.Policy, limiter: p.Limiter, log: cfg.Logger}
	if s.limiter == nil {
		s.limiter = policy.NewMemoryLimiter()
	}
	if p.Policy != nil {
		s.log.Info("access policy loaded", "rules", p.Policy.Rules())
	}
	if cfg.AdminKey != "" {
		s.adminHash = sha256.Sum256([]byte(cfg.AdminKey))
		s.adminSet = true
	}
	return s, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Domain is our domain.
func (s *Service) Domain() string { return s.cfg.Domain }

// ---- principals ----

// PrincipalKind says who is calling.
type PrincipalKind int

const (
	Anonymous PrincipalKind = iota // no credentials: another gateway, or the public
	AgentCaller
	AdminCaller
)

// Principal is an authenticated caller.
type Principal struct {
	Kind  PrincipalKind
	Agent *Agent
	// PeerNames are the DNS names (or common name) of the verified client
	// certificate the caller presented, if any: the transport's word for
	// which gateway is calling.
	PeerNames []string
	// ViaToken: the caller proved who it is with an OAuth 2.0 token rather
	// than an API key (recorded as the sender verification method).
	ViaToken bool
}

// HashAPIKey is how agent keys are stored.
func HashAPIKey(key string) string { return hexDigest(tokenHash(key)) }

// tokenHash is the SHA-256 of a bearer token. Tokens are short: hashing a
// copy on the stack spares the heap copy that []byte(token) makes of any
// string longer than 32 bytes.
func tokenHash(token string) [sha256.Size]byte {
	var buf [256]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(append(buf[:0], token...))
	}
	return sha256.Sum256([]byte(token))
}

// hexDigest is hex.EncodeToString(h[:]) with one allocation, the string,
// instead of two.
func hexDigest(h [sha256.Size]byte) string {
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h[:])
	return string(hx[:])
}

// Authenticate resolves a bearer token. An empty token is Anonymous; an
// unknown one is an error, never silently anonymous.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{Kind: Anonymous}, nil
	}
	// One hash serves the admin comparison and the agent lookup (which
	// is by HashAPIKey, the hex of the same hash).
	h := tokenHash(token)
	if admin, ok, err := s.adminKeyHash(ctx); err != nil {
		return Principal{}, s.unavailable("authenticate", err)
	} else if ok {
		if subtle.ConstantTimeCompare(h[:], admin[:]) == 1 {
			return Principal{Kind: AdminCaller}, nil
		}
	}
	// Agent keys are high-entropy and looked up by their hash, so the
	// lookup's timing reveals nothing usable about any key.
	a, err := s.agents.AgentByKeyHash(ctx, hexDigest(h))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the bearer token is not a valid key")
	}
	if err != nil {
		return Principal{}, s.unavailable("authenticate", err)
	}
	if err := s.refuseReserved(ctx, a); err != nil {
		return Principal{}, err
	}
	return Principal{Kind: AgentCaller, Agent: a}, nil
}

// refuseReserved refuses an agent registered under a reserved name before
// such names were refused at registration: its holder could send mail
// that looks like the gateway's own. It is refused like an unknown key;
// the record stays for the admin to see and delete.
func (s *Service) refuseReserved(ctx context.Context, a *Agent) error {
	local, _, _ := strings.Cut(a.Address, "@")
	if !amtp.IsReservedLocalPart(local) {
		return nil
	}
	s.log.WarnContext(ctx, "refused the key of an agent registered under a reserved name; delete the agent", "address", a.Address)
	return amtp.Errorf(amtp.CodeAuthenticationRequired, "the bearer token is not a valid key")
}

// adminKeyHash returns the admin key's hash, fetching the key once when it
// comes from AdminKeyFunc. ok is false when no admin key is configured.
func (s *Service) adminKeyHash(ctx context.Context) ([32]byte, bool, error) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.adminSet {
		return s.adminHash, true, nil
	}
	if s.cfg.AdminKeyFunc == nil {
		return [32]byte{}, false, nil
	}
	key, err := s.cfg.AdminKeyFunc(ctx)
	if err != nil {
		return [32]byte{}, false, fmt.Errorf("fetch admin key: %w", err)
	}
	if len(key) < 16 {
		return [32]byte{}, false, errors.New("admin key is shorter than 16 characters")
	}
	s.adminHash, s.adminSet = sha256.Sum256([]byte(key)), true
	return s.adminHash, true, nil
}

// RequireAdmin answers 401/403 unless p is the admin.
func RequireAdmin(p Principal) error {
	switch p.Kind {
	case AdminCaller:
		return nil
	case Anonymous:
		return amtp.Errorf(amtp.CodeAuthenticationRequired, "this call needs the admin key as a bearer token")
	}
	return amtp.Errorf(amtp.CodeForbidden, "this call is for the gateway admin only")
}

// unavailable wraps a backend failure as a retryable AMTP error and logs the
// cause, which is not shown to callers.
func (s *Service) unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return amtp.Errorf(amtp.CodeTemporaryFailure, "%s: request cancelled or timed out", op)
	}
	s.log.Error("backend failure", "op", op, "err", err)
	return amtp.Errorf(amtp.CodeTemporaryFailure, "%s: storage is temporarily unavailable, retry later", op)
}

func (s *Service) isLocal(a amtp.Address) bool { return a.Domain == s.cfg.Domain }

// LocalAddress resolves "name" or "name@our-domain" to a local address.
func (s *Service) LocalAddress(v string) (amtp.Address, error) {
	if !strings.Contains(v, "@") {
		v += "@" + s.cfg.Domain
	}
	a, err := amtp.ParseAddress(v)
	if err != nil {
		return amtp.Address{}, err
	}
	if !s.isLocal(a) {
		return amtp.Address{}, amtp.Errorf(amtp.CodeInvalidRecipient, "%s is not an address of %s", a, s.cfg.Domain)
	}
	return a, nil
}

// ---- accept ----

// AcceptOutcome is what became of an accepted submission; the transport
// decides how to say it (httpapi: 202 or 200).
type AcceptOutcome int

const (
	// OutcomeQueued: durably accepted, delivery goes on after the answer.
	OutcomeQueued AcceptOutcome = iota
	// OutcomeReplied: delivered on the Immediate Path and the recipient
	// answered synchronously; Reply holds its answer.
	OutcomeReplied
)

// AcceptResult is the answer to a submission.
type AcceptResult struct {
	Outcome    AcceptOutcome
	MessageID  string
	Status     MessageState
	Recipients []RecipientStatus
	Reply      json.RawMessage // Immediate Path reply (Outcome OutcomeReplied)
	Duplicate  bool
}

// Accept validates, authorises and durably accepts a message submitted
// over the API (by a local agent, the admin, or another gateway). Accept
// keeps body: the caller must not change it afterwards.
func (s *Service) Accept(ctx context.Context, p Principal, body []byte) (*AcceptResult, error) {
	if int64(len(body)) > s.cfg.MaxMessageBytes {
		return nil, amtp.Errorf(amtp.CodeMessageTooLarge, "message is larger than %d bytes", s.cfg.MaxMessageBytes).WithDetail("max_size", s.cfg.MaxMessageBytes)
	}
	// The message shares body's memory rather than holding a second copy
	// of a payload that may be megabytes.
	m, err := amtp.ParseOwned(body, amtp.Limits{MaxRecipients: s.cfg.MaxRecipients})
	if err != nil {
		return nil, err
	}
	origin, err := s.authorizeSubmission(p, m)
	if err != nil {
		return nil, err
	}
	// Authorisation comes first: a relay attempt or a spoofed local sender
	// is refused without costing a key lookup in DNS. The signature is
	// checked over body, the bytes as received, not over m, and before
	// anything is stored or any workflow moves (draft §9.3.4).
	sv := localVerification(p)
	if origin == OriginRemote {
		if sv, err = s.verifyInbound(ctx, body); err != nil {
			return nil, err
		}
	}
	// Only our own agents' attachments are fetched: mail from another
	// domain was the sending gateway's to check, and fetching for it would
	// make us a download service for strangers.
	if origin == OriginLocal && s.cfg.Attachments != nil && len(m.Attachments) > 0 {
		if err := s.cfg.Attachments.VerifyAttachments(ctx, m); err != nil {
			if ae, ok := amtp.AsError(err); ok {
				return nil, ae
			}
			return nil, s.unavailable("verify attachments", err)
		}
	}
	if origin == OriginLocal && len(m.Coordination) > 0 {
		if err := s.foldParticipants(m); err != nil {
			return nil, err
		}
	}
	in := submission{m: m, origin: origin, verification: sv}
	if origin == OriginRemote {
		in.received = body
	}
	if p.Kind == AgentCaller {
		in.senderSince = p.Agent.CreatedAt
	}
	return s.accept(ctx, in)
}

// localVerification records how a local submission's sender was
// established: by its agent key, the admin key or an OAuth token.
func localVerification(p Principal) SenderVerification {
	switch {
	case p.Kind == AdminCaller:
		return SenderVerification{Result: Authenticated, Method: MethodAdminKey}
	case p.ViaToken:
		return SenderVerification{Result: Authenticated, Method: MethodOAuth}
	}
	return SenderVerification{Result: Authenticated, Method: MethodAgentAPIKey}
}

// verifyInbound applies the InboundVerifier port, passing its AMTP errors
// through and treating anything else as a failure worth retrying.
func (s *Service) verifyInbound(ctx context.Context, body []byte) (SenderVerification, error) {
	if s.cfg.Inbound == nil {
		return SenderVerification{Result: Unsigned, Method: MethodNone}, nil
	}
	sv, err := s.cfg.Inbound.VerifyInbound(ctx, body)
	if err == nil {
		return sv, nil
	}
	var ae *amtp.Error
	if errors.As(err, &ae) {
		return sv, ae
	}
	return sv, s.unavailable("verify signature", err)
}

// SubmitSystem accepts a message this gateway itself writes (a delivery
// failure report, a workflow result). It skips caller authorisation but
// otherwise takes exactly the same path.
func (s *Service) SubmitSystem(ctx context.Context, m *amtp.Message) (*AcceptResult, error) {
	raw := m.AppendJSON(nil)
	parsed, err := amtp.Parse(raw, amtp.Limits{MaxRecipients: s.cfg.MaxRecipients})
	if err != nil {
		return nil, fmt.Errorf("system message invalid: %w", err)
	}
	return s.accept(ctx, submission{m: parsed, origin: OriginSystem, verification: SenderVerification{Result: TrustedInternal, Method: MethodInternal}})
}

// submission is a parsed message on its way into the store.
type submission struct {
	m            *amtp.Message
	origin       Origin
	verification SenderVerification
	// received is the body as another gateway sent it: stored and handed
	// on as it came (PROTOCOL.md "Message fields") unless the gateway had
	// to fill in a field it lacked.
	received []byte
	// senderSince is the CreatedAt of the agent that submitted the
	// message, zero for other submitters.
	senderSince time.Time
}

func (s *Service) authorizeSubmission(p Principal, m *amtp.Message) (Origin, error) {
	return s.authorizeEnvelope(p, m.SenderAddress(), m.RecipientAddresses())
}

// CheckEnvelope refuses a submission that p may not make, from its sender
// and recipients alone, before the rest of the message has been read. It
// answers nil when the envelope is allowed or cannot be judged (addresses
// that do not parse, too many recipients: Accept reports those with the
// field they concern).
func (s *Service) CheckEnvelope(p Principal, sender string, recipients []string) error {
	from, err := amtp.ParseAddress(sender)
	if err != nil || len(recipients) == 0 || len(recipients) > s.cfg.MaxRecipients {
		return nil
	}
	to := make([]amtp.Address, 0, len(recipients))
	for _, r := range recipients {
		a, err := amtp.ParseAddress(r)
		if err != nil {
			return nil
		}
		to = append(to, a)
	}
	_, err = s.authorizeEnvelope(p, from, to)
	return err
}

func (s *Service) authorizeEnvelope(p Principal, sender amtp.Address, recipients []amtp.Address) (Origin, error) {
	switch p.Kind {
	case AgentCaller:
		if sender.Key() != strings.ToLower(p.Agent.Address) {
			return "", amtp.Errorf(amtp.CodeSenderCredentialMismatch, "the key presented belongs to %s, which may only send as itself, not as %s", p.Agent.Address, sender).WithDetail("field", "sender")
		}
		return OriginLocal, nil
	case AdminCaller:
		if !s.isLocal(sender) {
			return "", amtp.Errorf(amtp.CodeForbidden, "the admin may only send as an address of %s", s.cfg.Domain).WithDetail("field", "sender")
		}
		return OriginLocal, nil
	}
	// No credentials: only another domain's gateway handing us mail for our
	// own domain. Anything else is either an unauthenticated local sender or
	// an attempt to use us as an open relay.
	if s.isLocal(sender) {
		return "", amtp.Errorf(amtp.CodeLocalSenderAuthRequired, "sending as %s needs that agent's API key", sender).WithDetail("field", "sender")
	}
	if err := s.checkPeer(p, sender); err != nil {
		return "", err
	}
	for i, r := range recipients {
		if !s.isLocal(r) {
			return "", amtp.Errorf(amtp.CodeForbidden, "this gateway does not relay: %s is not in %s", r, s.cfg.Domain).WithDetail("field", fmt.Sprintf("recipients[%d]", i))
		}
	}
	return OriginRemote, nil
}

// contentDigest is the hex SHA-256 of m's canonical content. scratch
// holds the content on its way to canonicalisation; the caller may reuse
// it once this returns.
func (s *Service) contentDigest(m *amtp.Message, scratch []byte) (string, error) {
	h, err := amtp.CanonicalSHA256(m.AppendContentDigestInput(scratch[:0]))
	if err != nil {
		return "", amtp.Errorf(amtp.CodeInvalidMessageFormat, "message content is not I-JSON (duplicate keys, lone surrogates or out-of-range numbers): %s", err.Error()).WithDetail("field", "payload")
	}
	return hexDigest(h), nil
}

func (s *Service) accept(ctx context.Context, in submission) (*AcceptResult, error) {
	m, origin := in.m, in.origin
	// One buffer, sized for the stored JSON, first holds the digest's
	// input and then that JSON: the input is dead once it is hashed.
	buf := make([]byte, 0, 512+len(m.Payload))
	// The digest is taken before Complete fills generated fields, so that a
	// retry of a submission without message_id compares equal.
	digest, err := s.contentDigest(m, buf)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond) // AMTP times are UTC milliseconds
	complete := m.MessageID != "" && m.IdempotencyKey != "" && !m.Timestamp.IsZero()
	m.Complete(now)
	// acceptedAt is now, raised to the registration of every local agent
	// the message involves (see atOrAfter).
	acceptedAt := atOrAfter(now, in.senderSince)
	// The id the message is stored under, and the scope of its key:
	// (sender, key) for our own senders, (sender, key, recipient) for mail
	// from other gateways, which arrives one recipient per delivery.
	id := StorageID(m.MessageID, origin, m.Recipients)
	idemKey := m.IdempotencyKey
	if origin == OriginRemote {
		idemKey += " " + strings.ToLower(strings.Join(m.Recipients, ","))
	}
	// From here on every log line of this submission (and of its Immediate
	// Path attempt) carries the message id, next to the request id.
	ctx = logctx.WithMessageID(ctx, m.MessageID)

	var pol policyOutcome
	if origin != OriginSystem {
		// Both the policy and the schema check ask whether the payload is
		// encrypted; the answer scans the payload, so it is taken once.
		encrypted := (s.policy != nil || (s.schemas != nil && m.Schema != "")) && amtp.EncryptedPayload(m.Payload)
		if pol, err = s.applyPolicy(ctx, m, encrypted); err != nil {
			return nil, err
		}
		// A workflow cannot run with a participant it may not ask.
		if pol.count > 0 && len(m.Coordination) > 0 {
			return nil, policy.DeniedError(pol.first)
		}
		if err := s.checkSchema(ctx, m, encrypted); err != nil {
			return nil, err
		}
	}

	// Only the initiator's gateway runs a workflow: a coordinated message
	// from another domain is delivered like any other.
	var (
		wf    *workflow.State
		start Task
	)
	if origin == OriginLocal && len(m.Coordination) > 0 {
		if wf, start, err = s.beginWorkflow(m, now); err != nil {
			return nil, err
		}
	}
	// A reply whose signature failed moves no workflow, whatever the
	// policy lets through: a forged answer must not decide a step.
	if origin != OriginSystem && in.verification.Result != InvalidSignature {
		if err := s.workflowReply(ctx, m, now, in.senderSince); err != nil {
			return nil, err
		}
	}

	statuses := make([]RecipientStatus, 0, len(m.Recipients))
	var (
		tasks      []Task
		inbox      []string
		unknown    []string
		refused    []string
		refusal    string
		pushOnly   *Agent
		localCount int
	)
	// m.Recipients are in canonical form (Parse made them so): each is its
	// address's String, and KeyOf its Key, without building either again.
	for i, rs := range m.Recipients {
		r, _ := amtp.ParseAddress(rs)
		key := amtp.KeyOf(rs)
		st := RecipientStatus{Address: rs, Status: StateQueued, UpdatedAt: now}
		if pol.refuses(i) {
			policyStatus(&st)
			statuses = append(statuses, st)
			continue
		}
		if s.isLocal(r) {
			localCount++
			ag, err := s.agents.GetAgent(ctx, key)
			if err == nil {
				acceptedAt = atOrAfter(acceptedAt, ag.CreatedAt)
			}
			switch {
			case errors.Is(err, ErrNotFound):
				st.Status = StateFailed
				st.ErrorCode = string(amtp.CodeAgentUnknown)
				st.ErrorMessage = "no agent " + rs + " is registered at this gateway"
				unknown = append(unknown, rs)
			case err != nil:
				return nil, s.unavailable("accept", err)
			case agentRefuses(ag, m) != "":
				refusal = agentRefuses(ag, m)
				st.Status, st.ErrorCode, st.ErrorMessage = StateFailed, string(amtp.CodeSchemaValidationFailed), refusal
				refused = append(refused, rs)
			case wf != nil:
				// A participant gets the message when the workflow asks it
				// (sendWorkflow), not now.
			case ag.DeliveryMode == ModePull:
				// Delivery to an inbox is a store write: it happens in the
				// same write that accepts the message.
				n := now
				st.Status, st.Attempts, st.DeliveredAt, st.Via = StateDelivered, 1, &n, "inbox"
				inbox = append(inbox, key)
			default:
				tasks = append(tasks, Task{ID: TaskID(id, key), MessageID: id, Kind: TaskLocal, Recipients: []string{rs}, CreatedAt: now})
				if ag.DeliveryMode == ModePush {
					pushOnly = ag
				}
			}
		} else {
			// One delivery per remote recipient, each signed on its own
			// (draft §9.3.3): status, retries and reports are per
			// recipient anyway.
			tasks = append(tasks, Task{ID: TaskID(id, key), MessageID: id, Kind: TaskRemote, Recipients: []string{rs}, Domain: r.Domain, CreatedAt: now})
		}
		statuses = append(statuses, st)
	}
	// When no recipient is left, the message is refused as a whole, for
	// the most fundamental of its recipients' reasons.
	if pol.count+len(refused)+len(unknown) == len(statuses) {
		if pol.count > 0 {
			return nil, policy.DeniedError(pol.first).WithDetail("recipients", pol.addresses(m))
		}
		if len(refused) > 0 {
			return nil, amtp.Errorf(amtp.CodeSchemaValidationFailed, "%s", refusal).WithDetail("schema", m.Schema).WithDetail("recipients", refused)
		}
		e := amtp.Errorf(amtp.CodeAgentUnknown, "no agent %s is registered at this gateway", strings.Join(unknown, ", ")).WithDetail("recipients", unknown)
		return nil, e
	}
	if wf != nil {
		tasks, pushOnly = []Task{start}, nil
		// sendWorkflow tells the participants the workflow was started
		// with from agents registered at their addresses since by the
		// workflow's creation time (predates), as the worker does by the
		// message's: it is raised like the message's.
		wf.CreatedAt = atOrAfter(wf.CreatedAt, acceptedAt)
		wf.UpdatedAt = atOrAfter(wf.UpdatedAt, wf.CreatedAt)
	}

	// The Immediate Path applies to a message from a local agent whose only
	// recipient is a local push agent. Its task is held back for the window
	// so that a queue worker does not race the inline attempt; if the
	// attempt does not settle it, the queue takes over after the window.
	// Mail from another gateway always takes the durable path: whatever
	// fails after our 202 is then ours to report, and only synchronous
	// refusals (an unknown agent) are reported by the sending gateway.
	immediate := s.immediate != nil && origin == OriginLocal && len(statuses) == 1 && localCount == 1 && pushOnly != nil && len(tasks) == 1
	if immediate {
		tasks[0].NotBefore = now.Add(s.cfg.ImmediateWindow + time.Second)
	}

	raw := in.received
	if raw == nil || !complete {
		raw = m.AppendJSON(buf[:0])
	}
	sv := in.verification
	acc := &Acceptance{
		Message: StoredMessage{
			ID: id, Raw: raw, Sender: m.Sender, Recipients: m.Recipients,
			Subject: m.Subject, Origin: origin, AcceptedAt: acceptedAt, Verification: &sv,
		},
		// The record is dated like the message, so that replay can tell a
		// key of the sending agent's own from one of a deleted agent's.
		Idempotency: IdempotencyRecord{Sender: amtp.KeyOf(m.Sender), Key: idemKey, MessageID: id, Digest: digest, CreatedAt: acceptedAt},
		Statuses:    statuses,
		Tasks:       tasks,
		Inbox:       inbox,
		Workflow:    wf,
	}
	prev, err := s.messages.Accept(ctx, acc)
	if errors.Is(err, ErrMessageIDTaken) {
		return nil, messageIDInUse()
	}
	if errors.Is(err, ErrDuplicate) {
		return s.replay(ctx, prev, digest, in.senderSince)
	}
	if err != nil {
		return nil, s.unavailable("accept", err)
	}
	// LogAttrs with typed attributes writes the same line as InfoContext
	// with key-value pairs, without boxing each value into an interface
	// (an allocation per string, on every accepted message).
	s.log.LogAttrs(ctx, slog.LevelInfo, "message accepted", slog.String("message_id", m.MessageID), slog.String("sender", m.Sender),
		slog.Int("recipients", len(m.Recipients)), slog.String("origin", string(origin)))
	// Counted only after the write succeeded and never in replay, so a
	// retried submission is one message, not two.
	s.cfg.Metrics.MessageAccepted(ctx, m.MessageID, len(m.Recipients))
	for _, st := range statuses {
		if st.Status == StateDelivered && st.Via == "inbox" {
			// An inbox delivery is part of the acceptance write itself:
			// delivered at the moment of acceptance, zero latency.
			s.cfg.Metrics.MessageDelivered(ctx, m.MessageID, st.Address, "inbox", 0)
		}
	}

	res := &AcceptResult{Outcome: OutcomeQueued, MessageID: m.MessageID, Status: DeriveState(statuses), Recipients: statuses}
	// The queue's copy is due a second after the window that began with
	// this submission, not with the end of the accept: the inline attempt
	// gets what is left of the window, or none when a slow accept (a busy
	// store, a retry that waited for its key) used it up, so that the two
	// never deliver at once.
	left := s.cfg.ImmediateWindow - s.cfg.Now().Sub(now)
	if immediate && left > 0 {
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), left)
		out, err := s.immediate.DeliverNow(ictx, tasks[0], Accepted{Stored: &acc.Message, Message: m, Statuses: statuses})
		cancel()
		if err != nil {
			s.log.WarnContext(ctx, "immediate delivery did not settle; the queue will retry", "message_id", m.MessageID, "err", err)
		}
		if err == nil && out.Recorded != nil {
			cur := mergeRecorded(statuses, out.Recorded)
			res.Recipients, res.Status = cur, DeriveState(cur)
		} else if cur, err := s.messages.GetStatuses(ctx, m.MessageID); err == nil {
			res.Recipients = cur
			res.Status = DeriveState(cur)
		}
		if out.Delivered && len(out.Reply) > 0 {
			res.Outcome = OutcomeReplied
			res.Reply = out.Reply
		}
	}
	return res, nil
}

// replay answers a repeated submission: the same message and outcome
// when the content matches, IDEMPOTENCY_CONFLICT when it does not. since
// is the submitting agent's CreatedAt (zero for other submitters): a
// record older than the agent is a deleted agent's, at the same address,
// and nothing of it is shown.
func (s *Service) replay(ctx context.Context, prev *IdempotencyRecord, digest string, since time.Time) (*AcceptResult, error) {
	if prev == nil {
		return nil, s.unavailable("accept", errors.New("duplicate without a record"))
	}
	if prev.CreatedAt.Before(since) {
		return nil, amtp.Errorf(amtp.CodeIdempotencyConflict, "this idempotency_key is already in use: send the message under another idempotency_key").
			WithDetail("field", "idempotency_key")
	}
	if prev.Digest != digest {
		return nil, amtp.Errorf(amtp.CodeIdempotencyConflict, "idempotency key %q was already used by %s for different content", keyOf(prev.Key), MessageIDOf(prev.MessageID)).WithDetail("message_id", MessageIDOf(prev.MessageID))
	}
	st, err := s.messages.GetStatuses(ctx, prev.MessageID)
	if err != nil {
		return nil, s.unavailable("accept", err)
	}
	res := &AcceptResult{Outcome: OutcomeQueued, MessageID: MessageIDOf(prev.MessageID), Status: DeriveState(st), Recipients: st, Duplicate: true}
	if len(st) == 1 && len(st[0].Response) > 0 {
		res.Outcome = OutcomeReplied
		res.Reply = st[0].Response
	}
	return res, nil
}

// messageIDInUse answers a submission whose message_id another
// acceptance holds. It is the same whether that acceptance is the
// sender's own (under another idempotency key) or another sender's, and
// names no message, key or sender: another sender's mail stays as hidden
// as GET /v1/messages/{id} keeps it. That the id is taken cannot be hidden
// from the submitter without accepting two messages under one id.
func messageIDInUse() error {
	return amtp.Errorf(amtp.CodeIdempotencyConflict, "this message_id is already in use: send the message under another message_id, or without one for the gateway to assign it").
		WithDetail("field", "message_id")
}

// atOrAfter is the later of at and since. A message's acceptance time is
// raised so to the registration time of each local agent it involves:
// each agent reads only mail accepted since it was registered (canRead),
// and a host whose clock is behind the one that registered the agent would
// otherwise date mail for it before the agent existed. The raise keeps
// since's full resolution rather than rounding up to AMTP's milliseconds:
// a rounded time could postdate an agent registered again at the address
// within that millisecond, and hand it the old agent's mail.
func atOrAfter(at, since time.Time) time.Time {
	if since.After(at) {
		return since.UTC()
	}
	return at
}

// keyOf is the idempotency key of a record's scoped key (accept appends
// the recipients for mail from other gateways after a space, which no key
// contains).
func keyOf(scoped string) string {
	k, _, _ := strings.Cut(scoped, " ")
	return k
}

// ---- reading messages ----

// StatusView is the answer of GET /v1/messages/{id}/status (draft §5.2.2
// with per-recipient detail).
type StatusView struct {
	MessageID   string            `json:"message_id"`
	Status      MessageState      `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	DeliveredAt *time.Time        `json:"delivered_at,omitempty"`
	Attempts    int               `json:"attempts"`
	NextRetry   *time.Time        `json:"next_retry"`
	Recipients  []RecipientStatus `json:"recipients"`
	// SchemaValidation says what became of the payload's schema check when
	// the message names a schema: "passed", "skipped (encrypted)" (an
	// end-to-end encrypted payload cannot be read, draft §9.3.2) or
	// "disabled" (AGENTRY_SCHEMA_VALIDATION=0). Absent without a schema.
	SchemaValidation string `json:"schema_validation,omitempty"`
	// SenderVerification records how the sender was established (draft
	// §5.2.2); absent for messages accepted before it was recorded.
	SenderVerification *SenderVerification `json:"sender_verification,omitempty"`
}

// canRead reports whether p may see the message: the admin, its sender, or
// one of its local recipients. Everyone else gets 404, so that ids cannot
// be probed.
func (s *Service) canRead(p Principal, sm *StoredMessage) bool {
	switch p.Kind {
	case AdminCaller:
		return true
	case AgentCaller:
		if predates(sm.AcceptedAt, p.Agent) {
			return false
		}
		me := strings.ToLower(p.Agent.Address)
		if strings.ToLower(sm.Sender) == me {
			return true
		}
		for _, r := range sm.Recipients {
			if strings.ToLower(r) == me {
				return true
			}
		}
	}
	return false
}

// predates reports whether mail accepted at acceptedAt was accepted before
// agent a was registered: it belonged to an agent deleted since, whose
// address a took over, and is none of a's business. An agent is its
// address and its registration time.
func predates(acceptedAt time.Time, a *Agent) bool {
	return acceptedAt.Before(a.CreatedAt)
}

func (s *Service) readable(ctx context.Context, p Principal, id string) (*StoredMessage, error) {
	if p.Kind == Anonymous {
		return nil, amtp.Errorf(amtp.CodeAuthenticationRequired, "reading messages needs an agent key or the admin key")
	}
	// ids compare case-insensitively. The admin names the copy of a
	// fanned-out message from another gateway as <message_id>/<recipient>
	// (URL-escaped in the path: %2F).
	mid, rcpt, copyOf := strings.Cut(id, "/")
	id = amtp.NormalizeMessageID(mid)
	if copyOf {
		id = StorageID(id, OriginRemote, []string{rcpt})
	}
	if !amtp.ValidMessageID(MessageIDOf(id)) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no message %q", id)
	}
	sm, err := s.messages.GetMessage(ctx, id)
	if errors.Is(err, ErrNotFound) && p.Kind == AgentCaller {
		// Mail from another gateway is stored per recipient: an agent
		// asking by message_id means its own copy.
		sm, err = s.messages.GetMessage(ctx, StorageID(id, OriginRemote, []string{p.Agent.Address}))
	}
	if errors.Is(err, ErrNotFound) || (err == nil && !s.canRead(p, sm)) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no message %s", id)
	}
	if err != nil {
		return nil, s.unavailable("read message", err)
	}
	return sm, nil
}

// GetMessage returns the stored JSON of a message.
func (s *Service) GetMessage(ctx context.Context, p Principal, id string) ([]byte, error) {
	sm, err := s.readable(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return sm.Raw, nil
}

// Status returns the delivery status of a message.
func (s *Service) Status(ctx context.Context, p Principal, id string) (*StatusView, error) {
	sm, err := s.readable(ctx, p, id)
	if err != nil {
		return nil, err
	}
	st, err := s.messages.GetStatuses(ctx, sm.ID)
	if err != nil {
		return nil, s.unavailable("read status", err)
	}
	v := BuildStatusView(sm, st)
	v.SchemaValidation = s.schemaOutcome(sm)
	return v, nil
}

// schemaOutcome reconstructs the accept-time schema decision from the
// stored message; the rules are checkSchema's.
func (s *Service) schemaOutcome(sm *StoredMessage) string {
	var head struct {
		Schema  string          `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if sm.Origin == OriginSystem || json.Unmarshal(sm.Raw, &head) != nil || head.Schema == "" {
		return ""
	}
	switch {
	case amtp.EncryptedPayload(head.Payload):
		return "skipped (encrypted)"
	case s.schemas == nil:
		return "disabled"
	}
	return "passed"
}

// BuildStatusView summarises recipients into the message-level view.
func BuildStatusView(sm *StoredMessage, st []RecipientStatus) *StatusView {
	v := &StatusView{MessageID: MessageIDOf(sm.ID), Status: DeriveState(st), CreatedAt: sm.AcceptedAt, UpdatedAt: sm.AcceptedAt, Recipients: st,
		SenderVerification: sm.Verification}
	var lastDelivered time.Time
	allDelivered := len(st) > 0
	for _, r := range st {
		v.Attempts += r.Attempts
		if r.UpdatedAt.After(v.UpdatedAt) {
			v.UpdatedAt = r.UpdatedAt
		}
		if r.NextRetry != nil && (v.NextRetry == nil || r.NextRetry.Before(*v.NextRetry)) {
			t := *r.NextRetry
			v.NextRetry = &t
		}
		if r.DeliveredAt != nil && r.DeliveredAt.After(lastDelivered) {
			lastDelivered = *r.DeliveredAt
		}
		if r.Status != StateDelivered {
			allDelivered = false
		}
	}
	if allDelivered && !lastDelivered.IsZero() {
		v.DeliveredAt = &lastDelivered
	}
	return v
}

// ListMessages lists what p may see: everything for the admin, an agent's
// own sent and received mail otherwise.
func (s *Service) ListMessages(ctx context.Context, p Principal, q MessageQuery) ([]MessageSummary, string, error) {
	switch p.Kind {
	case Anonymous:
		return nil, "", amtp.Errorf(amtp.CodeAuthenticationRequired, "listing messages needs an agent key or the admin key")
	case AgentCaller:
		q.Party = strings.ToLower(p.Agent.Address)
		// Only mail since the agent was registered is its own (predates).
		if q.Since.Before(p.Agent.CreatedAt) {
			q.Since = p.Agent.CreatedAt
		}
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	out, next, err := s.messages.ListMessages(ctx, q)
	if err != nil {
		return nil, "", s.listError("list messages", err)
	}
	for i := range out {
		out[i].MessageID = MessageIDOf(out[i].MessageID)
	}
	return out, next, nil
}

func (s *Service) listError(op string, err error) error {
	if errors.Is(err, ErrBadCursor) {
		return amtp.Errorf(amtp.CodeInvalidMessageFormat, "cursor is not valid").WithDetail("field", "cursor")
	}
	return s.unavailable(op, err)
}

// ---- inbox ----

func (s *Service) inboxOwner(p Principal, recipient string) (amtp.Address, error) {
	if p.Kind == Anonymous {
		return amtp.Address{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "reading an inbox needs the agent's key")
	}
	a, err := s.LocalAddress(recipient)
	if err != nil {
		return amtp.Address{}, amtp.Errorf(amtp.CodeNotFound, "no inbox %q at this gateway", recipient)
	}
	if p.Kind == AgentCaller && strings.ToLower(p.Agent.Address) != a.Key() {
		return amtp.Address{}, amtp.Errorf(amtp.CodeForbidden, "agent %s may only read its own inbox", p.Agent.Address)
	}
	return a, nil
}

// Inbox lists a pull agent's waiting messages, oldest first.
func (s *Service) Inbox(ctx context.Context, p Principal, recipient string, limit int, cursor string) ([]json.RawMessage, string, error) {
	a, err := s.inboxOwner(p, recipient)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 50
	}
	if limit > 500 {
		limit = 500
	}
	entries, next, err := s.inbox.ListInbox(ctx, a.Key(), limit, cursor)
	if err != nil {
		return nil, "", s.listError("list inbox", err)
	}
	out := make([]json.RawMessage, 0, len(entries))
	for _, e := range entries {
		// Deleting an agent empties its inbox, but on DynamoDB the purge
		// may stop part-way and an entry may be filed after it: such an
		// entry is the old agent's, not the caller's. The page may then
		// come out short, with a cursor to go on.
		if p.Kind == AgentCaller && predates(e.AcceptedAt, p.Agent) {
			continue
		}
		out = append(out, e.Raw)
	}
	return out, next, nil
}

// Ack removes a message from an inbox.
func (s *Service) Ack(ctx context.Context, p Principal, recipient, messageID string) error {
	a, err := s.inboxOwner(p, recipient)
	if err != nil {
		return err
	}
	id := amtp.NormalizeMessageID(messageID)
	err = s.inbox.AckInbox(ctx, a.Key(), id)
	if errors.Is(err, ErrNotFound) {
		// Mail from another gateway is stored per recipient.
		err = s.inbox.AckInbox(ctx, a.Key(), StorageID(id, OriginRemote, []string{a.Key()}))
	}
	if errors.Is(err, ErrNotFound) {
		return amtp.Errorf(amtp.CodeNotFound, "message %s is not in the inbox of %s", messageID, a)
	}
	if err != nil {
		return s.unavailable("ack", err)
	}
	return nil
}

// ---- discovery of local agents ----

// AgentInfo is the public view of an agent.
type AgentInfo struct {
	Address          string       `json:"address"`
	DeliveryMode     DeliveryMode `json:"delivery_mode"`
	SupportedSchemas []string     `json:"supported_schemas,omitempty"`
	CreatedAt        time.Time    `json:"created_at"`
}

func publicInfo(a *Agent) AgentInfo {
	return AgentInfo{Address: a.Address, DeliveryMode: a.DeliveryMode, SupportedSchemas: a.SupportedSchemas, CreatedAt: a.CreatedAt}
}

// AgentFilter narrows DiscoverAgents.
type AgentFilter struct {
	DeliveryMode DeliveryMode
	Schema       string // agents declaring a pattern that matches this schema id
}

// DiscoverAgents lists local agents without any secret.
func (s *Service) DiscoverAgents(ctx context.Context, f AgentFilter) ([]AgentInfo, error) {
	all, err := s.agents.ListAgents(ctx)
	if err != nil {
		return nil, s.unavailable("list agents", err)
	}
	out := make([]AgentInfo, 0, len(all))
	for _, a := range all {
		if f.DeliveryMode != "" && a.DeliveryMode != f.DeliveryMode {
			continue
		}
		if f.Schema != "" && !SchemaListMatches(a.SupportedSchemas, f.Schema) {
			continue
		}
		out = append(out, publicInfo(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}

// SchemaListMatches reports whether any pattern (exact id, or prefix ending
// in "*") matches id.
func SchemaListMatches(patterns []string, id string) bool {
	for _, p := range patterns {
		if p == id || p == "*" {
			return true
		}
		if strings.HasSuffix(p, "*") && strings.HasPrefix(id, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// mergeRecorded is statuses with the recorded ones in place of those of
// the same addresses (as the stores merge updates).
func mergeRecorded(statuses, recorded []RecipientStatus) []RecipientStatus {
	out := slices.Clone(statuses)
	for _, r := range recorded {
		for i := range out {
			if strings.EqualFold(out[i].Address, r.Address) {
				addr := out[i].Address
				out[i] = r
				out[i].Address = addr
			}
		}
	}
	return out
}
