// Package assemble is the one assembly function of the house rules
// (shared/ARCHITECTURE.md, "Runtimes"): it builds the gateway's service
// and delivery worker from a configuration and the ports of a backend.
// The local process (localgw) and every Lambda (awsgw) call it, so the
// wiring exists once; what differs between them is only what they hand
// it in a Backend.
//
// The HTTP API is not built here: the deliver and deadletter functions
// must not link the REST handler and the caller authentication.
package assemble

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentry/agentry/internal/adapter/attach"
	"github.com/agentry/agentry/internal/adapter/authn"
	"github.com/agentry/agentry/internal/adapter/discovery"
	"github.com/agentry/agentry/internal/adapter/netguard"
	"github.com/agentry/agentry/internal/adapter/signing"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Metrics receives the events of both use cases (observe.EMF).
type Metrics interface {
	gateway.Metrics
	delivery.Metrics
}

// Backend is what differs between runtimes: where state lives, how tasks
// and workflow steps are run, where the signing key comes from, where
// logs and metrics go.
type Backend struct {
	Messages  gateway.MessageStore
	Inbox     gateway.InboxStore
	Agents    gateway.AgentStore
	Queue     gateway.TaskQueue
	Workflows gateway.WorkflowStore
	// DeadLetters keeps the records of deliveries given up, for the
	// admin's dead-letter API.
	DeadLetters gateway.DeadLetterStore
	// Webhooks keeps notification webhook subscriptions.
	Webhooks gateway.WebhookStore
	// Runner runs workflow steps outside the process; nil runs them in
	// process.
	Runner gateway.WorkflowRunner
	// Schemas validates payloads; nil turns validation off (and keeps the
	// validator out of a binary that never accepts from agents).
	Schemas gateway.SchemaRegistry
	// Limiter holds the access policy's rate-limit buckets, shared by
	// every instance of the gateway.
	Limiter policy.Limiter
	// Signer signs what the worker forwards to other gateways.
	Signer delivery.MessageSigner
	// AdminKeyFunc fetches the admin key when the configuration has none.
	AdminKeyFunc func(context.Context) (string, error)

	Logger *slog.Logger
	// Metrics publishes the use cases' events; nil publishes none.
	Metrics Metrics
	// Flagged counts each message let through unverified under the
	// "flag" signature policy; nil only logs it.
	Flagged func(context.Context, gateway.VerificationResult)
	// Outcomes hears signature checks and workflow ends (observed.go);
	// nil: nobody does.
	Outcomes Outcomes
	// WrapHTTP wraps the outbound transport outermost (tracing); nil
	// leaves it as it is.
	WrapHTTP func(http.RoundTripper) http.RoundTripper
	// AttemptTimeout bounds one delivery attempt; zero is the worker's
	// default.
	AttemptTimeout time.Duration
	// Version names the gateway in the outbound User-Agent.
	Version string
	// Email sends bridged email (the outbox or a relay locally, SES on
	// AWS); nil bridges nothing. DKIM verifies inbound email locally; nil
	// where SES's verdicts are the proof.
	Email delivery.EmailTransport
	DKIM  bridge.DKIMVerifier
}

// Assembled is the gateway Gateway builds.
type Assembled struct {
	Service *gateway.Service
	Worker  *delivery.Worker
	// Client is the outbound HTTP client (SSRF-guarded), for the callers'
	// own outbound needs (fetching an OAuth issuer's keys).
	Client *http.Client
	// Bridge turns received email into AMTP mail (bridge.go).
	Bridge *bridge.Bridge
}

// Gateway builds the service and its worker. Each is complete when it is
// constructed: the worker first, reporting failures and driving workflows
// through a service of its own (its Submission and its Workflows: the
// worker takes only those two concerns), then the service that accepts messages,
// with the worker as its Immediate Path. The worker's service submits
// only system mail, which never takes the Immediate Path and is not
// subject to the access policy, so it needs neither.
func Gateway(cfg config.Config, b Backend) (*Assembled, error) {
	res, err := discovery.New(discovery.Config{Server: cfg.DNSServer})
	if err != nil {
		return nil, fmt.Errorf("dns resolver: %w", err)
	}
	client, err := outboundClient(cfg, b)
	if err != nil {
		return nil, err
	}
	gcfg := serviceConfig(cfg, b, res, client)
	ports := gateway.Ports{Messages: b.Messages, Inbox: b.Inbox, Agents: b.Agents, Queue: b.Queue,
		Discover: discovery.Gateway{Resolver: res}, Workflows: observeWorkflows(b.Workflows, b.Outcomes), Runner: b.Runner, Schemas: b.Schemas,
		DeadLetters: b.DeadLetters, Webhooks: b.Webhooks}
	system, err := gateway.NewService(gcfg, ports)
	if err != nil {
		return nil, err
	}
	w, err := delivery.New(workerConfig(cfg, b), delivery.Deps{Messages: b.Messages, Inbox: b.Inbox, Agents: b.Agents,
		Queue: b.Queue, Discover: ports.Discover, Reporter: system.Submission, Client: client, Signer: b.Signer, Workflows: system.Workflows,
		Email: b.Email, MX: res, Notifier: gateway.NewNotifier(b.Webhooks, b.Queue, nil), Webhooks: b.Webhooks})
	if err != nil {
		return nil, fmt.Errorf("delivery worker: %w", err)
	}
	ports.Policy, ports.Limiter, ports.Immediate = cfg.Policy, b.Limiter, w
	svc, err := gateway.NewService(gcfg, ports)
	if err != nil {
		return nil, err
	}
	br, err := inboundBridge(cfg, b, svc)
	if err != nil {
		return nil, err
	}
	return &Assembled{Service: svc, Worker: w, Client: client, Bridge: br}, nil
}

// outboundClient is the client for webhooks, peers and attachments, with
// the gateway's client certificate when one is configured.
func outboundClient(cfg config.Config, b Backend) (*http.Client, error) {
	cc, roots, err := authn.ClientTLS(cfg)
	if err != nil {
		return nil, err
	}
	return netguard.NewClient(netguard.Options{
		AllowInsecure: cfg.AllowInsecure, UserAgent: "AMTP/1.0 (agentry/" + b.Version + ")",
		ClientCert: cc, RootCAs: roots, Wrap: b.WrapHTTP,
	}), nil
}

func serviceConfig(cfg config.Config, b Backend, res *discovery.Resolver, client *http.Client) gateway.Config {
	inbound := signing.NewInbound(cfg, res, b.Logger)
	inbound.Flagged = b.Flagged
	return gateway.Config{
		Domain: cfg.Domain, AdminKey: cfg.AdminKey, AdminKeyFunc: b.AdminKeyFunc, MaxRecipients: cfg.MaxRecipients,
		MaxMessageBytes: cfg.MaxMessageBytes, PublicURL: cfg.PublicURL, AllowInsecure: cfg.AllowInsecure,
		Logger: b.Logger, Inbound: observeVerifier(inbound, b.Outcomes), Attachments: attach.FromConfig(cfg, client),
		AuthMethods:     gateway.AuthMethodsFor(cfg.OAuth(), cfg.RequirePeerMTLS),
		OAuthAdminScope: cfg.OAuthAdminScope, RequirePeerMTLS: cfg.RequirePeerMTLS,
		// A nil Metrics converts to a nil gateway.Metrics: none published.
		Metrics: b.Metrics,
	}
}

func workerConfig(cfg config.Config, b Backend) delivery.Config {
	return delivery.Config{
		Domain: cfg.Domain, Concurrency: cfg.Workers, Logger: b.Logger, Metrics: b.Metrics, AttemptTimeout: b.AttemptTimeout,
		Retry:  delivery.RetryPolicy{Base: cfg.RetryBase, Max: cfg.RetryMax, Window: cfg.RetryWindow, Jitter: 0.25},
		Bridge: delivery.BridgeConfig{Address: cfg.Email.BridgeAddress, Fallback: cfg.Email.Fallback},
	}
}
