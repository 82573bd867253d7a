package email_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
)

func FuzzParse(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	require.NoError(f, err)
	for _, name := range fixtures {
		raw, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(raw)
	}
	m, raw := amtpMessage(f, "Grüße", `{"a":[1,{"b":"c"}]}`)
	rendered, err := email.Render(m, raw, recipient, options)
	require.NoError(f, err)
	f.Add(rendered)
	for _, s := range []string{manyHeaders(20), nestedMultipart(12), manyParts(5), "", "\r\n", "From: a@b\r\n\r\n",
		hostileHead + "Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/html; charset=shift_jis\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=82=A0\r\n--x--\r\n"} {
		f.Add([]byte(s))
	}
	limits := email.Limits{MaxBytes: 64 << 10, MaxHeaders: 50, MaxParts: 20, MaxDepth: 5, MaxPartBytes: 32 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := email.Parse(bytes.NewReader(data), limits)
		if err != nil {
			require.True(t, errors.Is(err, email.ErrTooLarge) || errors.Is(err, email.ErrMalformed), "%v", err)
			return
		}
		require.NotEmpty(t, e.From)
		assert.True(t, utf8.ValidString(e.Text) && utf8.ValidString(e.HTML) && utf8.ValidString(e.Subject))
		assert.LessOrEqual(t, len(e.Attachments), limits.MaxParts)
		for _, a := range e.Attachments {
			assert.LessOrEqual(t, a.Size, limits.MaxPartBytes)
		}
		if carried, ok := e.AMTPMessage(); ok {
			_, err := amtp.Parse(carried, amtp.Limits{})
			assert.NoError(t, err)
		}
		wrapped, err := email.Wrap(e, agent, bridgeFrom, now)
		require.NoError(t, err)
		js, err := wrapped.MarshalJSON()
		require.NoError(t, err)
		_, err = amtp.Parse(js, amtp.Limits{})
		require.NoError(t, err, "a wrapped email is a valid AMTP message")
	})
}

// renderedFields are the only header fields Render writes at the top.
var renderedFields = map[string]bool{
	"Date": true, "From": true, "Reply-To": true, "To": true, "Subject": true, "Message-Id": true,
	"In-Reply-To": true, "References": true, "Mime-Version": true, "Auto-Submitted": true,
	email.HeaderMessageID: true, email.HeaderSender: true, email.HeaderSchema: true,
	email.HeaderIdempotencyKey: true, "Content-Type": true,
}

func FuzzRender(f *testing.F) {
	f.Add("Purchase order", "agent@x.example", "agntcy:a.b.v1", "key-1", "priority", "high", []byte(`{"a":1}`), "hint")
	f.Add("x\r\nBcc: v@evil.example", "a\nb", "s\x00", "k\rX: y", "h\r\n", "v\r\n\r\n", []byte(`{"a":"\r\n--b--"}`), "\r\n.\r\n")
	f.Add("=?utf-8?q?x?=", "東京@x.example", "", "", "", "", []byte(`"plain"`), "")
	f.Add(strings.Repeat("é", 600), strings.Repeat("a", 300), strings.Repeat("s", 300), strings.Repeat("k", 200), "", "", []byte(`[[[[[[]]]]]]`), strings.Repeat("h ", 600))
	f.Fuzz(func(t *testing.T, subject, sender, schema, key, hk, hv string, payload []byte, hint string) {
		m, raw := amtpMessage(t, "x", `{}`)
		m.Subject, m.Sender, m.Schema, m.IdempotencyKey, m.Headers = subject, sender, schema, key, map[string]string{hk: hv}
		m.Payload = payload
		if !json.Valid(payload) {
			m.Payload, _ = json.Marshal(string(payload))
		}
		o := options
		o.UpgradeHint = hint
		out, err := email.Render(m, raw, recipient, o)
		require.NoError(t, err)
		// A long word (an id, an address) cannot fold below 998.
		assertLines(t, out, 998)

		ent, err := message.Read(bytes.NewReader(out))
		require.NoError(t, err)
		fields := ent.Header.Fields()
		for fields.Next() {
			assert.True(t, renderedFields[fields.Key()], "unexpected field %q", fields.Key())
		}
		e, err := email.Parse(bytes.NewReader(out), email.Limits{})
		require.NoError(t, err)
		carried, ok := e.AMTPMessage()
		require.True(t, ok)
		assert.Equal(t, raw, carried)
	})
}
