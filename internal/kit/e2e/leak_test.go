package e2e

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// TestDeliveryErrorsRevealNothingOfTheNetwork: a sender whose mail cannot
// reach the recipient's gateway learns why in words meant for it, never
// the gateway's resolver, what a name resolved to, addresses, ports or Go
// error text — neither in the recipient's status nor in the failure
// report. The gateway runs in production mode (the address guard on)
// while discovery asks the loopback test DNS server.
func TestDeliveryErrorsRevealNothingOfTheNetwork(t *testing.T) {
	bothRuntimes(t, testDeliveryErrorsRevealNothingOfTheNetwork)
}

func testDeliveryErrorsRevealNothingOfTheNetwork(t *testing.T, onAWS bool) {
	var hits atomic.Int64
	victim := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(victim.Close)
	port := victim.URL[strings.LastIndex(victim.URL, ":"):]

	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{secure: true, aws: onAWS})
	alice, _ := a.register("alice", "pull", "")
	cases := []struct {
		domain, gateway string
		state           string // the recipient's status to wait for
	}{
		{"loopback-ip.test", victim.URL, "failed"},
		{"loopback-name.test", "https://localhost" + port, "failed"},
		{"hex-name.test", "https://0x7f000001" + port, "failed"},
		{"decimal-name.test", "https://2130706433" + port, "failed"},
		{"nat64.test", "https://[64:ff9b::7f00:1]" + port, "failed"},
		// A name nobody resolves: a transient failure, retried.
		{"unresolvable.test", "https://gw.unresolvable.invalid" + port, "retrying"},
	}
	failed := 0
	for _, tc := range cases {
		t.Run(tc.domain, func(t *testing.T) {
			dns.SetTXT("_amtp."+tc.domain, 60, "v=amtp1;gateway="+tc.gateway)
			rcpt := "bob@" + tc.domain
			status, out := a.send(alice, msg("alice@a.test", []string{rcpt}, map[string]any{"n": 1}))
			require.Equal(t, http.StatusAccepted, status, "%v", out)
			rs := a.waitStatus(alice, str(out["message_id"]), rcpt, tc.state, 15*time.Second)
			assert.Equal(t, "RECIPIENT_UNAVAILABLE", rs["error_code"])
			assertRevealsNothing(t, str(rs["error_message"]), dns.Addr(), port)
		})
		if tc.state == "failed" {
			failed++
		}
	}
	// Each failed message brought alice a delivery failure report.
	reports := a.waitInbox(alice, "alice@a.test", failed, 15*time.Second)
	for _, rep := range reports {
		payload, _ := rep["payload"].(map[string]any)
		require.NotNil(t, payload, "%v", rep)
		assert.Equal(t, "RECIPIENT_UNAVAILABLE", payload["error_code"])
		assertRevealsNothing(t, str(payload["error_message"]), dns.Addr(), port)
	}
	assert.Zero(t, hits.Load(), "the loopback server was contacted")
}

var (
	ipv4Text = regexp.MustCompile(`\d{1,3}(\.\d{1,3}){3}`)
	portText = regexp.MustCompile(`:\d{2,5}\b`)
	ipv6Text = regexp.MustCompile(`[0-9a-fA-F]*::?[0-9a-fA-F]+:`)
)

// assertRevealsNothing checks a message written for the sender.
func assertRevealsNothing(t *testing.T, msg, resolver, port string) {
	t.Helper()
	require.NotEmpty(t, msg)
	for _, bad := range []string{"lookup", "dial", "tcp", "udp", "no such host", "localhost", "0x7f000001",
		"2130706433", "unresolvable.invalid", "Post ", "https://", "%!", resolver, port} {
		assert.NotContains(t, msg, bad)
	}
	assert.NotRegexp(t, ipv4Text, msg)
	assert.NotRegexp(t, portText, msg)
	assert.NotRegexp(t, ipv6Text, msg)
}
