package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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

// keyedAgents is what the Authenticator needs of the AgentStore.
type keyedAgents interface {
	AgentByKeyHash(ctx context.Context, h string) (*Agent, error)
	GetAgent(ctx context.Context, address string) (*Agent, error)
}

// Authenticator owns who a caller is: it turns an API key, the admin key
// or a verified token's claims into a Principal. Deciding what that
// Principal may do is each service's own business.
type Authenticator struct {
	agents     keyedAgents
	site       site
	log        opsLog
	adminScope string // Config.OAuthAdminScope
	admin      *adminKey
}

// adminKey is the admin key's hash, fetched once when it comes from
// Config.AdminKeyFunc.
type adminKey struct {
	fetch func(context.Context) (string, error)
	mu    sync.Mutex
	hash  [32]byte
	set   bool
}

func newAdminKey(key string, fetch func(context.Context) (string, error)) *adminKey {
	k := &adminKey{fetch: fetch}
	if key != "" {
		k.hash, k.set = sha256.Sum256([]byte(key)), true
	}
	return k
}

// get returns the admin key's hash. ok is false when no admin key is
// configured.
func (k *adminKey) get(ctx context.Context) ([32]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set {
		return k.hash, true, nil
	}
	if k.fetch == nil {
		return [32]byte{}, false, nil
	}
	key, err := k.fetch(ctx)
	if err != nil {
		return [32]byte{}, false, fmt.Errorf("fetch admin key: %w", err)
	}
	if len(key) < 16 {
		return [32]byte{}, false, errors.New("admin key is shorter than 16 characters")
	}
	k.hash, k.set = sha256.Sum256([]byte(key)), true
	return k.hash, true, nil
}

// Authenticate resolves a bearer token. An empty token is Anonymous; an
// unknown one is an error, never silently anonymous.
func (s *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{Kind: Anonymous}, nil
	}
	// One hash serves the admin comparison and the agent lookup (which
	// is by HashAPIKey, the hex of the same hash).
	h := tokenHash(token)
	if admin, ok, err := s.admin.get(ctx); err != nil {
		return Principal{}, s.log.unavailable("authenticate", err)
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
		return Principal{}, s.log.unavailable("authenticate", err)
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
func (s *Authenticator) refuseReserved(ctx context.Context, a *Agent) error {
	local, _, _ := strings.Cut(a.Address, "@")
	if !amtp.IsReservedLocalPart(local) {
		return nil
	}
	s.log.WarnContext(ctx, "refused the key of an agent registered under a reserved name; delete the agent", "address", a.Address)
	return amtp.Errorf(amtp.CodeAuthenticationRequired, "the bearer token is not a valid key")
}

// AuthenticateClaims resolves a verified token: the admin scope makes the
// admin; otherwise the agent claim must name a registered local agent,
// which the caller then acts as. A valid token for nobody we know is
// refused like an unknown key.
func (s *Authenticator) AuthenticateClaims(ctx context.Context, c TokenClaims) (Principal, error) {
	if s.adminScope != "" && slices.Contains(c.Scopes, s.adminScope) {
		return Principal{Kind: AdminCaller, ViaToken: true}, nil
	}
	if strings.TrimSpace(c.Agent) == "" {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token names no agent")
	}
	addr, err := s.site.localAddress(c.Agent)
	if err != nil {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token's agent is not an address of %s", s.site.domain)
	}
	a, err := s.agents.GetAgent(ctx, addr.Key())
	if errors.Is(err, ErrNotFound) {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "the token's agent %s is not registered here", addr)
	}
	if err != nil {
		return Principal{}, s.log.unavailable("authenticate", err)
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
func (s *Authenticator) AuthenticateAdmin(ctx context.Context, key string) (Principal, error) {
	h := tokenHash(key)
	admin, ok, err := s.admin.get(ctx)
	if err != nil {
		return Principal{}, s.log.unavailable("authenticate", err)
	}
	if key == "" || !ok || subtle.ConstantTimeCompare(h[:], admin[:]) != 1 {
		return Principal{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "X-Admin-Key is not the admin key")
	}
	return Principal{Kind: AdminCaller}, nil
}
