package floor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelayCarriesASignedMessageToTheWebhook: the chain's second hop
// delivers exactly what the client sent, named by its message_id, and
// refuses what the first hop did not sign.
func TestRelayCarriesASignedMessageToTheWebhook(t *testing.T) {
	type delivery struct {
		id   string
		body string
	}
	got := make(chan delivery, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{id: r.Header.Get("webhook-id"), body: string(b)}
	}))
	defer hook.Close()
	relay, err := StartRelay(hook.URL, http.DefaultClient)
	require.NoError(t, err)
	defer func() { assert.NoError(t, relay.Close()) }()

	msg := `{"message_id":"m-1","payload":{"n":1}}`
	resp, err := http.Post(relay.URL, "application/json", strings.NewReader(msg))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	d := <-got
	assert.Equal(t, delivery{id: "m-1", body: msg}, d)

	for name, sig := range map[string]string{"unsigned": "", "forged": strings.Repeat("A", 86)} {
		req, err := http.NewRequest(http.MethodPost, relay.second.URL+"/v1/messages", strings.NewReader(msg))
		require.NoError(t, err)
		req.Header.Set(HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, name)
	}
	assert.Empty(t, got, "nothing unsigned reached the webhook")
}
