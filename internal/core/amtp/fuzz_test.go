package amtp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		msgWith(),
		draftSection4, draftA1, draftA3, draftA4, draftSendRequest, draftParallel, draftConditional,
		msgWith("version", `"1"`, "timestamp", `"2025-08-14t10:30:00.123456+05:45"`, "subject", `"Grüße\u2028"`),
		msgWith("recipients", `["A@X.COM","a@x.com","b@xn--bcher-kva.de"]`, "headers", `{"x":"a\tb"}`),
		msgWith("x-ext", `{"nested":[1,2,{"a":null}]}`, "payload", `"\u00e9\ud83d\ude00"`),
		msgWith("attachments", `[`+attachment()+`]`, "signature", `{"algorithm":"EdDSA","value":"a-b_c"}`),
		msgWith("timestamp", `"9999-12-31T22:59:59.999Z"`),
		msgWith("timestamp", `"0001-01-01T00:00:00.001Z"`),
		msgWith("headers", `{}`, "attachments", `[]`, "coordination", `null`, "signature", `null`),
		serialisedEverything,
		msgWith("message_id", `"017F22E2-79B0-7CC3-98C4-DC0C0C07398F"`, "in_reply_to", `"01arz3ndektsv4rrffq69g5fav"`, "workflow_id", `"01arz3ndektsv4rrffq69g5fav"`),
		msgWith("workflow_id", `"wf:Order/42"`, "version", `null`, "subject", `""`),
	}
	for _, c := range badInputCases() {
		seeds = append(seeds, c.in)
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	fixed := time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, Limits{})
		if utf8.Valid(data) {
			// Parse's fast path must decide as the decoder does.
			slow, slowErr := parseDecoder(data, Limits{})
			require.Equal(t, slowErr, err, "error for %q", data)
			require.Equal(t, slow, m, "message for %q", data)
		}
		if err != nil {
			require.Nil(t, m)
			e, ok := AsError(err)
			require.True(t, ok, "error %T is not an *Error: %v", err, err)
			require.True(t, e.Code.Known(), "code %q is not a declared code", e.Code)
			return
		}
		require.NotNil(t, m)
		checkAccepted(t, m)

		m.Complete(fixed)
		out, err := m.MarshalJSON()
		require.NoError(t, err)
		require.True(t, utf8.Valid(out), "not UTF-8: %q", out)
		require.True(t, json.Valid(out), "not JSON: %s", out)
		var generic map[string]any
		require.NoError(t, json.Unmarshal(out, &generic))

		// Re-validation of our own output never fails, and loses nothing.
		back, err := Parse(out, Limits{})
		require.NoError(t, err, "re-parse of %s (from %q)", out, data)
		require.Equal(t, m, back, "from %q", data)
		again, err := back.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(out), string(again))

		require.True(t, json.Valid(m.AppendContentDigestInput(nil)))
		require.True(t, json.Valid(m.AppendUnsignedJSON(nil)))
		requireContentSHA256(t, m)
	})
}

// requireContentSHA256 asserts that ContentSHA256 gives what the digest
// of the whole digest input gives: the same value, or an error for both.
func requireContentSHA256(t *testing.T, m *Message) {
	t.Helper()
	want, wantErr := CanonicalSHA256(m.AppendContentDigestInput(nil))
	got, _, err := m.ContentSHA256(nil)
	if wantErr != nil {
		require.Error(t, err, "the whole input is refused: %v", wantErr)
		return
	}
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// checkAccepted asserts what every message Parse lets through must satisfy.
func checkAccepted(t *testing.T, m *Message) {
	t.Helper()
	s, err := ParseAddress(m.Sender)
	require.NoError(t, err)
	require.Equal(t, m.Sender, s.String(), "sender is stored normalised")

	require.NotEmpty(t, m.Recipients)
	require.LessOrEqual(t, len(m.Recipients), DefaultMaxRecipients)
	keys := map[string]bool{}
	for _, r := range m.Recipients {
		a, err := ParseAddress(r)
		require.NoError(t, err)
		require.Equal(t, r, a.String(), "recipients are stored normalised")
		require.False(t, keys[a.Key()], "duplicate recipient %s", r)
		keys[a.Key()] = true
	}

	require.True(t, json.Valid(m.Payload))
	require.False(t, isJSONNull(m.Payload))
	require.True(t, m.Version == "" || supportedVersion(m.Version))
	require.True(t, m.MessageID == "" || ValidMessageID(m.MessageID))
	require.True(t, m.IdempotencyKey == "" || ValidIdempotencyKey(m.IdempotencyKey))
	require.True(t, m.InReplyTo == "" || ValidMessageID(m.InReplyTo))
	require.True(t, m.WorkflowID == "" || ValidWorkflowID(m.WorkflowID))
	require.Equal(t, NormalizeMessageID(m.MessageID), m.MessageID, "message_id is stored in its canonical case")
	require.Equal(t, NormalizeMessageID(m.InReplyTo), m.InReplyTo, "in_reply_to is stored in its canonical case")
	require.Equal(t, NormalizeMessageID(m.WorkflowID), m.WorkflowID, "workflow_id is stored in its canonical case")
	if !m.Timestamp.IsZero() {
		require.Equal(t, time.UTC, m.Timestamp.Location())
		require.Zero(t, m.Timestamp.Nanosecond()%int(time.Millisecond))
	}
	require.True(t, validUTF8NoControl(m.Subject))
	for k, v := range m.Headers {
		require.True(t, isToken(k))
		require.False(t, strings.ContainsAny(v, "\r\n\x00"), "header %s", k)
	}
	if len(m.Coordination) > 0 {
		_, err := ParseCoordination(m.Coordination)
		require.NoError(t, err)
	}
	for _, a := range m.Attachments {
		require.True(t, strings.HasPrefix(a.URL, "https://"), a.URL)
		require.False(t, strings.ContainsAny(a.Filename, `/\`))
		require.GreaterOrEqual(t, a.Size, int64(0))
	}
	if m.Signature != nil {
		require.Contains(t, []string{"RS256", "ES256", "EdDSA"}, m.Signature.Algorithm)
	}
	for k, v := range m.Extensions {
		require.NotEmpty(t, k)
		require.True(t, json.Valid(v))
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"bob@example.com",
		"Bob.Smith@EXAMPLE.COM",
		"a!#$%&'*+-/=?^_`{|}~z@x.com",
		"bob@xn--bcher-kva.de",
		"postmaster@localhost",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + ".com",
		"Bob <bob@example.com>",
		`"quoted"@example.com`,
		"bob@[127.0.0.1]",
		"bob@127.0.0.1",
		"bob@0x7f000001",
		"bob@alice@example.com",
		"bob@bücher.de",
		".bob@example.com",
		"bob@example..com",
		"bob@-example.com",
		"",
		"@",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			require.True(t, a.IsZero())
			require.True(t, IsCode(err, CodeInvalidRecipient), "%v", err)
			return
		}
		str := a.String()
		require.NotEmpty(t, a.Local)
		require.NotEmpty(t, a.Domain)
		require.LessOrEqual(t, len(a.Local), MaxLocalPartLen)
		require.LessOrEqual(t, len(a.Domain), MaxDomainLen)
		require.LessOrEqual(t, len(str), MaxAddressLen)
		require.Equal(t, strings.ToLower(a.Domain), a.Domain)
		for i := 0; i < len(str); i++ {
			require.True(t, str[i] > 0x20 && str[i] < 0x7f, "byte %#x in %q", str[i], str)
		}
		require.Equal(t, 1, strings.Count(str, "@"))
		for label := range strings.SplitSeq(a.Domain, ".") {
			require.NotEmpty(t, label)
			require.LessOrEqual(t, len(label), 63)
		}

		// Only the domain's case may change, and the result is a fixed point.
		require.True(t, strings.EqualFold(s, str))
		require.True(t, strings.HasPrefix(s, a.Local+"@"))
		back, err := ParseAddress(str)
		require.NoError(t, err)
		require.Equal(t, a, back)
		d, err := NormalizeDomain(a.Domain)
		require.NoError(t, err)
		require.Equal(t, a.Domain, d)

		// Any change of case names the same mailbox.
		upper, err := ParseAddress(strings.ToUpper(s))
		require.NoError(t, err)
		require.Equal(t, a.Key(), upper.Key())
		require.Equal(t, strings.ToLower(str), a.Key())
		// The shortcuts Parse and the gateway take to these forms.
		require.Equal(t, a.Key(), KeyOf(s))
		require.Equal(t, a.Key(), KeyOf(str))
		require.Equal(t, str, a.stringFrom(s))
	})
}

// FuzzScanJSON holds scanJSON, which stands in for json.Valid on Parse's
// fast path, to json.Valid's decision, and its spaced answer to what
// json.Compact would remove.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{
		msgWith(), draftSection4, draftA1, draftParallel,
		`{}`, `[]`, `{ }`, `[ ]`, ` {"a" : [1 , 2] } `, `"x"`, `-0.5e+10`, `0`, `-`, `01`, `1.`, `.5`, `1e`, `1E-`, `-01`,
		`true`, `false`, `null`, `tru`, `nul`, `truex`, `[true false]`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{,}`, `{1:2}`,
		`"\u00e9\ud83d\ude00"`, `"\u00zz"`, `"\x"`, "\"tab\there\"", `"\/\b\f\n\r\t\"\\"`, `"unterminated`, `[[[]]]`, `[[[]]`, `]`, `}`,
		"{\"a\":\"\xff\"}", "\t\n\r {}", "{} x", "{}{}", "[1]\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid, spaced := scanJSON(data)
		require.Equal(t, json.Valid(data), valid, "%q", data)
		if valid && !spaced {
			var buf bytes.Buffer
			require.NoError(t, json.Compact(&buf, data))
			require.Equal(t, string(data), buf.String(), "%q has no whitespace to compact", data)
		}
	})
}

func TestScanJSONDepth(t *testing.T) {
	for _, depth := range []int{1, 63, 64, 65, maxNestingDepth - 1, maxNestingDepth, maxNestingDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			close := map[string]string{"[": "]", `{"a":`: "}"}[open]
			data := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth))
			valid, _ := scanJSON(data)
			require.Equal(t, json.Valid(data), valid, "%s × %d", open, depth)
			require.Equal(t, depth <= maxNestingDepth, valid, "%s × %d", open, depth)
		}
	}
}
