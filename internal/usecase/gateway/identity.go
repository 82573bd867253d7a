package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Authentication methods as advertised in the TXT record's auth=.
const (
	AuthAPIKey = "apikey"
	AuthOAuth2 = "oauth2"
	AuthMTLS   = "mtls"
)

// AuthMethodsFor lists what a gateway with these methods enabled
// advertises, in a fixed order so that the record is stable.
func AuthMethodsFor(oauth, mtls bool) []string {
	m := []string{AuthAPIKey}
	if oauth {
		m = append(m, AuthOAuth2)
	}
	if mtls {
		m = append(m, AuthMTLS)
	}
	return m
}

// TokenClaims is what authorisation needs from a verified OAuth 2.0
// bearer token. Verifying it is the transport's business: the local
// process checks the JWT against the issuer's keys, API Gateway's JWT
// authorizer does on AWS.
type TokenClaims struct {
	// Agent is the value of the claim that names the caller's agent
	// (AGENTRY_OAUTH_AGENT_CLAIM, default sub): a local address, or a
	// bare name in our domain.
	Agent  string
	Scopes []string
}

// AuthenticateClaims resolves a verified token: the admin scope makes the
// admin; otherwise the agent claim must name a registered local agent,
// which the caller then acts as. A valid token for nobody we know is
// refused like an unknown key.
func (s *Service) AuthenticateClaims(ctx context.Context, c TokenClaims) (Principal, error) {
	if s.cfg.OAuthAdminScope != "" && slices.Contains(c.Scopes, s.cfg.OAuthAdminScope) {
		return Principal{Kind: AdminCaller, ViaToken: true}, nil
	}
	if strings.TrimSpace(c.Agent) == "" {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token names no agent")
	}
	addr, err := s.LocalAddress(c.Agent)
	if err != nil {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token's agent is not an address of %s", s.cfg.Domain)
	}
	a, err := s.agents.GetAgent(ctx, addr.Key())
	if errors.Is(err, ErrNotFound) {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token's agent %s is not registered here", addr)
	}
	if err != nil {
		return Principal{}, s.unavailable("authenticate", err)
	}
	if err := s.refuseReserved(ctx, a); err != nil {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token's agent %s is not registered here", addr)
	}
	return Principal{Kind: AgentCaller, Agent: a, ViaToken: true}, nil
}

// AuthenticateAdmin resolves a key presented as the admin key (the
// X-Admin-Key header): the admin, or refused exactly like an unknown key.
// An agent's key is not looked up, so it neither authenticates here nor
// answers differently from a wrong key.
func (s *Service) AuthenticateAdmin(ctx context.Context, key string) (Principal, error) {
	h := tokenHash(key)
	admin, ok, err := s.adminKeyHash(ctx)
	if err != nil {
		return Principal{}, s.unavailable("authenticate", err)
	}
	if key == "" || !ok || subtle.ConstantTimeCompare(h[:], admin[:]) != 1 {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "X-Admin-Key is not the admin key")
	}
	return Principal{Kind: AdminCaller}, nil
}

// checkPeer checks the transport identity of another domain's gateway
// when peers must use mutual TLS: the verified client certificate must
// name the sender's domain (or be a wildcard for it), so that a gateway
// with a certificate for its own domain cannot deliver mail claiming to
// come from another.
func (s *Service) checkPeer(p Principal, sender amtp.Address) error {
	if !s.cfg.RequirePeerMTLS {
		return nil
	}
	if len(p.PeerNames) == 0 {
		return amtp.Errorf(amtp.CodeAuthenticationRequired, "this gateway requires mutual TLS from other gateways: present a client certificate for %s", sender.Domain)
	}
	for _, n := range p.PeerNames {
		if certNameMatches(strings.ToLower(strings.TrimSuffix(n, ".")), sender.Domain) {
			return nil
		}
	}
	return amtp.Errorf(amtp.CodeForbidden, "the client certificate does not name %s, the sender's domain", sender.Domain).WithDetail("field", "sender")
}

// certNameMatches is the usual host-name rule: exact, or "*." matching
// exactly one label.
func certNameMatches(name, domain string) bool {
	if name == domain {
		return true
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		_, parent, found := strings.Cut(domain, ".")
		return found && parent == rest
	}
	return false
}
