package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPanicBecomesAMTPError(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := h.middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Request-ID", "abc-123")
	srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	var body errorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, "TEMPORARY_FAILURE", string(body.Error.Code))
	assert.Equal(t, "abc-123", body.Error.RequestID)
	assert.NotContains(t, rec.Body.String(), "boom", "panic values are logged, not shown")
	assert.Equal(t, "abc-123", rec.Header().Get("X-Request-ID"))
}

func TestRequestIDIsGeneratedWhenAbsentOrUnsafe(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var seen string
	srv := h.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = requestID(r) }))
	for _, in := range []string{"", "has space", "line\nbreak", string(make([]byte, 100))} {
		req := httptest.NewRequest("GET", "/", nil)
		if in != "" {
			req.Header["X-Request-Id"] = []string{in}
		}
		srv.ServeHTTP(httptest.NewRecorder(), req)
		assert.Regexp(t, `^req_[0-9a-f-]{36}$`, seen, "input %q", in)
	}
}

func TestVersionHeader(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := h.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	for v, want := range map[string]int{"1.0": 204, "1": 204, "1.2": 204, "2.0": 400, "abc": 400, "": 204} {
		req := httptest.NewRequest("GET", "/", nil)
		if v != "" {
			req.Header.Set("X-AMTP-Version", v)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		assert.Equal(t, want, rec.Code, "X-AMTP-Version %q", v)
		if want == 400 {
			assert.Contains(t, rec.Body.String(), "UNSUPPORTED_VERSION")
		}
	}
}
