package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// RegisterRequest is the body of POST /v1/admin/agents.
type RegisterRequest struct {
	Address      string       `json:"address"` // a name, or name@our domain
	DeliveryMode DeliveryMode `json:"delivery_mode"`
	WebhookURL   string       `json:"webhook_url,omitempty"`
	// PushTarget is WebhookURL under the name the reference gateway and
	// its clients use; giving both, they must be equal.
	PushTarget       string   `json:"push_target,omitempty"`
	SupportedSchemas []string `json:"supported_schemas,omitempty"`
	// Headers are sent with every webhook call to a push agent.
	Headers map[string]string `json:"headers,omitempty"`
}

// Registration is the one-time answer carrying the new credentials: the
// fields at top level, and the agent again under "agent", where existing
// clients (the Python SDK, agentry-admin) read its full address and key.
type Registration struct {
	Address          string          `json:"address"`
	DeliveryMode     DeliveryMode    `json:"delivery_mode"`
	WebhookURL       string          `json:"webhook_url,omitempty"`
	SupportedSchemas []string        `json:"supported_schemas,omitempty"`
	APIKey           string          `json:"api_key"`
	WebhookSecret    string          `json:"webhook_secret,omitempty"`
	Agent            RegisteredAgent `json:"agent"`
}

// RegisteredAgent is the agent in a registration answer. It carries no
// webhook secret and no custom headers.
type RegisteredAgent struct {
	Address          string       `json:"address"`
	DeliveryMode     DeliveryMode `json:"delivery_mode"`
	WebhookURL       string       `json:"webhook_url,omitempty"`
	PushTarget       string       `json:"push_target,omitempty"`
	SupportedSchemas []string     `json:"supported_schemas,omitempty"`
	APIKey           string       `json:"api_key"`
	CreatedAt        time.Time    `json:"created_at"`
}

// registration is the answer for ag with its new key.
func registration(ag *Agent, key, secret string) *Registration {
	return &Registration{
		Address: ag.Address, DeliveryMode: ag.DeliveryMode, WebhookURL: ag.WebhookURL,
		SupportedSchemas: ag.SupportedSchemas, APIKey: key, WebhookSecret: secret,
		Agent: RegisteredAgent{
			Address: ag.Address, DeliveryMode: ag.DeliveryMode, WebhookURL: ag.WebhookURL, PushTarget: ag.WebhookURL,
			SupportedSchemas: ag.SupportedSchemas, APIKey: key, CreatedAt: ag.CreatedAt,
		},
	}
}

// randomToken is prefix and n random bytes in enc. crypto/rand.Read
// never returns an error (since Go 1.24 it crashes the program rather
// than hand out weak randomness), so neither does randomToken.
func randomToken(prefix string, n int, enc *base64.Encoding) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + enc.EncodeToString(b)
}

// agentRegistry is what Agents needs of the AgentStore.
type agentRegistry interface {
	PutAgent(ctx context.Context, a *Agent) error
	GetAgent(ctx context.Context, address string) (*Agent, error)
	ReplaceAgentKey(ctx context.Context, address, oldHash, newHash string) (*Agent, error)
	DeleteAgent(ctx context.Context, address string) error
	ListAgents(ctx context.Context) ([]*Agent, error)
}

// Agents owns the registry of local agents: the admin registers, rotates,
// reads, lists and deletes them (an agent may delete itself), and anyone
// may discover them without their secrets. Authentication by their keys
// is the Authenticator's.
type Agents struct {
	agents agentRegistry
	site   site
	clock  clock
	log    opsLog
	// allowInsecure is Config.AllowInsecure: http:// and private webhook
	// targets.
	allowInsecure bool
	// webhooks are the notification subscriptions a deleted agent's end
	// with it; nil when the gateway keeps none.
	webhooks webhookRemover
}

// RegisterAgent creates (or replaces, rotating its credentials) a local
// agent. The API key and webhook secret are returned once; only the key's
// hash is stored. A replaced agent is the same agent: the store keeps its
// CreatedAt, and with it the agent's mail. Only DeleteAgent ends an agent;
// registering its address after that makes a new one, which sees none of
// the old one's mail.
func (s *Agents) RegisterAgent(ctx context.Context, p Principal, req RegisterRequest) (*Registration, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	ag, err := s.agentFrom(req)
	if err != nil {
		return nil, err
	}
	key := randomToken("amtp_", 32, base64.RawURLEncoding)
	ag.APIKeyHash = HashAPIKey(key)
	if ag.DeliveryMode == ModePush {
		// Standard Webhooks secrets are "whsec_" + base64 of the HMAC key.
		ag.WebhookSecret = randomToken("whsec_", 32, base64.StdEncoding)
	}
	if err := s.agents.PutAgent(ctx, ag); err != nil {
		return nil, s.log.unavailable("register agent", err)
	}
	s.log.InfoContext(ctx, "audit: agent registered", "address", ag.Address, "delivery_mode", string(ag.DeliveryMode),
		"supported_schemas", len(ag.SupportedSchemas), "headers", len(ag.Headers))
	return registration(ag, key, ag.WebhookSecret), nil
}

// agentFrom checks a registration request and makes the agent it asks
// for, without credentials.
func (s *Agents) agentFrom(req RegisterRequest) (*Agent, error) {
	addr, err := s.site.localAddress(strings.TrimSpace(req.Address))
	if err != nil {
		return nil, amtp.FieldError("address", "address must be a name or name@%s", s.site.domain)
	}
	if amtp.IsReservedLocalPart(addr.Local) {
		return nil, amtp.FieldError("address", "%s is reserved: the gateway itself sends as %s@%s", addr.Local,
			strings.Join(amtp.ReservedLocalParts(), ", "), s.site.domain)
	}
	// CreatedAt at full resolution: it is the agent's generation, compared
	// with the acceptance times of messages (canRead), and an agent
	// registered again in the millisecond of an old message must not own it.
	ag := &Agent{Address: addr.Key(), DeliveryMode: req.DeliveryMode, CreatedAt: s.clock().UTC()}
	if err := s.setDelivery(ag, req); err != nil {
		return nil, err
	}
	if err := checkSchemaPatterns(req.SupportedSchemas); err != nil {
		return nil, err
	}
	ag.SupportedSchemas = req.SupportedSchemas
	return ag, nil
}

// rotateAttempts bounds RotateAgentKey's read-then-replace loop, which
// starts over when the agent's key changed in between.
const rotateAttempts = 3

// RotateAgentKey issues a new API key for an agent; the old one stops
// working at once. The answer is like a registration's, the key shown
// once. Everything else is kept, the webhook secret included: the key
// authenticates the agent to us, the secret us to the agent, and a leaked
// key is no reason to break the agent's webhook verification. The secret
// is not shown again; registering the agent anew replaces both.
func (s *Agents) RotateAgentKey(ctx context.Context, p Principal, address string) (*Registration, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	a, err := s.site.localAddress(address)
	if err != nil {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %q", address)
	}
	key := randomToken("amtp_", 32, base64.RawURLEncoding)
	for range rotateAttempts {
		cur, err := s.agents.GetAgent(ctx, a.Key())
		if errors.Is(err, ErrNotFound) {
			return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
		}
		if err != nil {
			return nil, s.log.unavailable("rotate agent key", err)
		}
		ag, err := s.agents.ReplaceAgentKey(ctx, a.Key(), cur.APIKeyHash, HashAPIKey(key))
		switch {
		case errors.Is(err, ErrConflict):
			continue // re-registered or rotated meanwhile: rotate what is there now
		case errors.Is(err, ErrNotFound):
			return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
		case err != nil:
			return nil, s.log.unavailable("rotate agent key", err)
		}
		s.log.InfoContext(ctx, "audit: agent key rotated", "address", ag.Address)
		return registration(ag, key, ""), nil
	}
	return nil, amtp.Errorf(amtp.CodeTemporaryFailure, "agent %s changed while its key was rotated; retry", a)
}

// GetAgent returns an agent without secrets.
func (s *Agents) GetAgent(ctx context.Context, p Principal, address string) (*AgentInfo, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	a, err := s.site.localAddress(address)
	if err != nil {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %q", address)
	}
	ag, err := s.agents.GetAgent(ctx, a.Key())
	if errors.Is(err, ErrNotFound) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
	}
	if err != nil {
		return nil, s.log.unavailable("get agent", err)
	}
	info := publicInfo(ag)
	return &info, nil
}

// AdminAgentView is the admin listing entry: more than the public view
// (the webhook URL) but still no secret.
type AdminAgentView struct {
	AgentInfo
	WebhookURL string `json:"webhook_url,omitempty"`
}

// ListAgents lists all agents for the admin, without secrets.
func (s *Agents) ListAgents(ctx context.Context, p Principal) ([]AdminAgentView, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	all, err := s.agents.ListAgents(ctx)
	if err != nil {
		return nil, s.log.unavailable("list agents", err)
	}
	out := make([]AdminAgentView, 0, len(all))
	for _, a := range all {
		out = append(out, AdminAgentView{AgentInfo: publicInfo(a), WebhookURL: a.WebhookURL})
	}
	return out, nil
}

// DeleteAgent removes an agent; its key stops working at once, its inbox
// is emptied, and mail still queued for it fails (the delivery worker
// finds no agent, or a newer one). The admin deletes any agent, an agent
// itself only.
func (s *Agents) DeleteAgent(ctx context.Context, p Principal, address string) error {
	a, err := s.site.localAddress(address)
	if p.Kind == AgentCaller && p.Agent != nil {
		if err != nil || !strings.EqualFold(a.Key(), p.Agent.Address) {
			return amtp.Errorf(amtp.CodeForbidden, "an agent may unregister itself only")
		}
	} else if err := RequireAdmin(p); err != nil {
		return err
	}
	if err != nil {
		return amtp.Errorf(amtp.CodeNotFound, "no agent %q", address)
	}
	// The subscriptions first: should that fail, the agent is still there
	// to be deleted again.
	if err := removeWebhooks(ctx, s.webhooks, a.Key()); err != nil {
		return s.log.unavailable("delete agent", err)
	}
	err = s.agents.DeleteAgent(ctx, a.Key())
	if errors.Is(err, ErrNotFound) {
		return amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
	}
	if err != nil {
		return s.log.unavailable("delete agent", err)
	}
	by := "admin"
	if p.Kind == AgentCaller {
		by = "itself"
	}
	s.log.InfoContext(ctx, "audit: agent deleted", "address", a.Key(), "by", by)
	return nil
}

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
func (s *Agents) DiscoverAgents(ctx context.Context, f AgentFilter) ([]AgentInfo, error) {
	all, err := s.agents.ListAgents(ctx)
	if err != nil {
		return nil, s.log.unavailable("list agents", err)
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
