package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/adapter/jwtauth/jwttest"
)

const oauthAudience = "https://a.test/amtp"

// TestOAuthBearerTokens: with an issuer configured, OAuth clients call the
// API under /oauth with JWTs: the agent claim says who they are, the
// admin scope makes the admin; the gateway advertises auth=…,oauth2.
func TestOAuthBearerTokens(t *testing.T) { bothRuntimes(t, testOAuthBearerTokens) }

func testOAuthBearerTokens(t *testing.T, onAWS bool) {
	iss := jwttest.NewHTTPIssuer(t, "ES256")
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS, env: map[string]string{
		"AGENTRY_OAUTH_ISSUER": iss.URL(), "AGENTRY_OAUTH_AUDIENCE": oauthAudience,
	}})
	a.register("alice", "pull", "")
	a.register("bob", "pull", "")
	token := func(sub string, mod func(map[string]any)) string {
		c := map[string]any{"iss": iss.URL(), "aud": oauthAudience, "sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "scope": "amtp:send"}
		if mod != nil {
			mod(c)
		}
		return iss.Mint(c)
	}
	alice, bob := token("alice@a.test", nil), token("bob", nil) // a bare name is in our domain

	code, out := call(t, "POST", a.url+"/oauth/v1/messages", alice, msg("alice@a.test", []string{"bob@a.test"}, "via oauth"))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	code, out = call(t, "GET", a.url+"/oauth/v1/inbox/bob@a.test", bob, nil)
	require.Equal(t, http.StatusOK, code, "%v", out)
	assert.Len(t, out["messages"], 1)

	admin := token("ops", func(c map[string]any) { c["scope"] = "amtp:admin" })
	code, out = call(t, "POST", a.url+"/oauth/v1/admin/agents", admin, map[string]any{"address": "carol", "delivery_mode": "pull"})
	assert.Equal(t, http.StatusCreated, code, "the admin scope administers: %v", out)

	refusals := []struct {
		name, path, token string
		want              int
		code              string
	}{
		{"agent token sending as another", "/oauth/v1/messages", bob, 403, "SENDER_CREDENTIAL_MISMATCH"},
		{"agent token on the admin API", "/oauth/v1/admin/agents", alice, 403, "FORBIDDEN"},
		{"JWT where API keys go", "/v1/messages", alice, 401, "AUTHENTICATION_REQUIRED"},
		{"no token under /oauth", "/oauth/v1/messages", "", 401, "AUTHENTICATION_REQUIRED"},
		{"expired", "/oauth/v1/messages", token("alice@a.test", func(c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Minute).Unix() }), 401, "AUTHENTICATION_REQUIRED"},
		{"another audience", "/oauth/v1/messages", token("alice@a.test", func(c map[string]any) { c["aud"] = "https://elsewhere" }), 401, "AUTHENTICATION_REQUIRED"},
		{"another issuer", "/oauth/v1/messages", token("alice@a.test", func(c map[string]any) { c["iss"] = "https://evil.example" }), 401, "AUTHENTICATION_REQUIRED"},
		{"agent nobody registered", "/oauth/v1/messages", token("mallory@a.test", nil), 401, "AUTHENTICATION_REQUIRED"},
		{"agent of another domain", "/oauth/v1/messages", token("alice@b.test", nil), 401, "AUTHENTICATION_REQUIRED"},
		{"garbage", "/oauth/v1/messages", "not.a.jwt", 401, "AUTHENTICATION_REQUIRED"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			body := any(msg("alice@a.test", []string{"bob@a.test"}, r.name))
			if r.path == "/oauth/v1/admin/agents" {
				body = map[string]any{"address": "dave", "delivery_mode": "pull"}
			}
			code, out := call(t, "POST", a.url+r.path, r.token, body)
			require.Equal(t, r.want, code, "%v", out)
			assert.Equal(t, r.code, out["error"].(map[string]any)["code"])
		})
	}
	_, out = call(t, "GET", a.url+"/.well-known/amtp", "", nil)
	assert.Equal(t, []any{"apikey", "oauth2"}, out["auth"])
}

// TestPeerMutualTLS: b.test serves HTTPS and requires other gateways to
// present a client certificate naming the sender's domain; a.test has
// one and its mail is delivered; without one, or with one for another
// domain, a correctly signed message is refused. Agents keep using keys.
func TestPeerMutualTLS(t *testing.T) {
	p := testPKI()
	dns := dnstest.Start(t)
	serverCert, serverKey := p.issue("mtls-b-server", false, "127.0.0.1", "b.test")
	b := startGateway(t, dns, "b.test", gwOpts{tls: true, env: map[string]string{
		"AGENTRY_TLS_CERT": serverCert, "AGENTRY_TLS_KEY": serverKey, "AGENTRY_TLS_CLIENT_CA": p.caFile,
	}})
	aCert, aKey := p.issue("mtls-a-client", true, "a.test")
	a := startGateway(t, dns, "a.test", gwOpts{env: map[string]string{
		"AGENTRY_TLS_CLIENT_CERT": aCert, "AGENTRY_TLS_CLIENT_KEY": aKey, "AGENTRY_TLS_ROOT_CA": p.caFile,
	}})
	alice, _ := a.register("alice", "pull", "")
	bob, _ := b.register("bob", "pull", "")

	_, out := call(t, "GET", b.url+"/.well-known/amtp", "", nil)
	assert.Equal(t, []any{"apikey", "mtls"}, out["auth"], "b.test advertises what it requires")

	// Through the gateways: a.test presents its certificate.
	code, out := a.send(alice, msg("alice@a.test", []string{"bob@b.test"}, "over mutual TLS"))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	a.waitStatus(alice, str(out["message_id"]), "bob@b.test", "delivered", settleWithin)
	// bob reads his inbox with his key and no certificate.
	assert.Len(t, b.waitInbox(bob, "bob@b.test", 1, settleWithin), 1)

	evilCert, evilKey := p.issue("mtls-evil-client", true, "evil.test")
	cases := []struct {
		name      string
		cert, key string
		want      int
		code      string
	}{
		{"no client certificate", "", "", 401, "AUTHENTICATION_REQUIRED"},
		{"certificate for another domain", evilCert, evilKey, 403, "FORBIDDEN"},
		{"certificate for the sender's domain", aCert, aKey, 202, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cert *tls.Certificate
			if tc.cert != "" {
				c, err := tls.LoadX509KeyPair(tc.cert, tc.key)
				require.NoError(t, err)
				cert = &c
			}
			body := mustSign(t, a.signer, peerMessage("bob@b.test", fmt.Sprint(100+i)))
			status, _, raw := do(t, p.client(cert), http.MethodPost, b.url+"/v1/messages", "", body)
			require.Equal(t, tc.want, status, "%s", raw)
			if tc.code != "" {
				var e map[string]map[string]any
				require.NoError(t, json.Unmarshal(raw, &e))
				assert.Equal(t, tc.code, e["error"]["code"])
			}
		})
	}
}
