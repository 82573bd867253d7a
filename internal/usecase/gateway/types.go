// Package gateway holds Agentry's use cases, one service per concern:
// Authenticator (who is calling), Submission (accepting messages, with
// its intake writing them), Reading (messages and their status), Mailbox
// (pull agents' inboxes), Agents (the registry of local agents), Schemas
// (the schema registry's admin API), Workflows (coordinated workflows)
// and Directory (what domains advertise). Each declares beside it the
// narrow ports it uses; ports.go declares the store ports as adapters
// implement them, the union of those. Service composes the concerns for
// callers that serve them all. The package knows nothing of AWS, bbolt or
// HTTP handlers.
package gateway

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/workflow"
)

// DeliveryMode says how a local agent receives messages.
type DeliveryMode string

const (
	// ModePush: the gateway POSTs each message to the agent's webhook.
	ModePush DeliveryMode = "push"
	// ModePull: messages wait in the agent's inbox until it fetches them.
	ModePull DeliveryMode = "pull"
)

// Agent is a registered local agent.
type Agent struct {
	Address          string       `json:"address"` // canonical local@domain
	DeliveryMode     DeliveryMode `json:"delivery_mode"`
	WebhookURL       string       `json:"webhook_url,omitempty"`
	WebhookSecret    string       `json:"webhook_secret,omitempty"` // never shown after registration
	SupportedSchemas []string     `json:"supported_schemas,omitempty"`
	APIKeyHash       string       `json:"api_key_hash"` // hex SHA-256 of the API key
	CreatedAt        time.Time    `json:"created_at"`
	// Headers are custom HTTP headers sent with every webhook call to a
	// push agent (an Authorization for its endpoint, say). Like the
	// secret, they are never shown after registration.
	Headers map[string]string `json:"headers,omitempty"`
}

// State is the delivery state of one recipient.
type State string

const (
	StateQueued    State = "queued"
	StateRetrying  State = "retrying"
	StateDelivered State = "delivered"
	StateFailed    State = "failed"
)

// Terminal reports whether no further attempt will be made.
func (s State) Terminal() bool { return s == StateDelivered || s == StateFailed }

// RecipientStatus is the truth about one recipient of one message.
type RecipientStatus struct {
	Address      string          `json:"address"`
	Status       State           `json:"status"`
	Attempts     int             `json:"attempts"`
	UpdatedAt    time.Time       `json:"updated_at"`
	NextRetry    *time.Time      `json:"next_retry,omitempty"`
	DeliveredAt  *time.Time      `json:"delivered_at,omitempty"`
	ErrorCode    string          `json:"error_code,omitempty"`
	ErrorMessage string          `json:"error_message,omitempty"`
	Via          string          `json:"via,omitempty"`      // inbox, webhook, amtp, smtp
	Response     json.RawMessage `json:"response,omitempty"` // a push agent's synchronous reply
	// History is the last attempts and redrives, oldest first (history.go).
	History []AttemptRecord `json:"history,omitempty"`
}

// MessageState is the state of a whole message, derived from its recipients.
type MessageState string

const (
	MessageAccepted           MessageState = "accepted"
	MessageDelivering         MessageState = "delivering"
	MessageDelivered          MessageState = "delivered"
	MessagePartiallyDelivered MessageState = "partially_delivered"
	MessageFailed             MessageState = "failed"
)

// DeriveState computes a message's state from its recipients, so that it
// can never disagree with them.
func DeriveState(rs []RecipientStatus) MessageState {
	if len(rs) == 0 {
		return MessageAccepted
	}
	var delivered, failed, touched int
	for _, r := range rs {
		switch r.Status {
		case StateDelivered:
			delivered++
		case StateFailed:
			failed++
		}
		if r.Attempts > 0 || r.Status != StateQueued {
			touched++
		}
	}
	switch {
	case delivered == len(rs):
		return MessageDelivered
	case failed == len(rs):
		return MessageFailed
	case delivered+failed == len(rs):
		return MessagePartiallyDelivered
	case touched > 0:
		return MessageDelivering
	}
	return MessageAccepted
}

// Origin says where a message entered this gateway.
type Origin string

const (
	OriginLocal  Origin = "local"  // submitted by a local agent or the admin
	OriginRemote Origin = "remote" // arrived from another domain's gateway
	OriginSystem Origin = "system" // made by this gateway (reports, workflow results)
)

// StoredMessage is an accepted message as kept by the store.
type StoredMessage struct {
	ID         string    // StorageID(message_id, ...): the message_id, or for fan-out from another gateway message_id/recipient
	Raw        []byte    // the message's JSON (amtp.Message.AppendJSON, or the bytes received from another gateway)
	Sender     string    // canonical sender, for authorisation and listing
	Recipients []string  // canonical recipients
	Subject    string    // for listings
	Origin     Origin    //
	AcceptedAt time.Time //
	// Verification is how the sender was established (draft §5.2.2);
	// nil for messages stored before it was recorded.
	Verification *SenderVerification
}

// SenderVerification is the sender_verification member of a message's
// status (draft §5.2.2, §9.3.4).
type SenderVerification struct {
	Result    VerificationResult `json:"result"`
	Method    string             `json:"method"`
	Domain    string             `json:"domain,omitempty"`
	KeyID     string             `json:"keyid,omitempty"`
	Algorithm string             `json:"algorithm,omitempty"`
}

// VerificationResult is the draft's vocabulary of sender verification.
type VerificationResult string

// The results of draft §9.3.4.
const (
	VerifiedSignature VerificationResult = "verified"         // a domain signature verified
	Authenticated     VerificationResult = "authenticated"    // a local sender's agent key (or the admin's)
	TrustedInternal   VerificationResult = "trusted_internal" // written by this gateway (reports, workflow results)
	Unsigned          VerificationResult = "unsigned"         // from another domain, no signature
	InvalidSignature  VerificationResult = "invalid"          // a signature that did not verify
	KeyUnavailable    VerificationResult = "key_unavailable"  // the signing key could not be retrieved
)

// Verification methods as recorded in SenderVerification.Method.
const (
	MethodDomainSignature = "domain_signature"
	MethodAgentAPIKey     = "agent_api_key"
	MethodAdminKey        = "admin_api_key"
	MethodOAuth           = "oauth2"
	MethodInternal        = "internal"
	MethodNone            = "none"
)

// StorageID is the id a message is stored under. Mail from another
// gateway arrives fanned out, one recipient per delivery, each a
// representation of the same message_id (draft §9.3.3); each is kept under
// "<message_id>/<recipient>" so that the second does not collide with the
// first. Everything else is kept under its message_id. A message_id (a
// UUID or ULID) never contains "/".
func StorageID(messageID string, origin Origin, recipients []string) string {
	if origin == OriginRemote && len(recipients) == 1 {
		return messageID + "/" + strings.ToLower(recipients[0])
	}
	return messageID
}

// MessageIDOf is the message_id of a storage id.
func MessageIDOf(storageID string) string {
	id, _, _ := strings.Cut(storageID, "/")
	return id
}

// TaskKind is the kind of destination a delivery task goes to.
type TaskKind string

const (
	TaskLocal  TaskKind = "local"  // one local recipient (push or pull)
	TaskRemote TaskKind = "remote" // every recipient of one remote domain

	// Workflow tasks carry no delivery; MessageID is the workflow id
	// (docs/workflows.md).
	TaskWorkflowStart   TaskKind = "workflow_start"   // begin driving a stored workflow
	TaskWorkflowTimeout TaskKind = "workflow_timeout" // the workflow's deadline, due at NotBefore
	TaskWorkflowStep    TaskKind = "workflow_step"    // a Step Functions step waiting for Recipients[0], with Token
)

// IsWorkflow reports whether the task drives a workflow rather than
// delivering a message.
func (k TaskKind) IsWorkflow() bool {
	return k == TaskWorkflowStart || k == TaskWorkflowTimeout || k == TaskWorkflowStep
}

// Task is one unit of delivery work: a message to one destination.
type Task struct {
	ID         string    `json:"id"` // MessageID + "|" + destination; re-enqueueing is idempotent
	MessageID  string    `json:"message_id"`
	Kind       TaskKind  `json:"kind"`
	Recipients []string  `json:"recipients"`
	Domain     string    `json:"domain,omitempty"` // for remote tasks
	Attempt    int       `json:"attempt"`          // attempts already made
	CreatedAt  time.Time `json:"created_at"`
	NotBefore  time.Time `json:"not_before,omitempty"` // first attempt no earlier than this
	// Token and Round: a workflow_step's Step Functions task token and the
	// round of the workflow it belongs to.
	Token string `json:"token,omitempty"`
	Round int    `json:"round,omitempty"`
	// Lease is the adapter's handle on a received task (an SQS receipt
	// handle, say). It is not persisted with the task.
	Lease string `json:"-"`
}

// TaskID builds the deterministic id of the task for a destination.
func TaskID(messageID, destination string) string { return messageID + "|" + destination }

// IdempotencyRecord remembers the first submission of (sender, key).
type IdempotencyRecord struct {
	Sender    string    `json:"sender"`
	Key       string    `json:"key"`
	MessageID string    `json:"message_id"`
	Digest    string    `json:"digest"` // hex SHA-256 of the canonical content
	CreatedAt time.Time `json:"created_at"`
}

// IdempotencyWindow is how long a key is remembered.
const IdempotencyWindow = 7 * 24 * time.Hour

// Acceptance is everything that must become durable, together, for a
// message to be accepted.
type Acceptance struct {
	Message     StoredMessage
	Idempotency IdempotencyRecord
	Statuses    []RecipientStatus
	Tasks       []Task
	// Inbox lists local pull recipients (canonical addresses) whose inbox
	// receives the message in the same write: delivery to an inbox is a
	// store write, so it needs no task. Their Statuses are already
	// delivered.
	Inbox []string
	// Workflow is the state of the workflow a coordinated message starts,
	// stored with the message (its id is the message id), or nil.
	Workflow *workflow.State
}

// MessageQuery filters a message listing. Empty fields do not filter.
type MessageQuery struct {
	Status    MessageState
	Sender    string    // canonical address key (lower-case)
	Recipient string    // canonical address key
	Party     string    // sender OR recipient (scopes an agent to its own mail)
	Since     time.Time //
	Limit     int       //
	Cursor    string    // opaque, from a previous page
}

// MessageSummary is one row of a listing.
type MessageSummary struct {
	MessageID  string            `json:"message_id"`
	Sender     string            `json:"sender"`
	Recipients []string          `json:"recipients"`
	Subject    string            `json:"subject,omitempty"`
	Status     MessageState      `json:"status"`
	CreatedAt  time.Time         `json:"created_at"`
	Statuses   []RecipientStatus `json:"-"`
}

// InboxEntry is one message waiting in an inbox.
type InboxEntry struct {
	MessageID  string
	Raw        []byte
	ReceivedAt time.Time
	// AcceptedAt is the message's StoredMessage.AcceptedAt: the gateway
	// shows an agent only mail accepted since it was registered.
	AcceptedAt time.Time
}

// DeadLetter is the record kept for a delivery that will not be attempted
// again (draft §8.2.1).
type DeadLetter struct {
	// ID names the record to operators (DeadLetterID of DLQTimestamp and
	// TaskID); stores fill it when they read a record.
	ID        string `json:"id,omitempty"`
	MessageID string `json:"message_id"`
	TaskID    string `json:"task_id"`
	// Kind and Domain are the task's, so that a redrive can queue it again.
	Kind          TaskKind  `json:"kind,omitempty"`
	Domain        string    `json:"domain,omitempty"`
	Recipients    []string  `json:"recipients"`
	FailureReason string    `json:"failure_reason"` // an AMTP error code
	ErrorMessage  string    `json:"error_message"`
	Attempts      int       `json:"attempts"`
	FirstAttempt  time.Time `json:"first_attempt"`
	LastAttempt   time.Time `json:"last_attempt"`
	DLQTimestamp  time.Time `json:"dlq_timestamp"`
}

// Filled returns the record with the defaults every store applies: sender
// and message id from the message, creation time now.
func (r IdempotencyRecord) Filled(m *StoredMessage, now time.Time) IdempotencyRecord {
	if r.Sender == "" {
		r.Sender = m.Sender
	}
	if r.MessageID == "" {
		r.MessageID = m.ID
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	return r
}

// PageLimit applies the listing defaults of every store: 100 when unset,
// at most 1000.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}
