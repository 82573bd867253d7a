package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
)

// TestUnencodableAnswerIsTheAMTPBody: an answer encoding/json refuses (a
// bug of ours, here an infinite float) becomes a 500 in the full error
// body — timestamp and request id included — and so does an error whose
// details cannot be encoded, which keeps its code and loses its details.
func TestUnencodableAnswerIsTheAMTPBody(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		status int
		code   amtp.Code
	}{
		{"answer", func(w http.ResponseWriter, r *http.Request) {
			h.writeJSON(w, r, http.StatusOK, map[string]any{"n": math.Inf(1)})
		}, http.StatusInternalServerError, amtp.CodeTemporaryFailure},
		{"error details", func(w http.ResponseWriter, r *http.Request) {
			h.writeError(w, r, amtp.Errorf(amtp.CodeForbidden, "no").WithDetail("n", math.NaN()))
		}, http.StatusForbidden, amtp.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/x", nil)
			req.Header.Set("X-Request-ID", "abc-123")
			h.middleware(http.HandlerFunc(c.answer)).ServeHTTP(rec, req)
			require.Equal(t, c.status, rec.Code)
			var body errorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "%s", rec.Body)
			assert.Equal(t, c.code, body.Error.Code)
			assert.Equal(t, "abc-123", body.Error.RequestID)
			_, err := time.Parse(time.RFC3339Nano, body.Error.Timestamp)
			assert.NoError(t, err, "timestamp %q", body.Error.Timestamp)
			assert.Nil(t, body.Error.Details)
			assert.NotContains(t, rec.Body.String(), "encod", "what failed inside is logged, not shown")
		})
	}
}

// TestRouteEndingInASlashIsRefused: ServeMux answers the path without the
// slash itself, with a redirect and an HTML body, so such a route is a
// programming error caught when the handler is built.
func TestRouteEndingInASlashIsRefused(t *testing.T) {
	for _, pattern := range []string{"/v1/things/", "/v1/things/{id}/"} {
		h := &Handler{mux: http.NewServeMux()}
		assert.Panics(t, func() { h.route(pattern, methods{"GET": func(http.ResponseWriter, *http.Request) {}}) }, pattern)
	}
	h := &Handler{mux: http.NewServeMux()}
	assert.NotPanics(t, func() { h.route("/v1/things", methods{"GET": func(http.ResponseWriter, *http.Request) {}}) })
}
