package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImmediatePathReplyNotUTF8: a push agent's synchronous reply that is
// not UTF-8 (FuzzSyncReply found it) is not passed on. The message is
// delivered, and what the sender reads — the answer to its POST and the
// message's status — stays valid UTF-8 JSON.
func TestImmediatePathReplyNotUTF8(t *testing.T) {
	bothRuntimes(t, testImmediatePathReplyNotUTF8)
}

func testImmediatePathReplyNotUTF8(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	agent := newPushAgent(t)
	agent.reply = json.RawMessage("{\"status\":\"accepted\",\"response\":{\"note\":\"caf\xe9\"}}")
	_, secret := w.a.register("oracle", "push", agent.srv.URL)
	agent.secret = secret

	status, raw := callRaw(t, "POST", w.a.url+"/v1/messages", w.alice, msg(w.aliceAddr, []string{"oracle@a.test"}, map[string]any{"q": "?"}))
	require.True(t, utf8.Valid(raw), "answer is not UTF-8: %q", raw)
	require.Equal(t, http.StatusAccepted, status, "%s", raw)
	var out struct {
		MessageID string          `json:"message_id"`
		Response  json.RawMessage `json:"response"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	assert.Empty(t, out.Response)

	w.a.waitStatus(w.alice, out.MessageID, "oracle@a.test", "delivered", settleWithin)
	st, statusRaw := callRaw(t, "GET", w.a.url+"/v1/messages/"+out.MessageID+"/status", w.alice, nil)
	require.Equal(t, http.StatusOK, st, "%s", statusRaw)
	assert.True(t, utf8.Valid(statusRaw), "status is not UTF-8: %q", statusRaw)
}
