package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHealthcheck: `agentry healthcheck` (the container's HEALTHCHECK) exits
// 0 when /readyz answers 200 and 1 otherwise, and reads the port of
// AGENTRY_ADDR when no -url is given.
func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	for _, tc := range []struct {
		name   string
		status int
		addr   string
		args   []string
		want   int
	}{
		{"ready, given url", http.StatusOK, "", []string{"-url", srv.URL + "/readyz"}, 0},
		{"not ready", http.StatusServiceUnavailable, "", []string{"-url", srv.URL + "/readyz"}, 1},
		{"all interfaces in AGENTRY_ADDR probe loopback", http.StatusOK, "0.0.0.0:" + port, nil, 0},
		{"no host in AGENTRY_ADDR", http.StatusOK, ":" + port, nil, 0},
		{"nothing listens", http.StatusOK, "", []string{"-url", "http://127.0.0.1:1/readyz"}, 1},
		{"usage", http.StatusOK, "", []string{"extra"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, paths = tc.status, nil
			t.Setenv("AGENTRY_ADDR", tc.addr)
			code, _, errs := runCLI(t, append([]string{"healthcheck"}, tc.args...)...)
			assert.Equal(t, tc.want, code, errs)
			if tc.want == 0 {
				require.Equal(t, []string{"/readyz"}, paths)
			}
		})
	}
}

// TestHealthcheckOfALocalGateway: the probe against a real gateway's /readyz.
func TestHealthcheckOfALocalGateway(t *testing.T) {
	url := startLocal(t)
	code, out, errs := runCLI(t, "healthcheck", "-url", url+"/readyz", "-timeout", "10s")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "ready\n", out)
}
