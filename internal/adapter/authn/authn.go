// Package authn is the transport side of authentication (httpapi.Identity)
// for both runtimes: OAuth 2.0 bearer tokens and client certificates.
//
// Locally the process verifies both itself: JWTs against the issuer's
// JWKS (internal/adapter/jwtauth), client certificates in the TLS handshake. In
// Lambda, API Gateway has already done both — its JWT authorizer on the
// /oauth routes, its mutual-TLS custom domain for peers — and the request
// context carries the outcome; this package reads it there and falls back
// to its own checks when a request did not come through API Gateway.
package authn

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"github.com/agentry/agentry/internal/adapter/jwtauth"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Identity implements httpapi.Identity.
type Identity struct {
	verifier   *jwtauth.Verifier // nil: OAuth off
	agentClaim string
}

// New builds the identity source the configuration asks for. client is
// the SSRF-guarded client the issuer's keys are fetched with.
func New(cfg config.Config, client *http.Client) (*Identity, error) {
	id := &Identity{agentClaim: cfg.OAuthAgentClaim}
	if id.agentClaim == "" {
		id.agentClaim = "sub"
	}
	if !cfg.OAuth() {
		return id, nil
	}
	v, err := jwtauth.New(jwtauth.Config{Issuer: cfg.OAuthIssuer, Audience: cfg.OAuthAudience, JWKSURL: cfg.OAuthJWKSURL, Client: client})
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	id.verifier = v
	return id, nil
}

// Claims returns the claims of a verified OAuth token.
func (id *Identity) Claims(r *http.Request, token string) (gateway.TokenClaims, error) {
	if id.verifier == nil {
		return gateway.TokenClaims{}, amtp.Errorf(amtp.CodeAuthenticationRequired, "OAuth is not enabled on this gateway")
	}
	// Claims API Gateway's JWT authorizer put in the event were verified
	// there (issuer, audience, signature, expiry); the event itself comes
	// from API Gateway, not from the caller.
	if ac, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok && ac.Authorizer != nil && ac.Authorizer.JWT != nil {
		jc := ac.Authorizer.JWT
		scopes := jc.Scopes
		if len(scopes) == 0 {
			scopes = strings.Fields(jc.Claims["scope"])
		}
		return gateway.TokenClaims{Agent: jc.Claims[id.agentClaim], Scopes: scopes}, nil
	}
	c, err := id.verifier.Verify(r.Context(), token)
	if errors.Is(err, jwtauth.ErrKeysUnavailable) {
		// The issuer being down is not the caller's fault: retry later.
		return gateway.TokenClaims{}, amtp.Errorf(amtp.CodeTemporaryFailure, "the OAuth issuer's keys are unavailable; retry later")
	}
	if err != nil {
		return gateway.TokenClaims{}, err
	}
	return gateway.TokenClaims{Agent: c.String(id.agentClaim), Scopes: c.Scopes}, nil
}

// PeerNames are the names of the client certificate the caller's TLS
// connection verified: the local listener's handshake (against
// AGENTRY_TLS_CLIENT_CA), or API Gateway's mutual-TLS domain (against its
// truststore). An unverified certificate names nobody.
func (id *Identity) PeerNames(r *http.Request) []string {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return certNames(r.TLS.VerifiedChains[0][0])
	}
	if ac, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok && ac.Authentication.ClientCert.ClientCertPem != "" {
		block, _ := pem.Decode([]byte(ac.Authentication.ClientCert.ClientCertPem))
		if block == nil {
			return nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil
		}
		return certNames(c)
	}
	return nil
}

// certNames are a certificate's DNS names, or its common name when it has
// none (older certificates).
func certNames(c *x509.Certificate) []string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames
	}
	if c.Subject.CommonName != "" {
		return []string{c.Subject.CommonName}
	}
	return nil
}

// ServerTLS is the local listener's configuration: TLS 1.3, and with a
// client CA, client certificates asked for and verified when given. They
// are not required at the handshake: agents authenticate with keys, and
// only mail from other gateways needs one (gateway.Config.RequirePeerMTLS).
func ServerTLS(cfg config.Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if cfg.TLSClientCA != "" {
		pool := x509.NewCertPool()
		if err := appendPEM(pool, cfg.TLSClientCA); err != nil {
			return nil, fmt.Errorf("AGENTRY_TLS_CLIENT_CA: %w", err)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// ClientTLS is what outbound connections present and trust: the client
// certificate for peers requiring mutual TLS (AGENTRY_TLS_CLIENT_CERT),
// and the system's roots plus AGENTRY_TLS_ROOT_CA. Both nil when unset.
func ClientTLS(cfg config.Config) (*tls.Certificate, *x509.CertPool, error) {
	var (
		cert  *tls.Certificate
		roots *x509.CertPool
	)
	if cfg.TLSClientCert != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLSClientCert, cfg.TLSClientKey)
		if err != nil {
			return nil, nil, fmt.Errorf("AGENTRY_TLS_CLIENT_CERT: %w", err)
		}
		cert = &c
	}
	if cfg.TLSRootCA != "" {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if err := appendPEM(roots, cfg.TLSRootCA); err != nil {
			return nil, nil, fmt.Errorf("AGENTRY_TLS_ROOT_CA: %w", err)
		}
	}
	return cert, roots, nil
}

func appendPEM(pool *x509.CertPool, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return nil
}
