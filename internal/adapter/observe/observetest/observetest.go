// Package observetest is a stand-in X-Ray daemon for tests of code that
// records subsegments through internal/adapter/observe.
package observetest

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// daemonHeader precedes every document sent to the X-Ray daemon.
const daemonHeader = `{"format": "json", "version": 1}`

// XRayDaemon listens on UDP on loopback as the X-Ray daemon does and hands
// over the documents it receives. A packet without the daemon's header or
// whose document is not JSON arrives as {"malformed": <packet>}, which
// Receive fails on. Point AWS_XRAY_DAEMON_ADDRESS at the address.
func XRayDaemon(t *testing.T) (addr string, docs <-chan map[string]any) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	out := make(chan map[string]any, 16)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			head, body, ok := strings.Cut(string(buf[:n]), "\n")
			var doc map[string]any
			if !ok || head != daemonHeader || json.Unmarshal([]byte(body), &doc) != nil {
				doc = map[string]any{"malformed": string(buf[:n])}
			}
			out <- doc
		}
	}()
	return conn.LocalAddr().String(), out
}

// Receive returns the next document, failing the test on a malformed one
// or when none comes within 5 seconds.
func Receive(t *testing.T, docs <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case d := <-docs:
		require.NotContains(t, d, "malformed")
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon received no subsegment")
		return nil
	}
}
