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

	"github.com/agentry/agentry/internal/amtp"
)

// Registration bounds.
const (
	maxSupportedSchemas = 64
	maxWebhookURLLen    = 2048
)

// RegisterRequest is the body of POST /v1/admin/agents.
type RegisterRequest struct {
	Address          string       `json:"address"`
	DeliveryMode     DeliveryMode `json:"delivery_mode"`
	WebhookURL       string       `json:"webhook_url,omitempty"`
	SupportedSchemas []string     `json:"supported_schemas,omitempty"`
}

// Registration is the one-time answer carrying the new credentials.
type Registration struct {
	Address          string       `json:"address"`
	DeliveryMode     DeliveryMode `json:"delivery_mode"`
	WebhookURL       string       `json:"webhook_url,omitempty"`
	SupportedSchemas []string     `json:"supported_schemas,omitempty"`
	APIKey           string       `json:"api_key"`
	WebhookSecret    string       `json:"webhook_secret,omitempty"`
}

func randomToken(prefix string, n int, enc *base64.Encoding) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return prefix + enc.EncodeToString(b), nil
}

// RegisterAgent creates (or replaces, rotating its credentials) a local
// agent. The API key and webhook secret are returned once; only the key's
// hash is stored.
func (s *Service) RegisterAgent(ctx context.Context, p Principal, req RegisterRequest) (*Registration, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	addr, err := s.LocalAddress(strings.TrimSpace(req.Address))
	if err != nil {
		return nil, amtp.FieldError("address", "address must be a name or name@%s", s.cfg.Domain)
	}
	ag := &Agent{Address: addr.Key(), DeliveryMode: req.DeliveryMode, CreatedAt: s.cfg.Now().UTC()}
	switch req.DeliveryMode {
	case ModePush:
		if err := s.checkWebhookURL(req.WebhookURL); err != nil {
			return nil, err
		}
		ag.WebhookURL = req.WebhookURL
	case ModePull:
		if req.WebhookURL != "" {
			return nil, amtp.FieldError("webhook_url", "a pull agent has no webhook_url; use delivery_mode push")
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

	key, err := randomToken("amtp_", 32, base64.RawURLEncoding)
	if err != nil {
		return nil, s.unavailable("register agent", err)
	}
	ag.APIKeyHash = HashAPIKey(key)
	reg := &Registration{Address: ag.Address, DeliveryMode: ag.DeliveryMode, WebhookURL: ag.WebhookURL, SupportedSchemas: ag.SupportedSchemas, APIKey: key}
	if ag.DeliveryMode == ModePush {
		// Standard Webhooks secrets are "whsec_" + base64 of the HMAC key.
		sec, err := randomToken("whsec_", 32, base64.StdEncoding)
		if err != nil {
			return nil, s.unavailable("register agent", err)
		}
		ag.WebhookSecret = sec
		reg.WebhookSecret = sec
	}
	if err := s.agents.PutAgent(ctx, ag); err != nil {
		return nil, s.unavailable("register agent", err)
	}
	s.log.InfoContext(ctx, "audit: agent registered", "address", ag.Address, "delivery_mode", string(ag.DeliveryMode), "supported_schemas", len(ag.SupportedSchemas))
	return reg, nil
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
func (s *Service) checkWebhookURL(raw string) error {
	if raw == "" {
		return amtp.FieldError("webhook_url", "a push agent needs a webhook_url")
	}
	if len(raw) > maxWebhookURLLen {
		return amtp.FieldError("webhook_url", "webhook_url is longer than %d bytes", maxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return amtp.FieldError("webhook_url", "webhook_url must be an absolute URL without credentials or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !s.cfg.AllowInsecure {
			return amtp.FieldError("webhook_url", "webhook_url must use https")
		}
	default:
		return amtp.FieldError("webhook_url", "webhook_url must use https")
	}
	if s.cfg.AllowInsecure {
		return nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return amtp.FieldError("webhook_url", "webhook_url must not point at this machine")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !PublicIP(ip) {
		return amtp.FieldError("webhook_url", "webhook_url must not point at a private, loopback or link-local address")
	}
	return nil
}

// PublicIP reports whether ip is a globally routable unicast address: not
// loopback, private, link-local (which includes the cloud metadata
// endpoint), multicast, unspecified, CGNAT, or documentation space.
func PublicIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublicPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
		"64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

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

// DeleteAgent removes an agent; its key stops working at once.
func (s *Service) DeleteAgent(ctx context.Context, p Principal, address string) error {
	if err := RequireAdmin(p); err != nil {
		return err
	}
	a, err := s.LocalAddress(address)
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
	s.log.InfoContext(ctx, "audit: agent deleted", "address", a.Key())
	return nil
}
