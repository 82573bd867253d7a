package email_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
)

var (
	bridge    = amtp.MustParseAddress("amtp-bridge@retailer.example")
	replyTo   = amtp.MustParseAddress("reply+0190b4b2@retailer.example")
	recipient = amtp.MustParseAddress("orders@supplier.example")
	options   = email.RenderOptions{
		Bridge: bridge, ReplyTo: replyTo,
		UpgradeHint: `_amtp.supplier.example. IN TXT "v=amtp1;gateway=https://amtp.supplier.example"`,
	}
)

// amtpMessage builds the raw JSON of a complete message and parses it.
func amtpMessage(t testing.TB, subject, payload string) (*amtp.Message, []byte) {
	t.Helper()
	fields := map[string]any{
		"version":         "1.0",
		"message_id":      amtp.NewUUIDv7(),
		"idempotency_key": amtp.NewUUIDv4(),
		"timestamp":       "2025-08-14T10:30:00.123Z",
		"sender":          "purchase-agent@retailer.example",
		"recipients":      []string{recipient.String()},
		"schema":          "agntcy:commerce.order.v2",
		"payload":         json.RawMessage(payload),
	}
	if subject != "" {
		fields["subject"] = subject
	}
	raw, err := json.Marshal(fields)
	require.NoError(t, err)
	m, err := amtp.Parse(raw, amtp.Limits{})
	require.NoError(t, err)
	return m, raw
}

func largePayload() string {
	items := make([]string, 0, 20000)
	for i := range 20000 {
		items = append(items, fmt.Sprintf(`{"sku":"SKU-%05d","qty":%d,"note":"Größe %d – 東京"}`, i, i, i))
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

// TestRoundTrip: AMTP → Render → Parse → the carried AMTP message is the
// message sent, and the envelope says what the draft's §11.2.1 asks.
func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name, subject, payload string
	}{
		{"nested objects", "Purchase order", `{"order":{"id":"PO-1","customer":{"name":"Retailer","address":{"city":"Commerce City"}}}}`},
		{"arrays", "Items", `{"items":[{"sku":"A","qty":1},{"sku":"B","qty":2}],"tags":["x","y"],"matrix":[[1,2],[3]]}`},
		{"numbers", "Numbers", `{"int":42,"neg":-7,"float":29.99,"exp":1e21,"zero":0,"big":9007199254740991}`},
		{"unicode", "Grüße aus Köln – 東京 🚀", `{"text":"こんにちは世界","emoji":"😀","rtl":"שלום","combining":"e\u0301"}`},
		{"empty object", "", `{}`},
		{"primitive payload", "Just text", `"a plain string payload"`},
		{"multi-line strings", "Lines", `{"notes":"first\nsecond\r\nthird","tab":"a\tb"}`},
		{"looks like an encoded-word", "=?utf-8?q?not_encoded?= literally", `{"a":"=?utf-8?b?eA==?="}`},
		{"long non-ASCII subject", strings.Repeat("Überweisung für Lieferung 東京 ", 25), `{"a":1}`},
		{"large", "Large order", largePayload()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, raw := amtpMessage(t, c.subject, c.payload)
			out, err := email.Render(m, raw, recipient, options)
			require.NoError(t, err)
			assertWellFormed(t, out)

			e, err := email.Parse(bytes.NewReader(out), email.Limits{})
			require.NoError(t, err)
			carried, ok := e.AMTPMessage()
			require.True(t, ok, "the AMTP part is found")
			assert.Equal(t, raw, carried)
			got, err := amtp.Parse(carried, amtp.Limits{})
			require.NoError(t, err)
			assert.JSONEq(t, c.payload, string(got.Payload))
			assert.Equal(t, m.MessageID, got.MessageID)
			assert.Equal(t, m.IdempotencyKey, got.IdempotencyKey)
			assert.Equal(t, m.Schema, got.Schema)
			assert.Equal(t, m.Sender, got.Sender)
			assert.Equal(t, m.Subject, got.Subject)

			wantSubject := "[AMTP] " + strings.TrimSpace(c.subject)
			if c.subject == "" {
				wantSubject = "[AMTP] Message from " + m.Sender
			}
			assert.Equal(t, wantSubject, e.Subject)
			assert.Equal(t, []email.Mailbox{{Name: m.Sender + " via AMTP", Address: bridge.String()}}, e.From)
			assert.Equal(t, []email.Mailbox{{Address: recipient.String()}}, e.To)
			assert.Equal(t, email.BridgedMessageID(m.MessageID, bridge.Domain), e.MessageID)
			assert.True(t, m.Timestamp.Truncate(1e9).Equal(e.Date))
			assert.Equal(t, m.MessageID, e.AMTPHeader(email.HeaderMessageID))
			assert.Equal(t, m.Sender, e.AMTPHeader(email.HeaderSender))
			assert.Equal(t, m.Schema, e.AMTPHeader(email.HeaderSchema))
			assert.Equal(t, m.IdempotencyKey, e.AMTPHeader(email.HeaderIdempotencyKey))
			assert.Contains(t, e.Text, options.UpgradeHint)
			assert.Contains(t, e.HTML, "_amtp.supplier.example. IN TXT &#34;v=amtp1;gateway=https://amtp.supplier.example&#34;")
			require.Len(t, e.Attachments, 1)
			assert.Equal(t, email.AttachmentName, e.Attachments[0].Filename)
			assert.Equal(t, "application/json", e.Attachments[0].ContentType)

			// A person's answer to it maps back to the message.
			reply := &email.Email{InReplyTo: []string{e.MessageID}}
			id, ok := reply.RepliesTo(bridge.Domain)
			require.True(t, ok)
			assert.Equal(t, m.MessageID, id)

			again, err := email.Render(m, raw, recipient, options)
			require.NoError(t, err)
			assert.Equal(t, out, again, "a retried send renders the same bytes")
		})
	}
}

// assertWellFormed checks RFC 5322 line rules and that every byte is
// 7-bit: non-ASCII text travels as encoded-words, quoted-printable or
// base64. Header lines are folded to 78 where the text has room to fold.
func assertWellFormed(t *testing.T, out []byte) {
	t.Helper()
	assertLines(t, out, 78)
}

func assertLines(t *testing.T, out []byte, maxHeaderLine int) {
	t.Helper()
	require.True(t, bytes.HasSuffix(out, []byte("\r\n")))
	head, _, found := bytes.Cut(out, []byte("\r\n\r\n"))
	require.True(t, found)
	for i, line := range bytes.Split(out[:len(out)-2], []byte("\r\n")) {
		assert.NotContains(t, string(line), "\r", "bare CR on line %d", i)
		assert.NotContains(t, string(line), "\n", "bare LF on line %d", i)
		assert.LessOrEqual(t, len(line), 998, "line %d", i)
		for _, c := range line {
			if c >= 0x7f || (c < 0x20 && c != '\t') {
				t.Fatalf("8-bit or control byte on line %d: %q", i, line)
			}
		}
	}
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		assert.LessOrEqual(t, len(line), maxHeaderLine, "header line %q is folded", line)
	}
}

// TestRenderPresentsPayload: the text part shows labelled fields a person
// reads, not a JSON dump, and the HTML part shows the same, escaped.
func TestRenderPresentsPayload(t *testing.T) {
	m, raw := amtpMessage(t, "Purchase Order PO-2025-001234", `{
		"order_id": "PO-2025-001234",
		"customer": {"company_name": "Retailer <Corp> & Co", "billing_address": {"street": "123 Business Ave", "city": "Commerce City"}},
		"items": [{"sku": "WIDGET-001", "quantity": 100, "unit_price": 29.99}, {"sku": "GADGET-002", "quantity": 50}],
		"tags": ["urgent", "q1"],
		"empty": {},
		"none": [],
		"notes": "line one\nline two",
		"script": "<script>alert(1)</script>"
	}`)
	out, err := email.Render(m, raw, recipient, options)
	require.NoError(t, err)
	e, err := email.Parse(bytes.NewReader(out), email.Limits{})
	require.NoError(t, err)

	assert.Contains(t, e.Text, strings.Join([]string{
		"order_id: PO-2025-001234",
		"customer:",
		"  company_name: Retailer <Corp> & Co",
		"  billing_address:",
		"    street: 123 Business Ave",
		"    city: Commerce City",
		"items:",
		"  - sku: WIDGET-001",
		"    quantity: 100",
		"    unit_price: 29.99",
		"  - sku: GADGET-002",
		"    quantity: 50",
		"tags:",
		"  - urgent",
		"  - q1",
		"empty: (empty)",
		"none: (none)",
		"notes: |",
		"  line one",
		"  line two",
		"script: <script>alert(1)</script>",
	}, "\n"))
	for _, s := range []string{"From:        purchase-agent@retailer.example", "Schema:      agntcy:commerce.order.v2", "Message ID:  " + m.MessageID, "Sent:        2025-08-14T10:30:00.123Z"} {
		assert.Contains(t, e.Text, s)
	}
	assert.NotContains(t, e.Text, `"order_id"`, "not a JSON dump")

	assert.Contains(t, e.HTML, "<strong>company_name:</strong> Retailer &lt;Corp&gt; &amp; Co")
	assert.Contains(t, e.HTML, "<strong>script:</strong> &lt;script&gt;alert(1)&lt;/script&gt;")
	assert.NotContains(t, e.HTML, "<script>")
	assert.Contains(t, e.HTML, "<li><strong>sku:</strong> WIDGET-001</li>")
}

// TestRenderNoHeaderInjection puts CR, LF, CRLF, NUL and other controls
// into every field Render writes: none may start a header field of its
// own, in the message or in any part; ids and addresses that are not
// valid are refused instead.
func TestRenderNoHeaderInjection(t *testing.T) {
	attacks := []string{
		"x\r\nBcc: victim@evil.example\r\nX-Injected: 1",
		"x\nBcc: victim@evil.example\nX-Injected: 1",
		"x\rBcc: victim@evil.example\rX-Injected: 1",
		"x\r\n\r\nX-Injected: 1",
		"x\x00X-Injected: 1\x0bBcc: victim@evil.example",
		"x\u2028X-Injected: 1\u0085Bcc: victim@evil.example",
	}
	fields := []struct {
		name   string
		mutate func(m *amtp.Message, o *email.RenderOptions, to *amtp.Address, s string)
		refuse bool
	}{
		{"subject", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.Subject = s }, false},
		{"sender", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.Sender = s }, false},
		{"schema", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.Schema = s }, false},
		{"idempotency key", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.IdempotencyKey = s }, false},
		{"headers", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) {
			m.Headers = map[string]string{s: s}
		}, false},
		{"workflow id", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.WorkflowID = s }, false},
		{"in reply to", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.InReplyTo = s }, false},
		{"attachment", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) {
			m.Attachments = []amtp.Attachment{{Filename: s, ContentType: s, URL: s}}
		}, false},
		{"upgrade hint", func(_ *amtp.Message, o *email.RenderOptions, _ *amtp.Address, s string) { o.UpgradeHint = s }, false},
		{"message id", func(m *amtp.Message, _ *email.RenderOptions, _ *amtp.Address, s string) { m.MessageID = s }, true},
		{"recipient", func(_ *amtp.Message, _ *email.RenderOptions, to *amtp.Address, s string) { to.Local = s }, true},
		{"bridge", func(_ *amtp.Message, o *email.RenderOptions, _ *amtp.Address, s string) { o.Bridge.Local = s }, true},
		{"reply-to", func(_ *amtp.Message, o *email.RenderOptions, _ *amtp.Address, s string) { o.ReplyTo.Domain = s }, true},
	}
	for _, f := range fields {
		for i, attack := range attacks {
			t.Run(fmt.Sprintf("%s/%d", f.name, i), func(t *testing.T) {
				m, raw := amtpMessage(t, "Order", `{"a":1}`)
				o, to := options, recipient
				f.mutate(m, &o, &to, attack)
				out, err := email.Render(m, raw, to, o)
				if f.refuse {
					require.Error(t, err)
					return
				}
				require.NoError(t, err)
				assertWellFormed(t, out)
				assertNoInjectedField(t, out)
			})
		}
	}
}

// assertNoInjectedField walks every part and checks that no header block
// has a Bcc or X-Injected field.
func assertNoInjectedField(t *testing.T, out []byte) {
	t.Helper()
	ent, err := message.Read(bytes.NewReader(out))
	require.NoError(t, err)
	parts := 0
	require.NoError(t, ent.Walk(func(_ []int, part *message.Entity, err error) error {
		require.NoError(t, err)
		parts++
		assert.False(t, part.Header.Has("Bcc"), "Bcc injected")
		assert.False(t, part.Header.Has("X-Injected"), "X-Injected injected")
		if mt, _, _ := part.Header.ContentType(); strings.HasPrefix(mt, "multipart/") {
			return nil // Walk reads its parts
		}
		_, err = io.Copy(io.Discard, part.Body)
		return err
	}))
	assert.Equal(t, 5, parts, "mixed, alternative, text, html, json: no part was added")
}

func TestRenderRefusesIncompleteMessages(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m *amtp.Message)
	}{
		{"no message id", func(m *amtp.Message) { m.MessageID = "" }},
		{"no timestamp", func(m *amtp.Message) { m.Timestamp = time.Time{} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, raw := amtpMessage(t, "x", `{}`)
			c.mutate(m)
			_, err := email.Render(m, raw, recipient, options)
			assert.Error(t, err)
		})
	}
	m, _ := amtpMessage(t, "x", `{}`)
	_, err := email.Render(m, nil, recipient, options)
	assert.Error(t, err, "no raw bytes")
	_, err = email.Render(nil, []byte("{}"), recipient, options)
	assert.Error(t, err, "no message")
}
