package email_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/email"
)

// TestRenderReadByTheStandardLibrary: what Render writes is read by code
// that is not ours nor go-message's — the standard library's net/mail,
// mime and mime/multipart, as a receiving mail system would — with the
// headers and the three parts draft §11.2.1 asks for, and the AMTP
// message carried byte for byte.
func TestRenderReadByTheStandardLibrary(t *testing.T) {
	m, raw := amtpMessage(t, "Bestellung Nr. 42 – Größe XL, 東京", `{"order_id":"PO-42","note":"Grüße"}`)
	out, err := email.Render(m, raw, recipient, options)
	require.NoError(t, err)

	msg, err := mail.ReadMessage(bytes.NewReader(out))
	require.NoError(t, err)
	h := msg.Header
	from, err := h.AddressList("From")
	require.NoError(t, err)
	require.Len(t, from, 1)
	assert.Equal(t, bridge.String(), from[0].Address)
	replies, err := h.AddressList("Reply-To")
	require.NoError(t, err)
	assert.Equal(t, replyTo.String(), replies[0].Address)
	to, err := h.AddressList("To")
	require.NoError(t, err)
	assert.Equal(t, recipient.String(), to[0].Address)
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	require.NoError(t, err)
	assert.Equal(t, "[AMTP] Bestellung Nr. 42 – Größe XL, 東京", subject)
	assert.Equal(t, m.MessageID, h.Get("X-AMTP-Message-ID"))
	assert.Equal(t, m.Sender, h.Get("X-AMTP-Sender"))
	assert.Equal(t, m.Schema, h.Get("X-AMTP-Schema"))
	assert.Equal(t, m.IdempotencyKey, h.Get("X-AMTP-Idempotency-Key"))
	assert.True(t, strings.HasPrefix(h.Get("Message-ID"), "<") && strings.HasSuffix(h.Get("Message-ID"), ">"), h.Get("Message-ID"))
	_, err = h.Date()
	assert.NoError(t, err, "Date")
	for _, line := range strings.Split(string(out), "\r\n") {
		assert.LessOrEqual(t, len(line), 998, "RFC 5322 line length")
	}

	parts := map[string][]byte{} // media type → decoded body
	var walk func(contentType string, body io.Reader)
	walk = func(contentType string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(contentType)
		require.NoError(t, err)
		if !strings.HasPrefix(mt, "multipart/") {
			b, err := io.ReadAll(body)
			require.NoError(t, err)
			parts[mt] = b
			return
		}
		parts[mt] = nil
		r := multipart.NewReader(body, params["boundary"])
		for {
			p, err := r.NextRawPart()
			if err == io.EOF {
				return
			}
			require.NoError(t, err)
			walk(p.Header.Get("Content-Type"), decoded(t, p.Header.Get("Content-Transfer-Encoding"), p))
		}
	}
	walk(h.Get("Content-Type"), msg.Body)
	for _, mt := range []string{"multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/json"} {
		assert.Contains(t, parts, mt)
	}
	assert.Equal(t, raw, parts["application/json"], "the AMTP message, byte for byte")
	assert.Contains(t, string(parts["text/plain"]), "note: Grüße")
	assert.Contains(t, string(parts["text/plain"]), options.UpgradeHint)
}

// decoded undoes a part's transfer encoding with the standard library.
func decoded(t *testing.T, cte string, r io.Reader) io.Reader {
	t.Helper()
	switch strings.ToLower(cte) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "", "7bit", "8bit", "binary":
		return r
	}
	t.Fatalf("unknown transfer encoding %q", cte)
	return nil
}
