package e2e

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/signature"
)

// The draft's Domain Signatures conformance tests (§14.1.2), each against
// real gateways through their HTTP API, with keys published as v=amtpkey1
// records on a real DNS server on loopback, on the embedded and on the AWS
// (moto) backend.

// sigWorld is a remote domain a.test (its key published, its gateway
// running, so that it can also be the sender of real fan-out), and two
// receiving gateways on the backend under test: b.test under the default
// policy (flag) and c.test under reject. bob is a pull agent on both.
type sigWorld struct {
	dns        *dnstest.Server
	a, b, c    *gw
	alice      string
	bobB, bobC string
	carolB     string
}

func newSigWorld(t *testing.T, onAWS bool) *sigWorld {
	t.Helper()
	w := &sigWorld{dns: dnstest.Start(t)}
	w.a = startGateway(t, w.dns, "a.test", gwOpts{})
	w.b = startGateway(t, w.dns, "b.test", gwOpts{aws: onAWS})
	w.c = startGateway(t, w.dns, "c.test", gwOpts{aws: onAWS, env: map[string]string{"AGENTRY_SIGNATURE_POLICY": "reject"}})
	w.alice, _ = w.a.register("alice", "pull", "")
	w.bobB, _ = w.b.register("bob", "pull", "")
	w.carolB, _ = w.b.register("carol", "pull", "")
	w.bobC, _ = w.c.register("bob", "pull", "")
	return w
}

// peerMessage is a message as a.test's gateway hands it to another domain:
// one recipient, and every member a signed delivery must carry.
func peerMessage(to string, payload string) []byte {
	return fmt.Appendf(nil, `{"version":"1.0","message_id":%q,"idempotency_key":%q,"timestamp":%q,"sender":"alice@a.test","recipients":[%q],"subject":"conformance","payload":%s}`,
		amtp.NewUUIDv7(), amtp.NewUUIDv4(), time.Now().UTC().Format(time.RFC3339Nano), to, payload)
}

func mustSign(t *testing.T, s *signature.Signer, raw []byte) []byte {
	t.Helper()
	out, err := s.Sign(raw)
	require.NoError(t, err)
	return out
}

// postAnonymously posts raw to g as another domain's gateway does (no
// credentials) and returns the status and the answer.
func postAnonymously(t *testing.T, g *gw, raw []byte) (int, map[string]any) {
	t.Helper()
	return call(t, "POST", g.url+"/v1/messages", "", raw)
}

func errorCode(out map[string]any) string {
	if e, ok := out["error"].(map[string]any); ok {
		return str(e["code"])
	}
	return ""
}

// verificationOf is the sender_verification of message id as its
// recipient sees it in GET /v1/messages/{id}/status.
func verificationOf(t *testing.T, g *gw, key, id string) map[string]any {
	t.Helper()
	st := g.status(key, id)
	sv, ok := st["sender_verification"].(map[string]any)
	require.True(t, ok, "status has no sender_verification: %v", st)
	return sv
}

// accepted posts raw to g, requires 202 and returns the message id.
func accepted(t *testing.T, g *gw, raw []byte) string {
	t.Helper()
	status, out := postAnonymously(t, g, raw)
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	return str(out["message_id"])
}

// refused posts raw to g and requires the status and code, and that
// nothing was stored.
func refused(t *testing.T, g *gw, raw []byte, status int, code string) {
	t.Helper()
	before := g.countMessages()
	got, out := postAnonymously(t, g, raw)
	assert.Equal(t, status, got, "%v", out)
	assert.Equal(t, code, errorCode(out), "%v", out)
	assert.Equal(t, before, g.countMessages(), "a refused message must not be stored")
}

func TestConformanceValidES256(t *testing.T) { bothRuntimes(t, testConformanceValidES256) }

func testConformanceValidES256(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	id := accepted(t, w.b, mustSign(t, w.a.signer, peerMessage("bob@b.test", `{"n":1}`)))
	sv := verificationOf(t, w.b, w.bobB, id)
	assert.Equal(t, map[string]any{"result": "verified", "method": "domain_signature", "domain": "a.test", "keyid": "k1", "algorithm": "ES256"}, sv)
	// The same under reject.
	id = accepted(t, w.c, mustSign(t, w.a.signer, peerMessage("bob@c.test", `{"n":1}`)))
	assert.Equal(t, "verified", verificationOf(t, w.c, w.bobC, id)["result"])
}

func TestConformanceValidRS256(t *testing.T) { bothRuntimes(t, testConformanceValidRS256) }

func testConformanceValidRS256(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	s, err := signature.NewSigner("a.test", "r2048", key)
	require.NoError(t, err)
	txt, err := signature.PublicKeyTXT(key.Public())
	require.NoError(t, err)
	w.dns.SetTXT("r2048._amtpkey.a.test", 300, txt)
	for _, g := range []struct {
		gw  *gw
		key string
		to  string
	}{{w.b, w.bobB, "bob@b.test"}, {w.c, w.bobC, "bob@c.test"}} {
		id := accepted(t, g.gw, mustSign(t, s, peerMessage(g.to, `{"rsa":true}`)))
		sv := verificationOf(t, g.gw, g.key, id)
		assert.Equal(t, "verified", sv["result"])
		assert.Equal(t, "RS256", sv["algorithm"])
		assert.Equal(t, "r2048", sv["keyid"])
	}
}

// Modifying any top-level member after signing, an unknown extension
// member included, fails verification.
func TestConformanceTamper(t *testing.T) { bothRuntimes(t, testConformanceTamper) }

func testConformanceTamper(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	tampers := []struct {
		name     string
		old, new string
	}{
		{"payload", `"n":1`, `"n":2`},
		{"subject", `"subject":"conformance"`, `"subject":"conformance!"`},
		{"extension member", `"x-ext":{"k":"v"}`, `"x-ext":{"k":"w"}`},
		{"extension member removed", `,"x-ext":{"k":"v"}`, ``},
		{"version", `"version":"1.0"`, `"version":"1.1"`},
		{"timestamp", "", ""},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			for _, g := range []struct {
				gw  *gw
				key string
				to  string
			}{{w.b, w.bobB, "bob@b.test"}, {w.c, w.bobC, "bob@c.test"}} {
				raw := peerMessage(g.to, `{"n":1}`)
				raw = append(raw[:len(raw)-1:len(raw)-1], `,"x-ext":{"k":"v"}}`...)
				signed := mustSign(t, w.a.signer, raw)
				if tc.name == "timestamp" {
					// Another time, still fresh: only the signature fails.
					signed = withTimestamp(signed, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano))
				} else {
					require.Equal(t, 1, bytes.Count(signed, []byte(tc.old)), "the tamper must apply once")
					signed = bytes.Replace(signed, []byte(tc.old), []byte(tc.new), 1)
				}
				if g.gw == w.c {
					refused(t, w.c, signed, http.StatusForbidden, "SIGNATURE_INVALID")
					continue
				}
				status, out := postAnonymously(t, w.b, signed)
				require.Equal(t, http.StatusAccepted, status, "%v", out)
				assert.Equal(t, "invalid", verificationOf(t, w.b, w.bobB, str(out["message_id"]))["result"])
			}
		})
	}
}

// Unsigned mail from another domain: accepted and flagged under flag,
// 403 SIGNATURE_REQUIRED under reject.
func TestConformanceUnsignedPolicy(t *testing.T) { bothRuntimes(t, testConformanceUnsignedPolicy) }

func testConformanceUnsignedPolicy(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	id := accepted(t, w.b, peerMessage("bob@b.test", `{"unsigned":true}`))
	sv := verificationOf(t, w.b, w.bobB, id)
	assert.Equal(t, "unsigned", sv["result"])
	assert.Equal(t, "none", sv["method"])
	assert.Equal(t, "a.test", sv["domain"])
	w.b.waitInbox(w.bobB, "bob@b.test", 1, settleWithin)

	refused(t, w.c, peerMessage("bob@c.test", `{"unsigned":true}`), http.StatusForbidden, "SIGNATURE_REQUIRED")
}

// A forged signature (another key under the published selector): accepted
// and flagged under flag, 403 SIGNATURE_INVALID under reject. Dates far
// outside the freshness window count as invalid too.
func TestConformanceInvalidPolicy(t *testing.T) { bothRuntimes(t, testConformanceInvalidPolicy) }

func testConformanceInvalidPolicy(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	forgeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	forger, err := signature.NewSigner("a.test", "k1", forgeKey)
	require.NoError(t, err)

	id := accepted(t, w.b, mustSign(t, forger, peerMessage("bob@b.test", `{"forged":true}`)))
	sv := verificationOf(t, w.b, w.bobB, id)
	assert.Equal(t, "invalid", sv["result"])
	assert.Equal(t, "k1", sv["keyid"])
	refused(t, w.c, mustSign(t, forger, peerMessage("bob@c.test", `{"forged":true}`)), http.StatusForbidden, "SIGNATURE_INVALID")

	for _, ts := range []string{"2001-01-01T00:00:00Z", "2099-01-01T00:00:00Z"} {
		raw := withTimestamp(peerMessage("bob@c.test", `{"stale":true}`), ts)
		refused(t, w.c, mustSign(t, w.a.signer, raw), http.StatusForbidden, "SIGNATURE_INVALID")
	}
}

// withTimestamp replaces the value of raw's timestamp member.
func withTimestamp(raw []byte, ts string) []byte {
	i := bytes.Index(raw, []byte(`"timestamp":"`)) + len(`"timestamp":"`)
	j := i + bytes.IndexByte(raw[i:], '"')
	return append(append(append([]byte{}, raw[:i]...), ts...), raw[j:]...)
}

// A keyid with no record: key_unavailable, accepted under flag, 503
// SIGNATURE_KEY_UNAVAILABLE under reject (the sender retries). A DNS
// failure is the same.
func TestConformanceUnknownKey(t *testing.T) { bothRuntimes(t, testConformanceUnknownKey) }

func testConformanceUnknownKey(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	gone, err := signature.NewSigner("a.test", "gone", w.a.key)
	require.NoError(t, err)
	id := accepted(t, w.b, mustSign(t, gone, peerMessage("bob@b.test", `{"k":"gone"}`)))
	assert.Equal(t, "key_unavailable", verificationOf(t, w.b, w.bobB, id)["result"])
	refused(t, w.c, mustSign(t, gone, peerMessage("bob@c.test", `{"k":"gone"}`)), http.StatusServiceUnavailable, "SIGNATURE_KEY_UNAVAILABLE")

	broken, err := signature.NewSigner("a.test", "broken", w.a.key)
	require.NoError(t, err)
	w.dns.SetRcode("broken._amtpkey.a.test", dns.RcodeServerFailure)
	refused(t, w.c, mustSign(t, broken, peerMessage("bob@c.test", `{"k":"broken"}`)), http.StatusServiceUnavailable, "SIGNATURE_KEY_UNAVAILABLE")
}

// A body with duplicate member names fails: at the top level it is not an
// AMTP message at all (400); nested, it fails verification (403 under
// reject) and is never stored under flag either.
func TestConformanceDuplicateMember(t *testing.T) { bothRuntimes(t, testConformanceDuplicateMember) }

func testConformanceDuplicateMember(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	for _, g := range []*gw{w.b, w.c} {
		to := "bob@" + g.domain
		signed := mustSign(t, w.a.signer, peerMessage(to, `{"n":1}`))
		top := bytes.Replace(signed, []byte(`"subject":"conformance"`), []byte(`"subject":"conformance","subject":"other"`), 1)
		refused(t, g, top, http.StatusBadRequest, "INVALID_MESSAGE_FORMAT")
		nested := bytes.Replace(signed, []byte(`"n":1`), []byte(`"n":1,"n":2`), 1)
		if g == w.c {
			refused(t, g, nested, http.StatusForbidden, "SIGNATURE_INVALID")
		} else {
			refused(t, g, nested, http.StatusBadRequest, "INVALID_MESSAGE_FORMAT")
		}
	}
}

// A message to two recipients at one domain leaves a.test's gateway as
// two single-recipient deliveries, each signed on its own; both verify at
// b.test, and both are checked by the independent verifier too.
func TestConformanceFanOut(t *testing.T) { bothRuntimes(t, testConformanceFanOut) }

func testConformanceFanOut(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	status, out := w.a.send(w.alice, msg("alice@a.test", []string{"bob@b.test", "carol@b.test"}, map[string]any{"fan": "out"}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])
	w.a.waitStatus(w.alice, id, "bob@b.test", "delivered", settleWithin)
	w.a.waitStatus(w.alice, id, "carol@b.test", "delivered", settleWithin)

	for _, r := range []struct{ key, addr string }{{w.bobB, "bob@b.test"}, {w.carolB, "carol@b.test"}} {
		raws := inboxRaw(t, w.b, r.key, r.addr)
		require.Len(t, raws, 1)
		var m struct {
			MessageID  string   `json:"message_id"`
			Recipients []string `json:"recipients"`
		}
		require.NoError(t, json.Unmarshal(raws[0], &m))
		assert.Equal(t, id, m.MessageID, "one message_id across the fan-out")
		assert.Equal(t, []string{r.addr}, m.Recipients, "each delivery carries exactly its own recipient")
		sel, err := indepVerify(raws[0], w.a.signer.Public())
		require.NoError(t, err, "a.test's delivery must verify under independent code: %s", raws[0])
		assert.Equal(t, "k1", sel)
		sv := verificationOf(t, w.b, r.key, id)
		assert.Equal(t, "verified", sv["result"], r.addr)
	}
}

// inboxRaw is an inbox's messages as the exact JSON the gateway serves.
func inboxRaw(t *testing.T, g *gw, key, rcpt string) []json.RawMessage {
	t.Helper()
	status, raw := callRaw(t, "GET", g.url+"/v1/inbox/"+rcpt, key, nil)
	require.Equal(t, http.StatusOK, status, "%s", raw)
	var out struct {
		Messages []json.RawMessage `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	return out.Messages
}

// A signed workflow reply is verified before any state transition: a
// forged reply moves nothing (accepted but flagged under flag), and the
// genuine one completes the workflow.
func TestConformanceWorkflowReply(t *testing.T) { bothRuntimes(t, testConformanceWorkflowReply) }

func testConformanceWorkflowReply(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	// b.test (on the backend under test) runs the workflow; its
	// participant is alice@a.test, who answers from a.test.
	status, out := w.b.send(w.bobB, map[string]any{
		"sender": "bob@b.test", "recipients": []string{"alice@a.test"}, "payload": map[string]any{"q": "approve?"},
		"coordination": map[string]any{"type": "parallel", "timeout": unhurried, "required_responses": []string{"alice@a.test"}},
	})
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	wf := str(out["message_id"])

	reply := func(payload string) []byte {
		raw := peerMessage("bob@b.test", payload)
		raw = bytes.Replace(raw, []byte(`"subject":"conformance",`), fmt.Appendf(nil, `"in_reply_to":%q,"workflow_id":%q,"response_type":"workflow_response",`, wf, wf), 1)
		return raw
	}
	forgeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	forger, err := signature.NewSigner("a.test", "k1", forgeKey)
	require.NoError(t, err)
	id := accepted(t, w.b, mustSign(t, forger, reply(`{"approve":true}`)))
	assert.Equal(t, "invalid", verificationOf(t, w.b, w.bobB, id)["result"])
	st, view := w.b.workflow(w.bobB, wf)
	require.Equal(t, http.StatusOK, st, "%v", view)
	assert.Equal(t, "in_progress", view["status"], "a forged reply must not move the workflow: %v", view)

	accepted(t, w.b, mustSign(t, w.a.signer, reply(`{"approve":true}`)))
	require.Eventually(t, func() bool {
		_, view := w.b.workflow(w.bobB, wf)
		return view["status"] == "completed"
	}, settleWithin, 50*time.Millisecond, "the verified reply completes the workflow")
}

// A local-domain sender must present its own agent key (draft §9.2.3).
func TestConformanceLocalSender(t *testing.T) { bothRuntimes(t, testConformanceLocalSender) }

func testConformanceLocalSender(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	raw := []byte(`{"version":"1.0","sender":"bob@b.test","recipients":["carol@b.test"],"payload":{}}`)
	refused(t, w.b, raw, http.StatusUnauthorized, "LOCAL_SENDER_AUTH_REQUIRED")
	// Signed with b.test's own key, still not an agent's credential.
	asBob := bytes.Replace(peerMessage("carol@b.test", `{}`), []byte(`"sender":"alice@a.test"`), []byte(`"sender":"bob@b.test"`), 1)
	refused(t, w.b, mustSign(t, w.b.signer, asBob), http.StatusUnauthorized, "LOCAL_SENDER_AUTH_REQUIRED")
	status, out := call(t, "POST", w.b.url+"/v1/messages", w.carolB, raw)
	assert.Equal(t, http.StatusForbidden, status, "%v", out)
	assert.Equal(t, "SENDER_CREDENTIAL_MISMATCH", errorCode(out))
	status, out = call(t, "POST", w.b.url+"/v1/messages", w.bobB, raw)
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	assert.Equal(t, map[string]any{"result": "authenticated", "method": "agent_api_key"}, verificationOf(t, w.b, w.bobB, str(out["message_id"])))
}

// Signatures made by code independent of internal/core/signature verify at
// Agentry, under both algorithms.
func TestIndependentSignerVerifiedByAgentry(t *testing.T) {
	w := newSigWorld(t, false)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	w.dns.SetTXT("indep-ec._amtpkey.a.test", 300, indepKeyRecord(ec.Public()))
	w.dns.SetTXT("indep-rsa._amtpkey.a.test", 300, indepKeyRecord(rk.Public()))
	for sel, key := range map[string]crypto.Signer{"indep-ec": ec, "indep-rsa": rk} {
		raw := peerMessage("bob@c.test", `{"indep":true,"big":1e21,"small":1e-7,"s":"\u00e9\u20ac"}`)
		id := accepted(t, w.c, indepSign(t, key, sel, raw))
		sv := verificationOf(t, w.c, w.bobC, id)
		assert.Equal(t, "verified", sv["result"], sel)
		assert.Equal(t, sel, sv["keyid"])
	}
}

// Mail shaped exactly as the reference gateway serialises it (every
// optional member present, empty strings and nulls, unsigned) is
// delivered under the default policy, and its bytes reach the agent as
// they were sent.
func TestReferenceShapedMessageDelivered(t *testing.T) {
	bothRuntimes(t, testReferenceShapedMessageDelivered)
}

func testReferenceShapedMessageDelivered(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	raw := fmt.Appendf(nil, `{"attachments":null,"coordination":null,"headers":null,"idempotency_key":%q,"in_reply_to":"","message_id":%q,`+
		`"payload":{"text":"hello"},"recipients":["bob@b.test"],"response_type":"","schema":"","sender":"alice@a.test","signature":null,`+
		`"subject":"","timestamp":%q,"version":"1.0","workflow_id":""}`, amtp.NewUUIDv4(), strings.ToUpper(amtp.NewUUIDv7()), time.Now().UTC().Format(time.RFC3339))
	id := accepted(t, w.b, raw)
	assert.Equal(t, "unsigned", verificationOf(t, w.b, w.bobB, id)["result"])
	got := inboxRaw(t, w.b, w.bobB, "bob@b.test")
	require.Len(t, got, 1)
	assert.JSONEq(t, string(raw), string(got[0]), "the message reaches the agent as it was sent")
	// message_id is compared case-insensitively.
	st, out := call(t, "GET", w.b.url+"/v1/messages/"+strings.ToUpper(id)+"/status", w.bobB, nil)
	assert.Equal(t, http.StatusOK, st, "%v", out)
}

// A push agent learns the verification result of each message from the
// X-AMTP-Sender-Verification header.
func TestPushCarriesSenderVerification(t *testing.T) {
	bothRuntimes(t, testPushCarriesSenderVerification)
}

func testPushCarriesSenderVerification(t *testing.T, onAWS bool) {
	w := newSigWorld(t, onAWS)
	got := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-AMTP-Sender-Verification")
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	w.b.register("dora", "push", hook.URL+"/amtp")

	for _, c := range []struct {
		raw  []byte
		want string
	}{
		{mustSign(t, w.a.signer, peerMessage("dora@b.test", `{"v":1}`)), "verified"},
		{peerMessage("dora@b.test", `{"v":2}`), "unsigned"},
	} {
		accepted(t, w.b, c.raw)
		select {
		case h := <-got:
			assert.Equal(t, c.want, h)
		case <-time.After(settleWithin):
			t.Fatalf("no webhook call for the %s message", c.want)
		}
	}
}
