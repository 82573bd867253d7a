package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// world is two gateways (a.test, b.test) on one loopback DNS server with
// alice@a.test (pull), bob@b.test (pull) and carol@b.test (push).
type world struct {
	dns              *dnstest.Server
	a, b             *gw
	alice, bob       string // API keys
	carol            string
	carolAgent       *pushAgent
	aliceAddr        string
	bobAddr, carAddr string
}

func newWorld(t *testing.T) *world { return newWorldOn(t, false) }

// newWorldOn builds the world with a.test on the AWS adapters when aws is
// set: the same scenarios must pass on both runtimes.
func newWorldOn(t *testing.T, aws bool) *world {
	t.Helper()
	w := &world{dns: dnstest.Start(t)}
	w.a = startGateway(t, w.dns, "a.test", gwOpts{aws: aws})
	w.b = startGateway(t, w.dns, "b.test", gwOpts{})
	w.alice, _ = w.a.register("alice", "pull", "")
	w.bob, _ = w.b.register("bob@b.test", "pull", "")
	w.carolAgent = newPushAgent(t)
	var secret string
	w.carol, secret = w.b.register("carol", "push", w.carolAgent.srv.URL+"/amtp")
	w.carolAgent.secret = secret
	w.aliceAddr, w.bobAddr, w.carAddr = "alice@a.test", "bob@b.test", "carol@b.test"
	return w
}

func TestTwoGatewaysDeliverPushAndPullExactlyOnce(t *testing.T) {
	bothRuntimes(t, testTwoGatewaysDeliverPushAndPullExactlyOnce)
}

func testTwoGatewaysDeliverPushAndPullExactlyOnce(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{w.bobAddr, w.carAddr}, map[string]any{"hello": "world"}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])
	require.NotEmpty(t, id)

	w.a.waitStatus(w.alice, id, w.bobAddr, "delivered", settleWithin)
	w.a.waitStatus(w.alice, id, w.carAddr, "delivered", settleWithin)
	st := w.a.status(w.alice, id)
	assert.Equal(t, "delivered", st["status"])

	w.b.waitInbox(w.bob, w.bobAddr, 1, settleWithin)
	require.Eventually(t, func() bool { return len(w.carolAgent.received()) >= 1 }, settleWithin, 20*time.Millisecond)
	// Give any duplicate a chance to show up before counting.
	time.Sleep(500 * time.Millisecond)
	inbox := w.b.inbox(w.bob, w.bobAddr)
	require.Len(t, inbox, 1, "bob must receive the message exactly once")
	assert.Equal(t, id, inbox[0]["message_id"], "message_id is never changed in transit")
	assert.Equal(t, map[string]any{"hello": "world"}, inbox[0]["payload"])
	got := w.carolAgent.received()
	require.Len(t, got, 1, "carol must receive the message exactly once")
	assert.Equal(t, id, got[0]["message_id"])
	_, bad := w.carolAgent.stats()
	assert.Zero(t, bad, "every webhook carried a valid Standard Webhooks signature")

	// b.test keeps its own status for the message it received: one copy
	// per recipient (the delivery was fanned out), which the admin names
	// <message_id>/<recipient> and the recipient by the message_id.
	stB := w.b.status(adminKey, id+"%2F"+w.carAddr)
	assert.Equal(t, "delivered", w.b.status(w.carol, id)["status"])
	assert.Equal(t, "delivered", stB["status"])

	// Acknowledge; a second ack is 404.
	code, _ := call(t, "DELETE", w.b.url+"/v1/inbox/"+w.bobAddr+"/"+id, w.bob, nil)
	assert.Equal(t, http.StatusOK, code)
	code, body := call(t, "DELETE", w.b.url+"/v1/inbox/"+w.bobAddr+"/"+id, w.bob, nil)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "NOT_FOUND", body["error"].(map[string]any)["code"])
	assert.Empty(t, w.b.inbox(w.bob, w.bobAddr))
}

func TestPushRetriedUntilDelivered(t *testing.T) {
	bothRuntimes(t, testPushRetriedUntilDelivered)
}

func testPushRetriedUntilDelivered(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	dave := newPushAgent(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusOK)
	_, secret := w.a.register("dave", "push", dave.srv.URL)
	dave.secret = secret

	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{"dave@a.test"}, map[string]any{"n": 1}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])
	rs := w.a.waitStatus(w.alice, id, "dave@a.test", "delivered", settleWithin)
	assert.EqualValues(t, 3, rs["attempts"])
	assert.Equal(t, "webhook", rs["via"])
	calls, _ := dave.stats()
	assert.Equal(t, 3, calls)
	require.Len(t, dave.received(), 1)
	// Every attempt carries the same webhook-id so that agents can de-duplicate.
	dave.mu.Lock()
	assert.Equal(t, []string{id, id, id}, dave.headers)
	dave.mu.Unlock()
}

func TestPermanentFailureReportsToSender(t *testing.T) {
	bothRuntimes(t, testPermanentFailureReportsToSender)
}

func testPermanentFailureReportsToSender(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	gone := newPushAgent(t, http.StatusGone)
	_, secret := w.b.register("erin", "push", gone.srv.URL)
	gone.secret = secret

	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{"erin@b.test"}, map[string]any{"x": true}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])

	// a.test handed the message to b.test; b.test's delivery to erin failed
	// for good, and b.test's postmaster reports it back to alice.
	reports := w.a.waitInbox(w.alice, w.aliceAddr, 1, settleWithin)
	require.Len(t, reports, 1)
	rep := reports[0]
	assert.Equal(t, "postmaster@b.test", rep["sender"])
	assert.Equal(t, id, rep["in_reply_to"])
	payload := rep["payload"].(map[string]any)
	assert.Equal(t, "delivery_failure", payload["message_type"])
	assert.Equal(t, id, payload["original_message_id"])
	assert.Equal(t, []any{"erin@b.test"}, payload["failed_recipients"])
	assert.Equal(t, "RECIPIENT_NOT_FOUND", payload["error_code"])

	stB := w.b.status(adminKey, id+"%2Ferin@b.test")
	rs := recipientStatus(t, stB, "erin@b.test")
	assert.Equal(t, "failed", rs["status"])
	assert.Equal(t, "RECIPIENT_NOT_FOUND", rs["error_code"])
	assert.NotEmpty(t, rs["error_message"])
	calls, _ := gone.stats()
	assert.Equal(t, 1, calls, "a 410 is permanent: no retry")
}

func TestLocalPushFailureReportsToLocalSender(t *testing.T) {
	bothRuntimes(t, testLocalPushFailureReportsToLocalSender)
}

func testLocalPushFailureReportsToLocalSender(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	gone := newPushAgent(t, http.StatusGone)
	_, secret := w.a.register("frank", "push", gone.srv.URL)
	gone.secret = secret
	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{"frank@a.test"}, map[string]any{"x": 1}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])
	rs := w.a.waitStatus(w.alice, id, "frank@a.test", "failed", settleWithin)
	assert.Equal(t, "RECIPIENT_NOT_FOUND", rs["error_code"])
	reports := w.a.waitInbox(w.alice, w.aliceAddr, 1, settleWithin)
	assert.Equal(t, "postmaster@a.test", reports[0]["sender"])
	assert.Equal(t, id, reports[0]["in_reply_to"])
	// No report about the report: the report itself was delivered, and
	// nothing else lands in alice's inbox.
	time.Sleep(300 * time.Millisecond)
	assert.Len(t, w.a.inbox(w.alice, w.aliceAddr), 1)
}

func TestDomainWithoutRecordFailsFast(t *testing.T) {
	bothRuntimes(t, testDomainWithoutRecordFailsFast)
}

func testDomainWithoutRecordFailsFast(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{"nobody@c.test"}, map[string]any{}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := str(out["message_id"])
	// "failed" at all is failing fast: a failure taken for transient is
	// retried for AGENTRY_RETRY_WINDOW (7 days), far beyond any wait
	// here, so no clock needs watching.
	rs := w.a.waitStatus(w.alice, id, "nobody@c.test", "failed", settleWithin)
	assert.Equal(t, "RECIPIENT_NOT_FOUND", rs["error_code"])
	reports := w.a.waitInbox(w.alice, w.aliceAddr, 1, settleWithin)
	assert.Equal(t, "RECIPIENT_NOT_FOUND", reports[0]["payload"].(map[string]any)["error_code"])
}

func TestDuplicateSubmissions(t *testing.T) {
	bothRuntimes(t, testDuplicateSubmissions)
}

func testDuplicateSubmissions(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	m := msg(w.aliceAddr, []string{w.bobAddr}, map[string]any{"order": 7})
	m["idempotency_key"] = "order-7-submission"
	s1, out1 := w.a.send(w.alice, m)
	require.Equal(t, http.StatusAccepted, s1, "%v", out1)
	s2, out2 := w.a.send(w.alice, m)
	require.Equal(t, http.StatusAccepted, s2, "%v", out2)
	assert.Equal(t, out1["message_id"], out2["message_id"])
	id := str(out1["message_id"])

	w.a.waitStatus(w.alice, id, w.bobAddr, "delivered", settleWithin)
	// And a third time after delivery: still the same answer, no new delivery.
	s3, out3 := w.a.send(w.alice, m)
	require.Equal(t, http.StatusAccepted, s3)
	assert.Equal(t, id, out3["message_id"])
	time.Sleep(500 * time.Millisecond)
	assert.Len(t, w.b.inbox(w.bob, w.bobAddr), 1, "a duplicate submission delivers nothing twice")

	// Same key, different content.
	m2 := msg(w.aliceAddr, []string{w.bobAddr}, map[string]any{"order": 8})
	m2["idempotency_key"] = "order-7-submission"
	s4, out4 := w.a.send(w.alice, m2)
	require.Equal(t, http.StatusConflict, s4, "%v", out4)
	assert.Equal(t, "IDEMPOTENCY_CONFLICT", out4["error"].(map[string]any)["code"])
}

func TestImmediatePathReply(t *testing.T) {
	bothRuntimes(t, testImmediatePathReply)
}

func testImmediatePathReply(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	echo := newPushAgent(t)
	echo.reply = map[string]any{"status": "accepted", "response": map[string]any{"answer": 42}}
	_, secret := w.a.register("oracle", "push", echo.srv.URL)
	echo.secret = secret
	status, out := w.a.send(w.alice, msg(w.aliceAddr, []string{"oracle@a.test"}, map[string]any{"q": "?"}))
	require.Equal(t, http.StatusOK, status, "%v", out)
	assert.Equal(t, map[string]any{"answer": float64(42)}, out["response"])
	assert.Equal(t, "delivered", out["status"])
	id := str(out["message_id"])
	time.Sleep(300 * time.Millisecond)
	calls, _ := echo.stats()
	assert.Equal(t, 1, calls, "the Immediate Path delivery is not repeated by the queue")
	st := w.a.status(w.alice, id)
	assert.Equal(t, "delivered", st["status"])
}

// bothRuntimes runs a scenario with a.test on the embedded store and on
// the AWS adapters (moto).
func bothRuntimes(t *testing.T, f func(t *testing.T, onAWS bool)) {
	t.Run("embedded", func(t *testing.T) { f(t, false) })
	t.Run("aws", func(t *testing.T) { f(t, true) })
}

// TestEncryptedPayloadPassesThroughUnchanged: an end-to-end encrypted
// payload (draft §9.3.2) reaches the recipient on another domain byte for
// byte, and no gateway tries to validate it against its schema.
func TestEncryptedPayloadPassesThroughUnchanged(t *testing.T) {
	bothRuntimes(t, testEncryptedPayloadPassesThroughUnchanged)
}

func testEncryptedPayloadPassesThroughUnchanged(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	const payload = `{"encrypted":true,"algorithm":"AES-256-GCM","encrypted_data":"AAECAwQFBgcICQoLDA0ODw==","recipients":[{"keyid":"b.test:bob-2026","encrypted_key":"c2VjcmV0LWtleQ=="},{"keyid":"b.test:bob-2025","encrypted_key":"b2xkLWtleQ=="}]}`
	m := msg(w.aliceAddr, []string{w.bobAddr}, json.RawMessage(payload))
	// Registered nowhere: an encrypted payload is not validated, so an
	// unknown schema is no refusal either.
	m["schema"] = "agntcy:secret.note.v1"
	code, out := w.a.send(w.alice, m)
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	w.a.waitStatus(w.alice, id, w.bobAddr, "delivered", settleWithin)
	assert.Equal(t, "skipped (encrypted)", w.a.status(w.alice, id)["schema_validation"])

	st, raw := callRaw(t, "GET", w.b.url+"/v1/inbox/"+w.bobAddr, w.bob, nil)
	require.Equal(t, http.StatusOK, st, "%s", raw)
	var inbox struct {
		Messages []struct {
			MessageID string          `json:"message_id"`
			Payload   json.RawMessage `json:"payload"`
		} `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(raw, &inbox))
	require.Len(t, inbox.Messages, 1)
	assert.Equal(t, id, inbox.Messages[0].MessageID)
	assert.Equal(t, payload, string(inbox.Messages[0].Payload), "payload bytes changed on the way")
}
