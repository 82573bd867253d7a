// Package httpapitest holds what tests of the REST API share: the check
// that an answer is exactly the AMTP error body (shared/PROTOCOL.md,
// "Errors"), used by the handler's tests, the API Gateway adapter's and
// the end-to-end tests over raw connections.
package httpapitest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ErrorBody is the AMTP error body and nothing else: RequireErrorBody
// decodes it with unknown members refused.
type ErrorBody struct {
	Error struct {
		Code      string         `json:"code"`
		Message   string         `json:"message"`
		Details   map[string]any `json:"details"`
		Timestamp string         `json:"timestamp"`
		RequestID string         `json:"request_id"`
	} `json:"error"`
}

// RequireErrorBody checks that raw is exactly the AMTP error body with
// code want, a message, an RFC 3339 timestamp and a request id, and
// returns it; context names the request in failure messages.
func RequireErrorBody(t testing.TB, raw []byte, want, context string) ErrorBody {
	t.Helper()
	var body ErrorBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body), "%s: not the AMTP error body: %q", context, raw)
	assert.Equal(t, want, body.Error.Code, context)
	assert.NotEmpty(t, body.Error.Message, context)
	_, err := time.Parse(time.RFC3339Nano, body.Error.Timestamp)
	assert.NoError(t, err, "%s: timestamp %q", context, body.Error.Timestamp)
	assert.NotEmpty(t, body.Error.RequestID, context)
	return body
}
