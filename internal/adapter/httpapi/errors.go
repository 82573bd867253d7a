package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      amtp.Code      `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details,omitempty"`
	Timestamp string         `json:"timestamp"`
	RequestID string         `json:"request_id"`
}

// writeError answers with the AMTP error body. Errors that are not AMTP
// errors are internal: their text is logged, never shown.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := amtp.AsError(err)
	if !ok {
		h.log.Error("unexpected error", "request_id", requestID(r), "path", r.URL.Path, "err", err)
		h.writeInternal(w, r)
		return
	}
	h.writeAMTPError(w, r, e, statusOf(e.Code))
}

// writeInternal answers a failure of ours, already logged: 500 with
// TEMPORARY_FAILURE, the code that tells the caller to retry (503 is the
// code's status when a dependency, not the gateway, is at fault).
func (h *Handler) writeInternal(w http.ResponseWriter, r *http.Request) {
	h.writeAMTPError(w, r, amtp.Errorf(amtp.CodeTemporaryFailure, "internal error; retry later"), http.StatusInternalServerError)
}

// writeAMTPError answers e with status, in the AMTP error body.
func (h *Handler) writeAMTPError(w http.ResponseWriter, r *http.Request, e *amtp.Error, status int) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="amtp"`)
	}
	switch {
	case status == http.StatusTooManyRequests:
		// The header says what details.retry_after says, for clients that
		// only look at headers; 1 s when the error did not say.
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfter(e), 10))
	case status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "":
		w.Header().Set("Retry-After", "1")
	}
	body := errorBody{Error: errorDetail{
		Code: e.Code, Message: e.Message, Details: e.Details,
		Timestamp: amtp.FormatTime(time.Now()), RequestID: requestID(r),
	}}
	data, err := json.Marshal(body)
	if err != nil {
		// Details encoding/json refuses are a bug of ours; the code and
		// the message still tell the caller what happened. Without
		// details the body is strings only and always encodes.
		h.log.Error("error details not encodable", "request_id", requestID(r), "code", string(e.Code), "err", err)
		body.Error.Details = nil
		data, _ = json.Marshal(body)
	}
	writeRaw(w, status, data)
}

func retryAfter(e *amtp.Error) int64 {
	if v, ok := e.Details["retry_after"].(int64); ok && v > 0 {
		return v
	}
	return 1
}

// writeJSON answers v as JSON. An answer encoding/json refuses is a bug
// of ours: logged, and answered 500 in the error body like any other.
func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		h.writeError(w, r, fmt.Errorf("encode the answer: %w", err))
		return
	}
	writeRaw(w, status, data)
}

func writeRaw(w http.ResponseWriter, status int, data []byte) {
	hd := w.Header()
	// What Set does, with both values in one array: one allocation instead
	// of two. The keys are canonical already, and the capacity of one
	// keeps an Add to either header from writing into the other.
	v := [...]string{"application/json", strconv.Itoa(len(data) + 1)}
	hd["Content-Type"], hd["Content-Length"] = v[0:1:1], v[1:2:2]
	w.WriteHeader(status)
	_, _ = w.Write(data)
	_, _ = w.Write([]byte{'\n'})
}

// ServeUnreadable answers a request that its transport could not turn
// into an http.Request — an API Gateway event whose path url.Parse
// refuses, say — with 400 in the error body and a request id, as the
// handler answers everything else. r stands in for the request that could
// not be built: only its context and X-Request-Id header are used.
func (h *Handler) ServeUnreadable(w http.ResponseWriter, r *http.Request) {
	h.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, amtp.Errorf(amtp.CodeInvalidMessageFormat, "the request is malformed: its path or body could not be read"))
	})).ServeHTTP(w, r)
}
