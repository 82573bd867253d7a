package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// TestNotificationWebhooks: an agent subscribes two real HTTP receivers to
// its messages and workflows; both get signed message.delivered,
// message.failed and workflow.completed events (each receiver checks the
// signatures with the subscription's secret), the one that fails twice
// included. Subscriptions are the owner's: another agent neither sees nor
// deletes them.
func TestNotificationWebhooks(t *testing.T) {
	bothRuntimes(t, testNotificationWebhooks)
}

func testNotificationWebhooks(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	alice, bob := a.party("alice"), a.party("bob")
	erin := newPushAgent(t, http.StatusGone)
	_, erin.secret = a.register("erin", "push", erin.srv.URL)
	healthy, flaky := newPushAgent(t), newPushAgent(t, http.StatusServiceUnavailable, http.StatusInternalServerError)
	events := []string{"message.delivered", "message.failed", "workflow.completed"}
	var ids []string
	for _, r := range []*pushAgent{healthy, flaky} {
		st, out := call(t, "POST", a.url+"/v1/webhooks", alice.key, map[string]any{"url": r.srv.URL, "events": events})
		require.Equal(t, http.StatusCreated, st, "%v", out)
		r.secret = str(out["secret"])
		require.NotEmpty(t, r.secret)
		ids = append(ids, str(out["id"]))
	}

	delivered := sendAccepted(t, a, alice.key, []string{bob.addr})
	failed := sendAccepted(t, a, alice.key, []string{"erin@a.test"})
	wf := alice.start(t, []string{bob.addr}, map[string]any{"type": "parallel", "timeout": unhurried, "required_responses": []string{bob.addr}},
		map[string]any{"question": "ok?"})
	bob.waitAsked(t, wf)
	bob.mustReply(t, wf, alice.addr, map[string]any{"ok": true})

	want := map[string]string{"message.delivered": delivered, "message.failed": failed, "workflow.completed": wf}
	for name, r := range map[string]*pushAgent{"healthy": healthy, "flaky": flaky} {
		require.Eventually(t, func() bool { return len(r.received()) >= len(want) }, settleWithin, 25*time.Millisecond,
			"the %s receiver got %v", name, r.received())
		got := map[string]map[string]any{}
		for _, n := range r.received() {
			data, _ := n["data"].(map[string]any)
			got[str(n["type"])] = data
		}
		assert.Equal(t, delivered, str(got["message.delivered"]["message_id"]), "%s: %v", name, got)
		assert.Equal(t, bob.addr, str(got["message.delivered"]["recipient"]))
		assert.Equal(t, failed, str(got["message.failed"]["message_id"]))
		assert.Equal(t, "RECIPIENT_NOT_FOUND", str(got["message.failed"]["error_code"]))
		assert.Equal(t, wf, str(got["workflow.completed"]["workflow_id"]))
		assert.Equal(t, "completed", str(got["workflow.completed"]["status"]))
		for typ := range want {
			assert.Contains(t, got, typ, "%s receiver", name)
		}
		_, bad := r.stats()
		assert.Zero(t, bad, "every notification to the %s receiver was signed with its secret", name)
	}
	calls, _ := flaky.stats()
	assert.GreaterOrEqual(t, calls, len(want)+2, "the flaky receiver's two failures were retried")

	st, out := call(t, "GET", a.url+"/v1/webhooks", alice.key, nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	list, _ := out["webhooks"].([]any)
	require.Len(t, list, 2)
	for _, w := range list {
		assert.NotContains(t, w.(map[string]any), "secret", "the secret is shown once")
		assert.True(t, slices.Contains(ids, str(w.(map[string]any)["id"])))
	}
	st, out = call(t, "GET", a.url+"/v1/webhooks/"+ids[0], bob.key, nil)
	assert.Equal(t, http.StatusNotFound, st, "another agent's subscription: %v", out)
	st, out = call(t, "DELETE", a.url+"/v1/webhooks/"+ids[0], bob.key, nil)
	assert.Equal(t, http.StatusNotFound, st, "%v", out)
	st, out = call(t, "GET", a.url+"/v1/webhooks?owner=alice", adminKey, nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	assert.EqualValues(t, 2, out["count"], "the admin lists an agent's subscriptions")
	st, out = call(t, "DELETE", a.url+"/v1/webhooks/"+ids[0], alice.key, nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	st, out = call(t, "GET", a.url+"/v1/webhooks/"+ids[0], alice.key, nil)
	assert.Equal(t, http.StatusNotFound, st, "%v", out)
}
