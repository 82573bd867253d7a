package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// accessPolicy is a.test's policy in TestAccessPolicy.
const accessPolicy = `
version: "1.0"
default_policy: allow
rules:
  - name: no-secret
    action: deny
    recipients: ["secret@a.test"]
  - name: b-keeps-out-of-the-vault
    action: deny
    senders: ["*@b.test"]
    recipients: ["vault@a.test"]
  - name: alice-is-slow
    action: allow
    senders: ["alice@a.test"]
    rate_limit: 3/hour
`

func TestAccessPolicy(t *testing.T) { bothRuntimes(t, testAccessPolicy) }

func testAccessPolicy(t *testing.T, onAWS bool) {
	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{aws: onAWS, env: map[string]string{"AGENTRY_POLICY": accessPolicy}})
	b := startGateway(t, dns, "b.test", gwOpts{})
	alice, _ := a.register("alice", "pull", "")
	carol, _ := a.register("carol", "pull", "")
	bob, _ := a.register("bob", "pull", "")
	a.register("secret", "pull", "")
	vault, _ := a.register("vault", "pull", "")
	dave, _ := b.register("dave", "pull", "")

	// Rate limit: three from alice in the hour, the fourth is 429 with a
	// Retry-After header that agrees with details.retry_after.
	for i := range 3 {
		code, out := a.send(alice, msg("alice@a.test", []string{"bob@a.test"}, map[string]any{"n": i}))
		require.Equal(t, http.StatusAccepted, code, "message %d: %v", i+1, out)
	}
	before := a.countMessages()
	code, header, out := postWithHeaders(t, a.url+"/v1/messages", alice, msg("alice@a.test", []string{"bob@a.test"}, map[string]any{"n": 4}))
	require.Equal(t, http.StatusTooManyRequests, code, "%v", out)
	e := out["error"].(map[string]any)
	assert.Equal(t, "RATE_LIMIT_EXCEEDED", e["code"])
	retry, err := strconv.Atoi(header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", header.Get("Retry-After"))
	assert.InDelta(t, 1200, retry, 5, "one token per 20 minutes")
	assert.EqualValues(t, retry, e["details"].(map[string]any)["retry_after"])
	// Another sender is not held back by alice's bucket.
	code, out = a.send(carol, msg("carol@a.test", []string{"bob@a.test"}, map[string]any{"n": 1}))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	assert.Equal(t, before+1, a.countMessages(), "the throttled message was not stored")

	// Every recipient refused: 403, nothing stored, and the error does not
	// name the rule.
	before = a.countMessages()
	code, out = a.send(carol, msg("carol@a.test", []string{"secret@a.test"}, "psst"))
	require.Equal(t, http.StatusForbidden, code, "%v", out)
	e = out["error"].(map[string]any)
	assert.Equal(t, "POLICY_DENIED", e["code"])
	assert.NotContains(t, e["message"], "no-secret")
	assert.Equal(t, before, a.countMessages())

	// Some refused: accepted for the others, the refused one failed.
	code, out = a.send(carol, msg("carol@a.test", []string{"bob@a.test", "secret@a.test"}, "hello both"))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	st := a.status(carol, id)
	assert.Equal(t, "delivered", recipientStatus(t, st, "bob@a.test")["status"])
	sec := recipientStatus(t, st, "secret@a.test")
	assert.Equal(t, "failed", sec["status"])
	assert.Equal(t, "POLICY_DENIED", sec["error_code"])

	// From another domain: b.test's delivery to the vault is refused by
	// a.test's policy and b.test reports it failed with a.test's code;
	// the same sender still reaches bob.
	code, out = b.send(dave, msg("dave@b.test", []string{"vault@a.test"}, "let me in"))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	vaultMsg := str(out["message_id"])
	code, out = b.send(dave, msg("dave@b.test", []string{"bob@a.test"}, "hi bob"))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	bobMsg := str(out["message_id"])
	failed := b.waitStatus(dave, vaultMsg, "vault@a.test", "failed", settleWithin)
	assert.Equal(t, "POLICY_DENIED", failed["error_code"])
	b.waitStatus(dave, bobMsg, "bob@a.test", "delivered", settleWithin)
	assert.Empty(t, a.inbox(vault, "vault@a.test"))
	assert.NotEmpty(t, a.waitInbox(bob, "bob@a.test", 1, settleWithin))
}

// postWithHeaders is call for a POST that also needs the answer's headers.
func postWithHeaders(t *testing.T, url, key string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	code, header, raw := do(t, clientFor(url), http.MethodPost, url, key, body)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	return code, header, out
}
