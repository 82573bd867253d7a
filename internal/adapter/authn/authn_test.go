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
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/authn"
	"github.com/agentry/agentry/internal/adapter/jwtauth/jwttest"
	"github.com/agentry/agentry/internal/adapter/netguard"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/runtime/config"
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

func TestNewRefusesAnUnusableIssuer(t *testing.T) {
	_, err := authn.New(config.Config{OAuthIssuer: "id.example.com", OAuthAudience: audience}, http.DefaultClient)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "oauth")
	assert.Contains(t, err.Error(), "issuer")
}

// The issuer being down is not the caller's fault: the token cannot be
// checked now, and the caller is told to retry, without the details.
func TestClaimsWhenTheIssuerIsDown(t *testing.T) {
	iss := jwttest.NewHTTPIssuer(t, "ES256")
	iss.SetJWKSHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	id := identity(t, iss.URL())
	_, err := id.Claims(httptest.NewRequest("POST", "/oauth/v1/messages", nil), iss.Mint(map[string]any{"aud": audience, "agent": "alice@a.test"}))
	e, ok := amtp.AsError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, amtp.CodeTemporaryFailure, e.Code)
	assert.NotContains(t, e.Error(), "503", "the issuer's answer stays out of the response")
	assert.NotContains(t, e.Error(), iss.URL())
}

// A certificate names its DNS names, else its common name (older
// certificates), else nobody; a PEM block that is not a certificate names
// nobody.
func TestPeerNamesOfOtherCertificates(t *testing.T) {
	id := identity(t, "https://issuer.invalid")
	verified := func(c *x509.Certificate) *http.Request {
		r := httptest.NewRequest("POST", "/v1/messages", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
		return r
	}
	cnOnly := certificate(t, pkix.Name{CommonName: "gw.legacy.test"}, nil)
	assert.Equal(t, []string{"gw.legacy.test"}, id.PeerNames(verified(cnOnly)))
	anonymous := certificate(t, pkix.Name{Organization: []string{"No Name Inc"}}, nil)
	assert.Nil(t, id.PeerNames(verified(anonymous)))

	rc := events.APIGatewayV2HTTPRequestContext{}
	rc.Authentication.ClientCert.ClientCertPem = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))
	assert.Nil(t, id.PeerNames(lambdaRequest(t, rc)))
	rc.Authentication.ClientCert.ClientCertPem = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cnOnly.Raw}))
	assert.Equal(t, []string{"gw.legacy.test"}, id.PeerNames(lambdaRequest(t, rc)))
}

func certificate(t *testing.T, subject pkix.Name, dnsNames []string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: subject, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// tlsFiles writes a self-signed certificate and its key as PEM files, and
// a file that is not PEM.
func tlsFiles(t *testing.T) (certFile, keyFile, junkFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "gw.a.test"}, DNSNames: []string{"gw.a.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile, junkFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600))
	require.NoError(t, os.WriteFile(junkFile, []byte("no certificate here\n"), 0o600))
	return certFile, keyFile, junkFile, cert
}

func TestServerTLS(t *testing.T) {
	certFile, keyFile, junk, cert := tlsFiles(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")

	tc, err := authn.ServerTLS(config.Config{TLSCert: certFile, TLSKey: keyFile})
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS13), tc.MinVersion)
	assert.Equal(t, tls.NoClientCert, tc.ClientAuth, "no client CA: no client certificates asked for")
	require.Len(t, tc.Certificates, 1)

	tc, err = authn.ServerTLS(config.Config{TLSCert: certFile, TLSKey: keyFile, TLSClientCA: certFile})
	require.NoError(t, err)
	assert.Equal(t, tls.VerifyClientCertIfGiven, tc.ClientAuth, "asked for, verified, not required at the handshake")
	_, err = cert.Verify(x509.VerifyOptions{Roots: tc.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	assert.NoError(t, err, "the client CA is what client certificates are verified against")

	for _, bad := range []struct {
		name string
		cfg  config.Config
		want string
	}{
		{"certificate missing", config.Config{TLSCert: missing, TLSKey: keyFile}, "load TLS certificate"},
		{"key is not a key", config.Config{TLSCert: certFile, TLSKey: junk}, "load TLS certificate"},
		{"client CA missing", config.Config{TLSCert: certFile, TLSKey: keyFile, TLSClientCA: missing}, "AGENTRY_TLS_CLIENT_CA"},
		{"client CA without a certificate", config.Config{TLSCert: certFile, TLSKey: keyFile, TLSClientCA: junk}, "no PEM certificate"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			_, err := authn.ServerTLS(bad.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad.want)
		})
	}
}

func TestClientTLS(t *testing.T) {
	certFile, keyFile, junk, cert := tlsFiles(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")

	cc, roots, err := authn.ClientTLS(config.Config{})
	require.NoError(t, err)
	assert.Nil(t, cc, "no client certificate configured")
	assert.Nil(t, roots, "nil roots: the system's")

	cc, roots, err = authn.ClientTLS(config.Config{TLSClientCert: certFile, TLSClientKey: keyFile, TLSRootCA: certFile})
	require.NoError(t, err)
	require.NotNil(t, cc)
	assert.Equal(t, cert.Raw, cc.Certificate[0])
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "gw.a.test"})
	assert.NoError(t, err, "AGENTRY_TLS_ROOT_CA is trusted")

	for _, bad := range []struct {
		name string
		cfg  config.Config
		want string
	}{
		{"client certificate missing", config.Config{TLSClientCert: missing, TLSClientKey: keyFile}, "AGENTRY_TLS_CLIENT_CERT"},
		{"client key is not a key", config.Config{TLSClientCert: certFile, TLSClientKey: junk}, "AGENTRY_TLS_CLIENT_CERT"},
		{"root CA missing", config.Config{TLSRootCA: missing}, "AGENTRY_TLS_ROOT_CA"},
		{"root CA without a certificate", config.Config{TLSRootCA: junk}, "no PEM certificate"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			_, _, err := authn.ClientTLS(bad.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad.want)
		})
	}
}
