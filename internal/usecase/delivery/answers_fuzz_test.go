package delivery

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzSyncReply feeds arbitrary webhook answers to syncReply. No answer is
// a reply unless it says status "accepted" with a non-null response; a
// reply is what the gateway passes on in its own JSON (the 200 answer, the
// recipient's status), so it must be valid JSON in UTF-8, compact, and
// read back unchanged when wrapped as an answer again.
func FuzzSyncReply(f *testing.F) {
	for _, s := range []string{
		`{"status":"accepted","response":{"a": 1}}`,
		`{"status":"accepted","response":{"approved":true,"note":"Grüße ✓","items":[{"sku":"A-1","qty":2}]}}`,
		`{"status":"accepted","response":"just text"}`,
		`{"status":"accepted","response":null}`,
		`{"status":"accepted"}`,
		`{"status":"ok","response":{"a":1}}`,
		`{"status":"accepted","status":"rejected","response":{"a":1}}`,
		`{"status":"accepted","response":{"a":1},"response":{"b":2}}`,
		`{"STATUS":"accepted","Response":{"a":1}}`,
		`{"status":"accepted","response":{"a":1}`,
		` {"status":"accepted","response":{}}`,
		`{"status":"accepted","response":{"n":1e400}}`,
		`{"status":"accepted","response":{"s":"\ud800"}}`,
		`{"status":"accepted","response":[` + strings.Repeat(`{"k":"v"},`, 4000) + `{}]}`,
		``,
		`not json`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := syncReply(data)
		if out == nil {
			return
		}
		require.True(t, json.Valid(out), "reply %q is not JSON", out)
		require.True(t, utf8.Valid(out), "reply %q is not UTF-8", out)
		require.NotEqual(t, "null", string(out))
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, out))
		require.Equal(t, compact.String(), string(out), "reply is compact")

		var answer struct {
			Status   string          `json:"status"`
			Response json.RawMessage `json:"response"`
		}
		require.NoError(t, json.Unmarshal(data, &answer))
		require.Equal(t, "accepted", answer.Status)

		again := syncReply([]byte(`{"status":"accepted","response":` + string(out) + `}`))
		require.Equal(t, string(out), string(again))
	})
}

// FuzzPeerError feeds arbitrary error answers to peerError and what it
// returns through peerText, as httpFailure does. An answer without an
// AMTP error body is no error; a peer's code is passed on only when it
// looks like one; and what the sender reads of the peer's message is
// bounded UTF-8 text on one line, with no control or format characters.
func FuzzPeerError(f *testing.F) {
	for _, s := range []string{
		`{"error":{"code":"AGENT_UNKNOWN","message":"no agent bob@b.example","timestamp":"2025-08-14T10:30:00Z","request_id":"r1"}}`,
		`{"error":{"code":"agent_unknown","message":"lower case"}}`,
		`{"error":{"code":"` + strings.Repeat("A", 65) + `","message":"long code"}}`,
		`{"error":{"code":"X","message":"` + strings.Repeat("€", 200) + `"}}`,
		`{"error":{"code":"X","message":"line\r\nbreak\u001b[31m red \u202e bidi\t tab  "}}`,
		`{"error":{"code":"X","code":"Y","message":"duplicate keys"}}`,
		`{"error":{"message":"no code"}}`,
		`{"error":{"code":"","message":"empty code"}}`,
		`{"error":"a string"}`,
		`{"error":{"code":"X","message":"truncated`,
		`{"error":{"code":"Ä","message":""}}`,
		``,
		`<html>502 Bad Gateway</html>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := peerError(body)
		if e == nil {
			return
		}
		require.True(t, json.Valid(body), "an error read from a body that is not JSON")
		code := string(e.Code)
		require.NotEmpty(t, code)
		require.LessOrEqual(t, len(code), 64)
		require.Equal(t, -1, strings.IndexFunc(code, func(r rune) bool { return (r < 'A' || r > 'Z') && r != '_' }), "code %q", code)

		text := peerText(e.Message)
		require.True(t, utf8.ValidString(text), "%q", text)
		require.LessOrEqual(t, len(text), maxPeerText+len("…"))
		require.Equal(t, strings.TrimSpace(text), text)
		require.NotContains(t, text, "  ")
		for _, r := range text {
			require.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "character %U passed on", r)
		}
	})
}
