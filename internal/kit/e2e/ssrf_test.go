package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// A domain's _amtp record is attacker-controlled input: a gateway in
// production mode must never connect where it points when that is a
// loopback, private or metadata address — whether the record names the
// address or a host name that resolves to it. A real TLS server listens on
// loopback and counts the connections it would have received.
func TestDiscoveredGatewayOnPrivateAddressIsNeverContacted(t *testing.T) {
	var hits atomic.Int64
	victim := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(victim.Close)
	port := victim.URL[strings.LastIndex(victim.URL, ":"):]

	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{secure: true})
	alice, _ := a.register("alice", "pull", "")
	for _, tc := range []struct{ domain, gateway string }{
		{"loopback-ip.test", victim.URL},                   // https://127.0.0.1:port
		{"loopback-name.test", "https://localhost" + port}, // a name that resolves to 127.0.0.1
		{"metadata.test", "https://169.254.169.254/"},      // cloud instance metadata
		{"private.test", "https://10.0.0.1" + port},        // RFC 1918
		{"ipv6-loopback.test", "https://[::1]" + port},     // ::1
	} {
		t.Run(tc.domain, func(t *testing.T) {
			dns.SetTXT("_amtp."+tc.domain, 60, "v=amtp1;gateway="+tc.gateway)
			rcpt := "bob@" + tc.domain
			status, out := a.send(alice, msg("alice@a.test", []string{rcpt}, map[string]any{"n": 1}))
			require.Equal(t, http.StatusAccepted, status, "%v", out)
			rs := a.waitStatus(alice, str(out["message_id"]), rcpt, "failed", settleWithin)
			assert.Equal(t, "RECIPIENT_UNAVAILABLE", rs["error_code"])
			assert.Contains(t, rs["error_message"], "not allowed")
		})
	}
	assert.Zero(t, hits.Load(), "the loopback server was contacted")
}

// With AGENTRY_VERIFY_ATTACHMENTS an attachment is fetched before the
// message is accepted — through the same guard, so one pointing into the
// gateway's own network refuses the message instead of fetching it.
func TestAttachmentOnPrivateAddressRefusedWhenVerifying(t *testing.T) {
	var hits atomic.Int64
	victim := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(victim.Close)
	port := victim.URL[strings.LastIndex(victim.URL, ":"):]
	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{secure: true, env: map[string]string{"AGENTRY_VERIFY_ATTACHMENTS": "1"}})
	alice, _ := a.register("alice", "pull", "")
	a.register("bob", "pull", "")
	before := a.countMessages()
	for _, u := range []string{"https://localhost" + port + "/secret.pdf", "https://169.254.169.254/latest/meta-data/iam"} {
		m := msg("alice@a.test", []string{"bob@a.test"}, map[string]any{"n": 1})
		m["attachments"] = []any{map[string]any{"filename": "x.pdf", "content_type": "application/pdf", "size": 10, "url": u}}
		status, out := a.send(alice, m)
		require.Equal(t, http.StatusBadRequest, status, "%s: %v", u, out)
		e := out["error"].(map[string]any)
		assert.Equal(t, "INVALID_MESSAGE_FORMAT", e["code"])
		assert.Equal(t, "attachments[0].url", e["details"].(map[string]any)["field"])
	}
	assert.Equal(t, before, a.countMessages(), "refused messages are not stored")
	assert.Zero(t, hits.Load())
}
