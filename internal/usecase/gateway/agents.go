package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/ipclass"
)

// Registration bounds.
const (
	maxSupportedSchemas = 64
	maxWebhookURLLen    = 2048
	maxHeaders          = 16
	maxHeaderNameLen    = 64
	maxHeaderValueLen   = 1024
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

// RegisterAgent creates (or replaces, rotating its credentials) a local
// agent. The API key and webhook secret are returned once; only the key's
// hash is stored. A replaced agent is the same agent: the store keeps its
// CreatedAt, and with it the agent's mail. Only DeleteAgent ends an agent;
// registering its address after that makes a new one, which sees none of
// the old one's mail.
func (s *Service) RegisterAgent(ctx context.Context, p Principal, req RegisterRequest) (*Registration, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	addr, err := s.LocalAddress(strings.TrimSpace(req.Address))
	if err != nil {
		return nil, amtp.FieldError("address", "address must be a name or name@%s", s.cfg.Domain)
	}
	if amtp.IsReservedLocalPart(addr.Local) {
		return nil, amtp.FieldError("address", "%s is reserved: the gateway itself sends as %s@%s", addr.Local,
			strings.Join(amtp.ReservedLocalParts(), ", "), s.cfg.Domain)
	}
	// CreatedAt at full resolution: it is the agent's generation, compared
	// with the acceptance times of messages (canRead), and an agent
	// registered again in the millisecond of an old message must not own it.
	ag := &Agent{Address: addr.Key(), DeliveryMode: req.DeliveryMode, CreatedAt: s.cfg.Now().UTC()}
	target, field := req.WebhookURL, "webhook_url"
	if req.PushTarget != "" {
		if target != "" && target != req.PushTarget {
			return nil, amtp.FieldError("push_target", "push_target and webhook_url name the same webhook; give one of them, or both the same")
		}
		target, field = req.PushTarget, "push_target"
	}
	switch req.DeliveryMode {
	case ModePush:
		if err := s.checkWebhookURL(field, target); err != nil {
			return nil, err
		}
		ag.WebhookURL = target
		h, err := checkHeaders(req.Headers)
		if err != nil {
			return nil, err
		}
		ag.Headers = h
	case ModePull:
		if target != "" {
			return nil, amtp.FieldError(field, "a pull agent has no %s; use delivery_mode push", field)
		}
		if len(req.Headers) > 0 {
			return nil, amtp.FieldError("headers", "headers are sent with webhook calls; a pull agent has none")
		}
	default:
		return nil, amtp.FieldError("delivery_mode", "delivery_mode must be push or pull")
	}
	if len(req.SupportedSchemas) > maxSupportedSchemas {
		return nil, amtp.FieldError("supported_schemas", "at most %d schema patterns", maxSupportedSchemas)
	}
	for i, sc := range req.SupportedSchemas {
		if !validSchemaPattern(sc) {
			return nil, amtp.FieldError(fmt.Sprintf("supported_schemas[%d]", i), "schema patterns look like agntcy:commerce.* or agntcy:commerce.order.v2")
		}
	}
	ag.SupportedSchemas = req.SupportedSchemas

	key := randomToken("amtp_", 32, base64.RawURLEncoding)
	ag.APIKeyHash = HashAPIKey(key)
	if ag.DeliveryMode == ModePush {
		// Standard Webhooks secrets are "whsec_" + base64 of the HMAC key.
		ag.WebhookSecret = randomToken("whsec_", 32, base64.StdEncoding)
	}
	if err := s.agents.PutAgent(ctx, ag); err != nil {
		return nil, s.unavailable("register agent", err)
	}
	s.log.InfoContext(ctx, "audit: agent registered", "address", ag.Address, "delivery_mode", string(ag.DeliveryMode),
		"supported_schemas", len(ag.SupportedSchemas), "headers", len(ag.Headers))
	return registration(ag, key, ag.WebhookSecret), nil
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
func (s *Service) RotateAgentKey(ctx context.Context, p Principal, address string) (*Registration, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	a, err := s.LocalAddress(address)
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
			return nil, s.unavailable("rotate agent key", err)
		}
		ag, err := s.agents.ReplaceAgentKey(ctx, a.Key(), cur.APIKeyHash, HashAPIKey(key))
		switch {
		case errors.Is(err, ErrConflict):
			continue // re-registered or rotated meanwhile: rotate what is there now
		case errors.Is(err, ErrNotFound):
			return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
		case err != nil:
			return nil, s.unavailable("rotate agent key", err)
		}
		s.log.InfoContext(ctx, "audit: agent key rotated", "address", ag.Address)
		return registration(ag, key, ""), nil
	}
	return nil, amtp.Errorf(amtp.CodeTemporaryFailure, "agent %s changed while its key was rotated; retry", a)
}

// reservedHeaders are what the gateway sets on webhook calls itself, or
// what the HTTP client owns; an agent's custom headers may not name them.
// Authorization is the agent's to choose. X-AMTP-* is reserved as a whole.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "content-encoding": true, "host": true,
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
	"user-agent": true, "connection": true, "transfer-encoding": true, "te": true, "trailer": true,
	"upgrade": true, "keep-alive": true, "proxy-connection": true, "expect": true,
}

// checkHeaders validates a push agent's custom webhook headers and returns
// them to store (nil when there are none).
func checkHeaders(h map[string]string) (map[string]string, error) {
	if len(h) == 0 {
		return nil, nil
	}
	if len(h) > maxHeaders {
		return nil, amtp.FieldError("headers", "at most %d headers", maxHeaders)
	}
	seen := make(map[string]string, len(h))
	out := make(map[string]string, len(h))
	for name, value := range h {
		if name == "" || len(name) > maxHeaderNameLen || !isToken(name) {
			return nil, amtp.FieldError("headers", "header name %q must be 1 to %d letters, digits or !#$%%&'*+-.^_`|~", name, maxHeaderNameLen)
		}
		lower := strings.ToLower(name)
		if reservedHeaders[lower] || strings.HasPrefix(lower, "x-amtp-") {
			return nil, amtp.FieldError("headers", "header %s is set by the gateway and cannot be replaced", name)
		}
		if prev, dup := seen[lower]; dup {
			return nil, amtp.FieldError("headers", "headers %s and %s are the same header", prev, name)
		}
		seen[lower] = name
		if len(value) > maxHeaderValueLen {
			return nil, amtp.FieldError("headers", "the value of header %s is longer than %d bytes", name, maxHeaderValueLen)
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
				return nil, amtp.FieldError("headers", "the value of header %s has a control character (CR, LF, NUL, …)", name)
			}
		}
		out[name] = value
	}
	return out, nil
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validSchemaPattern(p string) bool {
	if p == "" || len(p) > amtp.MaxSchemaLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".-_:/*", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkWebhookURL refuses webhook targets an attacker with the admin key
// could use to reach the gateway's own network, unless insecure mode is on.
// Names are re-checked when the connection is made (see netguard).
// field is the name the caller gave it: webhook_url or push_target.
func (s *Service) checkWebhookURL(field, raw string) error {
	if raw == "" {
		return amtp.FieldError(field, "a push agent needs a webhook_url (or push_target)")
	}
	if len(raw) > maxWebhookURLLen {
		return amtp.FieldError(field, "%s is longer than %d bytes", field, maxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return amtp.FieldError(field, "%s must be an absolute URL without credentials or fragment", field)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !s.cfg.AllowInsecure {
			return amtp.FieldError(field, "%s must use https", field)
		}
	default:
		return amtp.FieldError(field, "%s must use https", field)
	}
	if s.cfg.AllowInsecure {
		return nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return amtp.FieldError(field, "%s must not point at this machine", field)
	}
	if ipclass.NonCanonicalIPv4(host) {
		// Resolvers read such hosts as IPv4 addresses, and no public DNS
		// name looks like one, so no resolution is needed to refuse it.
		return amtp.FieldError(field, "%s must name a host, or an IP address written canonically (a.b.c.d or [IPv6]), not a numeric IPv4 spelling", field)
	}
	if ip, err := netip.ParseAddr(host); err == nil && !ipclass.Public(ip) {
		return amtp.FieldError(field, "%s must not point at a private, loopback, link-local or other non-public address", field)
	}
	return nil
}

// GetAgent returns an agent without secrets.
func (s *Service) GetAgent(ctx context.Context, p Principal, address string) (*AgentInfo, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	a, err := s.LocalAddress(address)
	if err != nil {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %q", address)
	}
	ag, err := s.agents.GetAgent(ctx, a.Key())
	if errors.Is(err, ErrNotFound) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
	}
	if err != nil {
		return nil, s.unavailable("get agent", err)
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
func (s *Service) ListAgents(ctx context.Context, p Principal) ([]AdminAgentView, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	all, err := s.agents.ListAgents(ctx)
	if err != nil {
		return nil, s.unavailable("list agents", err)
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
func (s *Service) DeleteAgent(ctx context.Context, p Principal, address string) error {
	a, err := s.LocalAddress(address)
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
	err = s.agents.DeleteAgent(ctx, a.Key())
	if errors.Is(err, ErrNotFound) {
		return amtp.Errorf(amtp.CodeNotFound, "no agent %s", a)
	}
	if err != nil {
		return s.unavailable("delete agent", err)
	}
	by := "admin"
	if p.Kind == AgentCaller {
		by = "itself"
	}
	s.log.InfoContext(ctx, "audit: agent deleted", "address", a.Key(), "by", by)
	return nil
}
