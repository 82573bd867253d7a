package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"

	"github.com/agentry/agentry/internal/adapter/httpapi/httpapitest"
)

// TestProbesReflectTheStore: liveness fails only when the runtime says
// the process cannot recover without a restart, readiness whenever the
// store cannot serve; both answer in the AMTP error body without naming
// the cause.
func TestProbesReflectTheStore(t *testing.T) {
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	failing := func(context.Context) error { return errors.New("write /data/agentry.wal: no space left on device") }
	fine := func(context.Context) error { return nil }

	cases := []struct {
		name             string
		live, ready      func(context.Context) error
		wantLive, wantOK int
	}{
		{"no checks", nil, nil, http.StatusOK, http.StatusOK},
		{"healthy", fine, fine, http.StatusOK, http.StatusOK},
		{"cannot write for now", fine, failing, http.StatusOK, http.StatusServiceUnavailable},
		{"cannot recover", failing, failing, http.StatusServiceUnavailable, http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := httpapi.New(svc, httpapi.Options{Logger: quiet, Live: tc.live, Ready: tc.ready})
			for path, want := range map[string]int{
				"/healthz": tc.wantLive, "/health": tc.wantLive,
				"/readyz": tc.wantOK, "/ready": tc.wantOK,
			} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				require.Equal(t, want, rec.Code, path)
				if want != http.StatusOK {
					body := httpapitest.RequireErrorBody(t, rec.Body.Bytes(), "TEMPORARY_FAILURE", path)
					assert.NotContains(t, body.Error.Message, "agentry.wal", path)
				}
			}
		})
	}
}
