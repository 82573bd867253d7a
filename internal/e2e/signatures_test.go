package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/signature"
)

// rawFromAlice is a message as a.test's gateway would hand it to b.test;
// n makes each one distinct.
func rawFromAlice(sender string, n int) []byte {
	return fmt.Appendf(nil, `{"version":"1.0","sender":%q,"recipients":["bob@b.test"],"subject":"sig","payload":{"n":%d},"timestamp":"%s"}`,
		sender, n, time.Now().UTC().Format(time.RFC3339))
}

// signerFor is a signer with a fresh key: one DNS does not publish.
func signerFor(t *testing.T, domain, selector string, key signature.Algorithm) *signature.Signer {
	t.Helper()
	k, err := signature.GenerateKey(key)
	require.NoError(t, err)
	s, err := signature.NewSigner(domain, selector, k)
	require.NoError(t, err)
	return s
}

func mustSign(t *testing.T, s *signature.Signer, raw []byte) []byte {
	t.Helper()
	out, err := s.Sign(raw)
	require.NoError(t, err)
	return out
}

// postAnonymously posts raw to g as another domain's gateway does (no
// credentials) and returns the status and error code.
func postAnonymously(t *testing.T, g *gw, raw []byte) (int, string) {
	t.Helper()
	status, out := call(t, "POST", g.url+"/v1/messages", "", raw)
	if e, ok := out["error"].(map[string]any); ok {
		return status, str(e["code"])
	}
	return status, ""
}

// Mail between two gateways is signed by the sender's gateway and checked
// by the receiver against the key a.test publishes in DNS; b.test requires
// signatures (the default).
func TestSignedFederation(t *testing.T) {
	bothRuntimes(t, testSignedFederation)
}

func testSignedFederation(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{w.bobAddr}, map[string]any{"signed": true}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])
	w.a.waitStatus(w.alice, id, w.bobAddr, "delivered", 10*time.Second)

	got := w.b.waitInbox(w.bob, w.bobAddr, 1, 5*time.Second)
	require.Len(t, got, 1)
	// The sender's signature is part of the message and is kept.
	sig, ok := got[0]["signature"].(map[string]any)
	require.True(t, ok, "the delivered message keeps a.test's signature: %v", got[0])
	assert.Equal(t, "a.test:agentry", sig["keyid"])
	assert.Equal(t, "EdDSA", sig["algorithm"])
	assert.NotEmpty(t, sig["value"])
}

func TestInboundSignatureRefusals(t *testing.T) {
	w := newWorld(t)
	before := w.b.countMessages()

	// The real key signs, and b.test accepts: the baseline every refusal
	// below differs from in one respect.
	good := mustSign(t, w.a.signer, rawFromAlice("alice@a.test", 0))
	status, code := postAnonymously(t, w.b, good)
	require.Equal(t, http.StatusAccepted, status, code)
	before++

	// Another key under the published selector.
	forger := signerFor(t, "a.test", "agentry", signature.EdDSA)
	// A selector whose record is gone, and one whose DNS is failing.
	goneSigner, err := signature.NewSigner("a.test", "gone", w.a.key)
	require.NoError(t, err)
	txt, err := signature.PublicKeyTXT(w.a.signer.Public())
	require.NoError(t, err)
	w.dns.SetTXT("gone._amtpkey.a.test", 300, txt)
	w.dns.Remove("gone._amtpkey.a.test")
	brokenSigner, err := signature.NewSigner("a.test", "broken", w.a.key)
	require.NoError(t, err)
	w.dns.SetRcode("broken._amtpkey.a.test", dns.RcodeServerFailure)

	tampered := mustSign(t, w.a.signer, rawFromAlice("alice@a.test", 2))
	tampered = bytes.Replace(tampered, []byte(`"n":2`), []byte(`"n":3`), 1)
	// Signed correctly by a.test, then claimed for a sender of c.test: the
	// keyid's domain is not the sender's.
	otherDomain := mustSign(t, w.a.signer, rawFromAlice("alice@a.test", 4))
	otherDomain = bytes.Replace(otherDomain, []byte(`"sender":"alice@a.test"`), []byte(`"sender":"mallory@c.test"`), 1)

	cases := []struct {
		name   string
		raw    []byte
		status int
		code   string
	}{
		{"unsigned", rawFromAlice("alice@a.test", 1), 401, "SIGNATURE_INVALID"},
		{"signed with another key", mustSign(t, forger, rawFromAlice("alice@a.test", 1)), 401, "SIGNATURE_INVALID"},
		{"payload modified after signing", tampered, 401, "SIGNATURE_INVALID"},
		{"keyid domain is not the sender's", otherDomain, 401, "SIGNATURE_INVALID"},
		{"key record missing", mustSign(t, goneSigner, rawFromAlice("alice@a.test", 5)), 401, "SIGNATURE_INVALID"},
		{"key lookup SERVFAIL", mustSign(t, brokenSigner, rawFromAlice("alice@a.test", 6)), 503, "TEMPORARY_FAILURE"},
		// Authorisation comes before the signature: no DNS lookup for these.
		{"relay attempt", mustSign(t, w.a.signer, []byte(`{"sender":"alice@a.test","recipients":["x@c.test"],"payload":{}}`)), 403, "FORBIDDEN"},
		{"local sender without key", []byte(`{"sender":"bob@b.test","recipients":["carol@b.test"],"payload":{}}`), 401, "AUTHENTICATION_REQUIRED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, code := postAnonymously(t, w.b, c.raw)
			assert.Equal(t, c.status, status, code)
			assert.Equal(t, c.code, code)
		})
	}
	assert.Equal(t, before, w.b.countMessages(), "no refused message was stored")
	assert.Len(t, w.b.inbox(w.bob, w.bobAddr), 1, "only the correctly signed message reached bob")
}

// With AGENTRY_REQUIRE_SIGNATURES=0 unsigned mail from another domain is
// accepted (development only); a bad signature is still refused.
func TestUnsignedAcceptedWhenNotRequired(t *testing.T) {
	w := newWorld(t)
	c := startGateway(t, w.dns, "c.test", gwOpts{env: map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "0"}})
	c.register("bob", "pull", "")
	unsigned := []byte(`{"version":"1.0","sender":"alice@a.test","recipients":["bob@c.test"],"payload":{}}`)
	status, code := postAnonymously(t, c, unsigned)
	assert.Equal(t, http.StatusAccepted, status, code)

	forged := mustSign(t, signerFor(t, "a.test", "agentry", signature.EdDSA), []byte(`{"version":"1.0","sender":"alice@a.test","recipients":["bob@c.test"],"payload":{"x":1}}`))
	status, code = postAnonymously(t, c, forged)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "SIGNATURE_INVALID", code)
}
