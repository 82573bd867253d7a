package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/agentry/agentry/internal/core/workflow"
)

// Errors every adapter returns for the same conditions (the contract tests
// in gatewaytest check them).
//
// Rules every adapter follows (also checked by gatewaytest):
//   - addresses (senders, recipients, agents) match case-insensitively;
//     idempotency keys and message ids are case-sensitive;
//   - Accept of a message id that is already stored (under another key, or
//     another sender's) writes nothing and returns ErrMessageIDTaken with
//     no record: nothing of the stored message leaves the store;
//   - DeleteAgent of an unknown address and DeliverToInbox of a message that
//     is not stored return ErrNotFound;
//   - UpdateStatuses for a recipient the message does not have adds it;
//   - Ack of a task that is gone is not an error, and Ack/Retry work on a
//     task that was never received (the Immediate Path settles its task
//     without leasing it);
//   - ListMessages may return a short (even empty) page with a cursor when
//     filters are selective: only an empty cursor means the end.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("idempotency key already used")
	// ErrMessageIDTaken: Accept found the message id already stored, by
	// another acceptance (another key, or another sender). It is no
	// duplicate of that acceptance and carries no record of it.
	ErrMessageIDTaken = errors.New("message id already stored")
	ErrClosed         = errors.New("store closed")
	// ErrBadCursor is returned for a paging cursor the store did not issue.
	ErrBadCursor = errors.New("bad cursor")
	// ErrBlockedAddress: an outbound connection would have reached a
	// non-public address (the SSRF guard said no).
	ErrBlockedAddress = errors.New("destination address is not public")
	// ErrConflict: an optimistic write found the stored version moved on
	// since the caller read it; the caller reads again and retries.
	ErrConflict = errors.New("version conflict")
)

// MessageStore keeps messages, their recipients' statuses and the
// idempotency records.
type MessageStore interface {
	// Accept makes a whole Acceptance durable, or nothing of it. If
	// (sender, key) was used within IdempotencyWindow it writes nothing and
	// returns the earlier record with ErrDuplicate. When Accept returns nil,
	// every task in the Acceptance will be handed to a worker at least once,
	// even if the process dies the next instant.
	Accept(ctx context.Context, a *Acceptance) (*IdempotencyRecord, error)
	// GetMessage returns ErrNotFound for an unknown id.
	GetMessage(ctx context.Context, id string) (*StoredMessage, error)
	// GetStatuses returns the recipients' statuses in the message's order.
	GetStatuses(ctx context.Context, id string) ([]RecipientStatus, error)
	// UpdateStatuses replaces the statuses of the named recipients
	// (matched by address, case-insensitively) and leaves the others.
	UpdateStatuses(ctx context.Context, id string, updates []RecipientStatus) error
	// ListMessages pages through messages, newest first.
	ListMessages(ctx context.Context, q MessageQuery) ([]MessageSummary, string, error)
}

// InboxStore keeps the inboxes of pull agents.
type InboxStore interface {
	// DeliverToInbox puts the message into the recipient's inbox and records
	// the recipient's status in the same write. Delivering the same message
	// twice leaves one entry.
	DeliverToInbox(ctx context.Context, recipient string, messageID string, status RecipientStatus) error
	// ListInbox pages through an inbox, oldest first.
	ListInbox(ctx context.Context, recipient string, limit int, cursor string) ([]InboxEntry, string, error)
	// AckInbox removes a message from an inbox; ErrNotFound if it is not there.
	AckInbox(ctx context.Context, recipient, messageID string) error
}

// AgentStore keeps the registry of local agents. Addresses are keys in
// canonical lower-case form.
type AgentStore interface {
	// PutAgent creates or replaces an agent. A replaced agent keeps its
	// stored CreatedAt, to full precision, and a.CreatedAt is set to it:
	// CreatedAt is the agent's identity, which only DeleteAgent ends (the
	// gateway shows an agent only mail accepted since).
	PutAgent(ctx context.Context, a *Agent) error
	GetAgent(ctx context.Context, address string) (*Agent, error)
	// AgentByKeyHash finds the agent whose API key hashes to h.
	AgentByKeyHash(ctx context.Context, h string) (*Agent, error)
	// ReplaceAgentKey gives the agent a new key hash, keeping everything
	// else, while its stored key hash is still oldHash: the old key stops
	// authenticating the moment the new one starts. It returns the agent
	// as now stored; ErrNotFound when there is no agent at address,
	// ErrConflict when its key hash is no longer oldHash.
	ReplaceAgentKey(ctx context.Context, address, oldHash, newHash string) (*Agent, error)
	// DeleteAgent removes the agent and empties its inbox. On a store that
	// cannot do both in one write the inbox goes first, so that an error
	// leaves the agent to be deleted again.
	DeleteAgent(ctx context.Context, address string) error
	ListAgents(ctx context.Context) ([]*Agent, error)
}

// TaskQueue is the delivery queue as workers see it.
type TaskQueue interface {
	// Enqueue adds tasks outside an Accept (a re-drive, a workflow step).
	// A task whose ID is already queued is not added twice.
	Enqueue(ctx context.Context, tasks ...Task) error
	// Receive returns up to max due tasks, leased to the caller until it
	// calls Ack, Retry or DeadLetter (or, for adapters with visibility
	// timeouts, until the lease lapses). It waits up to wait for work.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Task, error)
	// Ack removes a finished task.
	Ack(ctx context.Context, t Task) error
	// Retry puts the task back to be received again at or after `at`, with
	// t.Attempt as its new attempt count.
	Retry(ctx context.Context, t Task, at time.Time) error
	// DeadLetter removes the task and keeps the record for operators.
	DeadLetter(ctx context.Context, t Task, d DeadLetter) error
}

// Settler is a TaskQueue that is also the MessageStore of the messages its
// tasks carry (the embedded store): it records a delivery's outcome and
// settles the task in one durable write — one commit per delivery instead
// of two. Each method must have the effect of UpdateStatuses followed by
// Ack (or Retry), and on error neither.
type Settler interface {
	UpdateAndAck(ctx context.Context, messageID string, updates []RecipientStatus, t Task) error
	UpdateAndRetry(ctx context.Context, messageID string, updates []RecipientStatus, t Task, at time.Time) error
}

// WorkflowStore keeps the state of coordinated workflows (docs/workflows.md).
// The gateway imports internal/core/workflow for the State type; workflow
// imports only amtp, so there is no cycle. Writes are optimistic: a driver
// reads a State, applies an event with workflow.Apply (which bumps
// Version by one) and writes it back conditioned on the version it read,
// retrying on ErrConflict, so concurrent replies never lose an answer.
type WorkflowStore interface {
	// CreateWorkflow stores a new workflow; ErrDuplicate if its id exists.
	CreateWorkflow(ctx context.Context, s workflow.State) error
	// GetWorkflow returns ErrNotFound for an unknown id.
	GetWorkflow(ctx context.Context, id string) (workflow.State, error)
	// UpdateWorkflow replaces the stored State with s if the stored Version
	// is still expectedVersion, and returns ErrConflict otherwise (writing
	// nothing), ErrNotFound for an unknown id. s.Version must be greater
	// than expectedVersion: a write that kept the version would let a
	// second writer from the same read succeed too.
	UpdateWorkflow(ctx context.Context, s workflow.State, expectedVersion int) error
}

// Pinger is implemented by stores that can tell whether they are usable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Metrics receives the business events of the accept path, named after the
// metrics of docs/metrics.md (MessagesAccepted, MessagesDelivered,
// DeliveryLatencyMs). The gateway declares this port so that it never
// depends on how the numbers are published (CloudWatch EMF on AWS, nothing
// locally). Each method is called once per event, never for the replay of
// an idempotent submission; implementations must be safe for concurrent
// use and must not block (they are called on the request path).
type Metrics interface {
	// MessageAccepted: a message was newly and durably accepted, with
	// this many recipients.
	MessageAccepted(ctx context.Context, messageID string, recipients int)
	// MessageDelivered: one recipient's delivery completed (via "inbox",
	// "webhook" or "amtp"); latency is the delivery time minus the
	// message's acceptance time, negative when unknown.
	MessageDelivered(ctx context.Context, messageID, recipient, via string, latency time.Duration)
}

// noMetrics stands in for a nil Config.Metrics, so that the use cases call
// the port unconditionally.
type noMetrics struct{}

func (noMetrics) MessageAccepted(context.Context, string, int)                            {}
func (noMetrics) MessageDelivered(context.Context, string, string, string, time.Duration) {}

// InboundVerifier checks the signature of a message another domain's
// gateway handed us, over the body exactly as it was received (parsing
// normalises, so the parsed message is no longer what was signed). The
// gateway declares this port so that the core needs neither the signature
// package nor DNS.
//
// It answers how the sender was verified and nil when the message may be
// accepted (verified, or not verified under a policy that allows it), or
// an *amtp.Error for a refusal under the reject policy
// (SIGNATURE_REQUIRED, SIGNATURE_INVALID, SIGNATURE_KEY_UNAVAILABLE); any
// other error is treated as a temporary failure.
type InboundVerifier interface {
	VerifyInbound(ctx context.Context, raw []byte) (SenderVerification, error)
}
