package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/discovery/dnstest"
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
			rs := a.waitStatus(alice, str(out["message_id"]), rcpt, "failed", 10*time.Second)
			assert.Equal(t, "RECIPIENT_UNAVAILABLE", rs["error_code"])
			assert.Contains(t, rs["error_message"], "not allowed")
		})
	}
	assert.Zero(t, hits.Load(), "the loopback server was contacted")
}
