package netguard

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
