package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/amtp"
	"github.com/agentry/agentry/internal/authn"
	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/jwtauth/jwttest"
	"github.com/agentry/agentry/internal/netguard"
)

const audience = "https://a.test/amtp"

func identity(t *testing.T, issuer string) *authn.Identity {
	t.Helper()
	cfg := config.Config{OAuthIssuer: issuer, OAuthAudience: audience, OAuthAgentClaim: "agent"}
	id, err := authn.New(cfg, netguard.NewClient(netguard.Options{AllowInsecure: true}))
	require.NoError(t, err)
	return id
}

// lambdaRequest is the request the api function's adapter makes of an
// API Gateway v2 event.
func lambdaRequest(t *testing.T, rc events.APIGatewayV2HTTPRequestContext) *http.Request {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{RawPath: "/oauth/v1/messages", RequestContext: rc,
		Headers: map[string]string{"authorization": "Bearer x.y.z"}}
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = "POST", "/oauth/v1/messages"
	var ra core.RequestAccessorV2
	r, err := ra.EventToRequestWithContext(context.Background(), ev)
	require.NoError(t, err)
	return r
}

// In Lambda the claims are those API Gateway's JWT authorizer verified:
// they are read from the event, not verified again.
func TestClaimsFromTheJWTAuthorizer(t *testing.T) {
	id := identity(t, "https://issuer.invalid") // never fetched
	r := lambdaRequest(t, events.APIGatewayV2HTTPRequestContext{Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"agent": "alice@a.test", "scope": "amtp:send amtp:admin"}},
	}})
	c, err := id.Claims(r, "x.y.z")
	require.NoError(t, err)
	assert.Equal(t, "alice@a.test", c.Agent)
	assert.Equal(t, []string{"amtp:send", "amtp:admin"}, c.Scopes)

	r = lambdaRequest(t, events.APIGatewayV2HTTPRequestContext{Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"agent": "bob"}, Scopes: []string{"amtp:send"}},
	}})
	c, err = id.Claims(r, "x.y.z")
	require.NoError(t, err)
	assert.Equal(t, "bob", c.Agent)
	assert.Equal(t, []string{"amtp:send"}, c.Scopes, "the authorizer's scopes list wins over the claim")
}

// Without an authorizer's word (the local process, or an event from a
// route without one) the token is verified here.
func TestClaimsVerifiedWhenNoAuthorizerVouches(t *testing.T) {
	iss := jwttest.NewHTTPIssuer(t, "EdDSA")
	id := identity(t, iss.URL())
	good := iss.Mint(map[string]any{"aud": audience, "agent": "alice@a.test", "scope": "amtp:send"})

	for name, r := range map[string]*http.Request{
		"plain request":          httptest.NewRequest("POST", "/oauth/v1/messages", nil),
		"event without a claims": lambdaRequest(t, events.APIGatewayV2HTTPRequestContext{}),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := id.Claims(r, good)
			require.NoError(t, err)
			assert.Equal(t, "alice@a.test", c.Agent)
			_, err = id.Claims(r, iss.Mint(map[string]any{"aud": "https://elsewhere", "agent": "alice@a.test"}))
			e, ok := amtp.AsError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, amtp.CodeAuthenticationRequired, e.Code)
		})
	}

	off, err := authn.New(config.Config{}, http.DefaultClient)
	require.NoError(t, err)
	_, err = off.Claims(httptest.NewRequest("GET", "/", nil), good)
	require.Error(t, err, "OAuth off refuses every token")
}

func TestPeerNames(t *testing.T) {
	id := identity(t, "https://issuer.invalid")
	cert := selfSigned(t, "a.test", "gw.a.test")

	r := httptest.NewRequest("POST", "/v1/messages", nil)
	assert.Nil(t, id.PeerNames(r), "no TLS")
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	assert.Nil(t, id.PeerNames(r), "a certificate the handshake did not verify names nobody")
	r.TLS.VerifiedChains = [][]*x509.Certificate{{cert}}
	assert.Equal(t, []string{"a.test", "gw.a.test"}, id.PeerNames(r))

	// API Gateway's mutual-TLS domain verified it and passes it on.
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	rc := events.APIGatewayV2HTTPRequestContext{}
	rc.Authentication.ClientCert.ClientCertPem = pemText
	assert.Equal(t, []string{"a.test", "gw.a.test"}, id.PeerNames(lambdaRequest(t, rc)))
	rc.Authentication.ClientCert.ClientCertPem = "not pem"
	assert.Nil(t, id.PeerNames(lambdaRequest(t, rc)))
}

func selfSigned(t *testing.T, names ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}
