package httpapi

import (
	"context"
	"encoding/json"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The use cases the handler serves, each declared as narrowly as its
// routes use it. The gateway's concern services provide them
// (gateway.Authenticator, gateway.Submission, …); *gateway.Service, which
// composes them all, is a Gateway.

// Authenticator resolves the credentials a request presents.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (gateway.Principal, error)
	AuthenticateClaims(ctx context.Context, c gateway.TokenClaims) (gateway.Principal, error)
	AuthenticateAdmin(ctx context.Context, key string) (gateway.Principal, error)
}

// Submitter accepts messages (POST /v1/messages).
type Submitter interface {
	CheckEnvelope(p gateway.Principal, sender string, recipients []string) error
	Accept(ctx context.Context, p gateway.Principal, body []byte) (*gateway.AcceptResult, error)
}

// Reader shows accepted messages (GET /v1/messages…).
type Reader interface {
	GetMessage(ctx context.Context, p gateway.Principal, id string) ([]byte, error)
	Status(ctx context.Context, p gateway.Principal, id string) (*gateway.StatusView, error)
	ListMessages(ctx context.Context, p gateway.Principal, q gateway.MessageQuery) ([]gateway.MessageSummary, string, error)
}

// Mailbox serves pull agents' inboxes (/v1/inbox/…).
type Mailbox interface {
	Inbox(ctx context.Context, p gateway.Principal, recipient string, limit int, cursor string) ([]json.RawMessage, string, error)
	Ack(ctx context.Context, p gateway.Principal, recipient, messageID string) error
}

// AgentAdmin manages and discovers local agents (/v1/admin/agents…,
// /v1/discovery/agents).
type AgentAdmin interface {
	RegisterAgent(ctx context.Context, p gateway.Principal, req gateway.RegisterRequest) (*gateway.Registration, error)
	RotateAgentKey(ctx context.Context, p gateway.Principal, address string) (*gateway.Registration, error)
	GetAgent(ctx context.Context, p gateway.Principal, address string) (*gateway.AgentInfo, error)
	ListAgents(ctx context.Context, p gateway.Principal) ([]gateway.AdminAgentView, error)
	DeleteAgent(ctx context.Context, p gateway.Principal, address string) error
	DiscoverAgents(ctx context.Context, f gateway.AgentFilter) ([]gateway.AgentInfo, error)
}

// SchemaAdmin manages the schema registry (/v1/admin/schemas…).
type SchemaAdmin interface {
	PutSchema(ctx context.Context, p gateway.Principal, id string, doc json.RawMessage) (schema.Record, bool, error)
	GetSchema(ctx context.Context, p gateway.Principal, id string) (schema.Record, error)
	ListSchemas(ctx context.Context, p gateway.Principal) ([]schema.Record, error)
	DeleteSchema(ctx context.Context, p gateway.Principal, id string) error
	ValidateAgainst(ctx context.Context, p gateway.Principal, id string, payload json.RawMessage) (*schema.Result, error)
}

// WorkflowReader shows a workflow to its initiator (GET /v1/workflows/{id}).
type WorkflowReader interface {
	WorkflowView(ctx context.Context, p gateway.Principal, id string) (*workflow.View, error)
}

// Directory answers what domains support (/v1/capabilities/…,
// /.well-known/amtp).
type Directory interface {
	OwnRoute() gateway.Route
	Capabilities(ctx context.Context, domain string) (gateway.Route, error)
}

// Gateway is every use case the API serves, and the configuration it
// answers with (the domain, the largest message).
type Gateway interface {
	Authenticator
	Submitter
	Reader
	Mailbox
	AgentAdmin
	SchemaAdmin
	WorkflowReader
	Directory
	DeadLetterAdmin
	WebhookAdmin
	Config() gateway.Config
}

var _ Gateway = (*gateway.Service)(nil)
