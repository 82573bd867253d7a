package observetest_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe/observetest"
)

// TestXRayDaemon: the stand-in daemon hands over the documents it is sent,
// and marks a packet the real daemon would drop as malformed (so that
// Receive fails the test that sent it).
func TestXRayDaemon(t *testing.T) {
	addr, docs := observetest.XRayDaemon(t)
	conn, err := net.Dial("udp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	const header = `{"format": "json", "version": 1}` + "\n"
	for _, tc := range []struct {
		name, packet string
		malformed    bool
	}{
		{name: "a document", packet: header + `{"name":"S3"}`},
		{name: "no header", packet: `{"name":"S3"}`, malformed: true},
		{name: "another header", packet: `{"format": "json", "version": 2}` + "\n" + `{"name":"S3"}`, malformed: true},
		{name: "not JSON", packet: header + "S3", malformed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := conn.Write([]byte(tc.packet))
			require.NoError(t, err)
			if !tc.malformed {
				assert.Equal(t, map[string]any{"name": "S3"}, observetest.Receive(t, docs))
				return
			}
			select {
			case d := <-docs:
				assert.Equal(t, map[string]any{"malformed": tc.packet}, d)
			case <-time.After(5 * time.Second):
				t.Fatal("the packet never arrived")
			}
		})
	}
}
