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
		case <-time.After(time.Minute):
		}
	}))
	defer srv.Close()
	// Long enough for /fast on a busy machine; the stalled body is then
	// cut off after it, long before the server would end it.
	c := NewClient(Options{AllowInsecure: true, Timeout: 2 * time.Second})

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
	assert.Less(t, time.Since(start), 30*time.Second)
}

// TestGuardConnectJudgesEveryResolvedAddress: the dialer's Control
// function receives each address after resolution, and must refuse the
// IPv6 forms that carry an internal IPv4 address and zoned addresses.
func TestGuardConnectJudgesEveryResolvedAddress(t *testing.T) {
	for _, tc := range []struct {
		address string
		allowed bool
	}{
		{"8.8.8.8:443", true},
		{"[2606:4700::1111]:443", true},
		{"[64:ff9b::808:808]:443", true},                      // NAT64 of a public address
		{"[2002:808:808::1]:443", true},                       // 6to4 of a public address
		{"169.254.169.254:443", false},                        // metadata
		{"[64:ff9b::a9fe:a9fe]:443", false},                   // NAT64 of metadata
		{"[64:ff9b:1::a9fe:a9fe]:443", false},                 // local-use NAT64
		{"[2002:a9fe:a9fe::1]:443", false},                    // 6to4 of metadata
		{"[::a9fe:a9fe]:443", false},                          // IPv4-compatible
		{"[::ffff:169.254.169.254]:443", false},               // IPv4-mapped
		{"[::ffff:0:7f00:1]:443", false},                      // IPv4-translated loopback
		{"[2001:0:4136:e378:8000:63bf:3fff:fdd2]:443", false}, // Teredo
		{"[2606:4700::200:5efe:a00:1]:443", false},            // ISATAP id of 10.0.0.1
		{"[fe80::1%eth0]:443", false},                         // link-local with a zone
		{"[2606:4700::1111%eth0]:443", false},                 // zone on a global address
		{"[100:0:0:1::1]:443", false},                         // dummy prefix
		{"[5f00::1]:443", false},                              // SRv6 SID
		{"[3fff::1]:443", false},                              // documentation
		{"not-an-address", false},
	} {
		err := guardConnect("tcp", tc.address, nil)
		if tc.allowed {
			assert.NoError(t, err, tc.address)
		} else {
			assert.True(t, Blocked(err), "%s: %v", tc.address, err)
		}
	}
}

// TestGuardHostRefusesNumericSpellings: a host that is a non-canonical
// IPv4 spelling is refused before any resolution, whatever the resolver
// would make of it.
func TestGuardHostRefusesNumericSpellings(t *testing.T) {
	for _, tc := range []struct {
		address string
		allowed bool
	}{
		{"example.com:443", true},
		{"8.8.8.8:443", true}, // canonical: judged after resolution
		{"[2606:4700::1111]:443", true},
		{"2852039166:443", false},
		{"0xa9fe.0xa9fe:443", false},
		{"0251.0376.0251.0376:443", false},
		{"169.254.43518:443", false},
		{"0x7f000001:8443", false},
		{"169.254.169.254.:443", false},
	} {
		err := guardHost(tc.address)
		if tc.allowed {
			assert.NoError(t, err, tc.address)
		} else {
			assert.True(t, Blocked(err), "%s: %v", tc.address, err)
		}
	}
	// Through the client: refused as blocked, not as a failed lookup.
	c := NewClient(Options{})
	for _, u := range []string{"https://0xa9fe.0xa9fe/", "https://2852039166/latest", "https://0x7f000001:8443/"} {
		resp, err := c.Get(u)
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err, u)
		assert.True(t, Blocked(err), "%s: %v", u, err)
	}
}
