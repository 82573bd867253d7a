package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/core/amtp"
)

// errorOf is the error object of an error answer.
func errorOf(t *testing.T, out map[string]any) map[string]any {
	t.Helper()
	e, ok := out["error"].(map[string]any)
	require.True(t, ok, "not an error answer: %v", out)
	return e
}

// TestReregisteredAgentSeesNoOldMail: delete an agent, register its
// address again, and the new key sees nothing of the old agent's mail: an
// empty inbox, and 404 for the old messages and their statuses, received
// or sent, exactly as for an id that never existed.
func TestReregisteredAgentSeesNoOldMail(t *testing.T) {
	bothRuntimes(t, testReregisteredAgentSeesNoOldMail)
}

func testReregisteredAgentSeesNoOldMail(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	alice, _ := a.register("alice", "pull", "")
	dave, _ := a.register("dave", "pull", "")
	code, out := a.send(alice, msg("alice@a.test", []string{"dave@a.test"}, map[string]any{"for": "old dave"}))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	received := str(out["message_id"])
	require.Len(t, a.inbox(dave, "dave@a.test"), 1)
	oldSubmission := msg("dave@a.test", []string{"alice@a.test"}, map[string]any{"from": "old dave"})
	oldSubmission["idempotency_key"] = "dave-order-1"
	code, out = a.send(dave, oldSubmission)
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	sent := str(out["message_id"])

	code, out = call(t, "DELETE", a.url+"/v1/admin/agents/dave", adminKey, nil)
	require.Equal(t, http.StatusOK, code, "%v", out)
	dave2, _ := a.register("dave", "pull", "")

	assert.Empty(t, a.inbox(dave2, "dave@a.test"), "the new agent's inbox is empty")
	code, out = call(t, "GET", a.url+"/v1/messages", dave2, nil)
	require.Equal(t, http.StatusOK, code, "%v", out)
	assert.Empty(t, out["messages"], "the new agent lists none of the old agent's mail")

	never := amtp.NewUUIDv7()
	for _, path := range []string{"/v1/messages/%s", "/v1/messages/%s/status"} {
		code, out := call(t, "GET", a.url+strings.Replace(path, "%s", never, 1), dave2, nil)
		require.Equal(t, http.StatusNotFound, code, "%v", out)
		want := errorOf(t, out)
		for _, id := range []string{received, sent} {
			code, out := call(t, "GET", a.url+strings.Replace(path, "%s", id, 1), dave2, nil)
			require.Equal(t, http.StatusNotFound, code, "%s of %s: %v", path, id, out)
			got := errorOf(t, out)
			assert.Equal(t, "NOT_FOUND", got["code"])
			assert.Equal(t, strings.ReplaceAll(str(want["message"]), never, "ID"), strings.ReplaceAll(str(got["message"]), id, "ID"),
				"%s of %s: what an id that never existed answers", path, id)
		}
	}
	for _, id := range []string{received, sent} {
		assert.NotEmpty(t, a.status(alice, id)["status"], "the other party's record of %s stays", id)
	}
	// The old agent's submission sent again under its key replays nothing
	// of it to the new agent.
	code, out = a.send(dave2, oldSubmission)
	require.Equal(t, http.StatusConflict, code, "%v", out)
	e := errorOf(t, out)
	assert.Equal(t, map[string]any{"field": "idempotency_key"}, e["details"])
	assert.NotContains(t, e["message"], sent)

	code, out = a.send(alice, msg("alice@a.test", []string{"dave@a.test"}, map[string]any{"for": "new dave"}))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	inbox := a.inbox(dave2, "dave@a.test")
	require.Len(t, inbox, 1)
	assert.Equal(t, out["message_id"], inbox[0]["message_id"], "mail for the new agent reaches it")
}

// TestQueuedMailForReregisteredAgentFails: a push delivery waiting for a
// retry when its agent is deleted is not handed to an agent registered at
// that address meanwhile: the recipient fails as unknown, the new webhook
// never sees the message, and the sender gets a failure report.
func TestQueuedMailForReregisteredAgentFails(t *testing.T) {
	bothRuntimes(t, testQueuedMailForReregisteredAgentFails)
}

func testQueuedMailForReregisteredAgentFails(t *testing.T, onAWS bool) {
	// Retries a second or two apart leave the delete and the new
	// registration time to happen before the next attempt. Should an attempt
	// come in between, it finds no agent, which ends the same way.
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS, env: map[string]string{"AGENTRY_RETRY_BASE": "1s", "AGENTRY_RETRY_MAX": "2s"}})
	alice, _ := a.register("alice", "pull", "")
	script := make([]int, 100)
	for i := range script {
		script[i] = http.StatusServiceUnavailable
	}
	down := newPushAgent(t, script...)
	_, down.secret = a.register("dave", "push", down.srv.URL)
	code, out := a.send(alice, msg("alice@a.test", []string{"dave@a.test"}, map[string]any{"for": "old dave"}))
	require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, code, "%v", out)
	id := str(out["message_id"])
	a.waitStatus(alice, id, "dave@a.test", "retrying", 15*time.Second)

	code, out = call(t, "DELETE", a.url+"/v1/admin/agents/dave", adminKey, nil)
	require.Equal(t, http.StatusOK, code, "%v", out)
	fresh := newPushAgent(t)
	_, fresh.secret = a.register("dave", "push", fresh.srv.URL)

	rs := a.waitStatus(alice, id, "dave@a.test", "failed", 30*time.Second)
	assert.Equal(t, "AGENT_UNKNOWN", rs["error_code"])
	reports := a.waitInbox(alice, "alice@a.test", 1, 15*time.Second)
	assert.Equal(t, "postmaster@a.test", reports[0]["sender"])
	assert.Equal(t, id, reports[0]["in_reply_to"])
	calls, _ := fresh.stats()
	assert.Zero(t, calls, "the new agent's webhook never received the old agent's mail")
}

// TestReservedAddressesRefused: the names the gateway sends as cannot be
// registered, in any case or form of the address.
func TestReservedAddressesRefused(t *testing.T) { bothRuntimes(t, testReservedAddressesRefused) }

func testReservedAddressesRefused(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	for _, addr := range []string{"postmaster", "Postmaster@a.test", "MAILER-DAEMON", "amtp-bridge@A.TEST"} {
		code, out := call(t, "POST", a.url+"/v1/admin/agents", adminKey, map[string]any{"address": addr, "delivery_mode": "pull"})
		require.Equal(t, http.StatusBadRequest, code, "%s: %v", addr, out)
		e := errorOf(t, out)
		assert.Equal(t, "INVALID_MESSAGE_FORMAT", e["code"], addr)
		assert.Equal(t, map[string]any{"field": "address"}, e["details"], addr)
		assert.Contains(t, e["message"], "reserved", addr)
	}
	code, out := call(t, "GET", a.url+"/v1/admin/agents/postmaster", adminKey, nil)
	assert.Equal(t, http.StatusNotFound, code, "nothing was registered: %v", out)
}

// TestMessageIDOfAnotherSender: a message_id already in use is refused
// with one answer whoever uses it, which names no other message, sender or
// idempotency key; the id stays unreadable to the one who tried it.
func TestMessageIDOfAnotherSender(t *testing.T) { bothRuntimes(t, testMessageIDOfAnotherSender) }

func testMessageIDOfAnotherSender(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	alice, _ := a.register("alice", "pull", "")
	mallory, _ := a.register("mallory", "pull", "")
	a.register("bob", "pull", "")
	id := amtp.NewUUIDv7()
	withID := func(from, key string, n int) map[string]any {
		m := msg(from, []string{"bob@a.test"}, map[string]any{"n": n})
		m["message_id"], m["idempotency_key"] = id, key
		return m
	}
	code, out := a.send(alice, withID("alice@a.test", "alice-1", 1))
	require.Equal(t, http.StatusAccepted, code, "%v", out)

	code, out = a.send(mallory, withID("mallory@a.test", "mallory-1", 1))
	require.Equal(t, http.StatusConflict, code, "%v", out)
	foreign := errorOf(t, out)
	code, out = a.send(alice, withID("alice@a.test", "alice-2", 1))
	require.Equal(t, http.StatusConflict, code, "%v", out)
	own := errorOf(t, out)
	for _, e := range []map[string]any{foreign, own} {
		assert.Equal(t, "IDEMPOTENCY_CONFLICT", e["code"])
		assert.Equal(t, map[string]any{"field": "message_id"}, e["details"])
		assert.NotContains(t, e["message"], "idempotency key")
		assert.NotContains(t, e["message"], "alice")
	}
	assert.Equal(t, own["message"], foreign["message"], "the same answer whoever holds the id")
	code, out = call(t, "GET", a.url+"/v1/messages/"+id+"/status", mallory, nil)
	assert.Equal(t, http.StatusNotFound, code, "%v", out)

	code, out = a.send(alice, withID("alice@a.test", "alice-1", 2))
	require.Equal(t, http.StatusConflict, code, "%v", out)
	assert.Contains(t, errorOf(t, out)["message"], `idempotency key "alice-1"`, "the sender's own key keeps its usual conflict")
}
