package netguard

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGuardRefusesNonPublicTargetsAtConnectTime(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	c := NewClient(Options{})
	for _, u := range []string{
		srv.URL,                       // 127.0.0.1 literal
		"https://localhost" + port,    // a name that resolves to loopback
		"https://169.254.169.254/",    // cloud metadata
		"https://10.1.2.3/",           // private
		"https://[::1]" + port,        // IPv6 loopback
		"http://example.invalid/hook", // not https
	} {
		resp, err := c.Get(u)
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err, u)
		assert.True(t, Blocked(err), "%s: %v", u, err)
	}
}

func TestInsecureModeAllowsLoopbackAndAddsHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	c := NewClient(Options{AllowInsecure: true, UserAgent: "AMTP/1.0 (agentry/test)"})
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode, "redirects are not followed")
	assert.Equal(t, "1.0", got.Get("X-AMTP-Version"))
	assert.Equal(t, "AMTP/1.0 (agentry/test)", got.Get("User-Agent"))
}

func TestTLS13Minimum(t *testing.T) {
	c := NewClient(Options{})
	tr := c.Transport.(headers).next.(httpsOnly).next.(*http.Transport)
	assert.Equal(t, uint16(tls.VersionTLS13), tr.TLSClientConfig.MinVersion)
	assert.Nil(t, tr.Proxy, "no proxy from the environment")
}

// TestTimeoutBoundsTheWholeExchange: a peer that answers its headers at
// once and then trickles (or withholds) the body must not hold a delivery
// past Options.Timeout.
func TestTimeoutBoundsTheWholeExchange(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			_, _ = io.WriteString(w, "done")
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		// Bounded, so that a client without the deadline fails the
		// test rather than hanging it.
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(8 * time.Second):
		}
	}))
	defer srv.Close()
	c := NewClient(Options{AllowInsecure: true, Timeout: 300 * time.Millisecond})

	resp, err := c.Get(srv.URL + "/fast")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, "done", string(body))

	start := time.Now()
	resp, err = c.Get(srv.URL + "/stall")
	require.NoError(t, err, "the headers arrive at once")
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	require.Error(t, err, "the body does not end in time; the read must be cut off")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}
