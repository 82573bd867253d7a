package email_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/email"
)

func readFixture(t *testing.T, name string) *email.Email {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	e, err := email.Parse(bytes.NewReader(raw), email.Limits{})
	require.NoError(t, err, name)
	return e
}

// TestParseFixtures reads mails shaped like those the common clients send
// and checks what a person would see in a mail client.
func TestParseFixtures(t *testing.T) {
	cases := []struct {
		file        string
		from        email.Mailbox
		subject     string
		date        time.Time
		messageID   string
		text        []string // substrings of Text
		html        []string // substrings of HTML
		attachments []email.Attachment
		check       func(t *testing.T, e *email.Email)
	}{
		{
			file:      "gmail_alternative.eml",
			from:      email.Mailbox{Name: "Jürgen Müller", Address: "juergen.mueller@gmail.example"},
			subject:   "Angebot für Q1 – bitte prüfen",
			date:      time.Date(2024, 12, 3, 8, 15, 42, 0, time.UTC),
			messageID: "CAH+kq2Zx9fT4a1bQvW7rN0mLp3sD8eYgU@mail.gmail.example",
			text:      []string{"anbei unser Angebot für Q1. Gesamtpreis: 1.234,50 €.\n\nViele Grüße\nJürgen"},
			html:      []string{"anbei unser Angebot für Q1. Gesamtpreis: 1.234,50 €.</div>", "Viele Grüße"},
		},
		{
			file:      "outlook_attachment.eml",
			from:      email.Mailbox{Name: "Anna Smith", Address: "anna.smith@contoso.example"},
			subject:   "Q1 report",
			date:      time.Date(2024, 12, 2, 14, 3, 10, 0, time.UTC),
			messageID: "DB9PR01MB1234A1B2C3D4E5F6A7B8C9D0E1F2A@DB9PR01MB1234.eurprd01.prod.outlook.example",
			text:      []string{"der Bericht für Q1 ist angehängt. Umsatz: 12.500 €.", "Mit freundlichen Grüßen\nAnna Smith"},
			html:      []string{`<p class="MsoNormal">der Bericht für Q1 ist angehängt. Umsatz: 12.500 €.</p>`},
			attachments: []email.Attachment{{
				Filename: "Q1-report.pdf", ContentType: "application/pdf", Size: 321,
				SHA256: "a5500d85ae253bba9fb882058202e58d21eb308607639df4eb87b10d51979a9a",
			}},
			check: func(t *testing.T, e *email.Email) {
				assert.Equal(t, []email.Mailbox{
					{Name: "Smith, Anna", Address: "anna.smith@contoso.example"},
					{Name: "Bob Jones", Address: "bob.jones@contoso.example"},
				}, e.Cc)
			},
		},
		{
			file:      "apple_mail.eml",
			from:      email.Mailbox{Name: "Kenji Tanaka", Address: "kenji@icloud.example"},
			subject:   "Shipment photos",
			date:      time.Date(2024, 12, 4, 9, 2, 11, 0, time.UTC),
			messageID: "3B2A1C0D-9E8F-4A7B-B6C5-D4E3F2A1B0C9@icloud.example",
			text:      []string{"The pallets arrived. Photo attached."},
			html:      []string{`<img src="cid:photo1@icloud.example">`},
			attachments: []email.Attachment{{
				Filename: "pallets.png", ContentType: "image/png", Size: 57,
				SHA256: "b425ea2ae9233b5b3cb3f5e1f0293a1c380a74d2f2f9ad5df79d80a67db98347",
			}},
		},
		{
			file:      "latin1.eml",
			from:      email.Mailbox{Name: "François Dupont", Address: "francois@orange.example"},
			subject:   "Réservation confirmée",
			date:      time.Date(2024, 12, 5, 10, 20, 0, 0, time.UTC),
			messageID: "20241205102000.GA1234@orange.example",
			text:      []string{"Ça va très bien, merci. La réservation à Genève est confirmée.\n\nÀ bientôt,\nFrançois\n"},
		},
		{
			file:      "shiftjis.eml",
			from:      email.Mailbox{Name: "山田太郎", Address: "taro.yamada@example.jp"},
			subject:   "お見積りのご依頼",
			date:      time.Date(2024, 12, 6, 1, 0, 0, 0, time.UTC),
			messageID: "20241206010000.12345@example.jp",
			text:      []string{"いつもお世話になっております。\n見積書を送付いたします。\nよろしくお願いいたします。\n"},
		},
		{
			file:      "long_folded.eml",
			from:      email.Mailbox{Name: "Planning Team", Address: "planner@lists.example"},
			subject:   "Quarterly planning: capacity review for the northern warehouses, the revised delivery windows, and the open questions from last week's call",
			date:      time.Date(2024, 12, 7, 8, 0, 0, 0, time.UTC),
			messageID: "thread-16.a1b2c3@lists.example",
			text:      []string{"See the agenda below."},
			check: func(t *testing.T, e *email.Email) {
				require.Len(t, e.To, 12)
				assert.Equal(t, "agent01@agents.example", e.To[0].Address)
				assert.Equal(t, "agent12@agents.example", e.To[11].Address)
				require.Len(t, e.References, 15)
				assert.Equal(t, "thread-01.a1b2c3@lists.example", e.References[0])
				assert.Equal(t, "thread-15.a1b2c3@lists.example", e.References[14])
				assert.Equal(t, []string{"thread-15.a1b2c3@lists.example"}, e.InReplyTo)
				assert.Equal(t, "agntcy:planning.note.v1", e.AMTPHeader("X-AMTP-Schema"))
			},
		},
		{
			file:      "reply_quoting.eml",
			from:      email.Mailbox{Name: "Orders Desk", Address: "orders@supplier.example"},
			subject:   "Re: [AMTP] Purchase Order PO-2025-001234",
			date:      time.Date(2025, 8, 14, 10, 45, 0, 0, time.UTC),
			messageID: "5f3c2a1b-reply@supplier.example",
			text:      []string{"Confirmed, we ship on Monday. Grüße from the orders desk.\n", "\n> order_id: PO-2025-001234\n"},
			check: func(t *testing.T, e *email.Email) {
				id, ok := e.RepliesTo("retailer.example")
				require.True(t, ok)
				assert.Equal(t, "0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f", id)
				_, ok = e.RepliesTo("supplier.example")
				assert.False(t, ok, "an id rendered for another domain is not ours")
				assert.Equal(t, []email.Mailbox{{Name: "purchase-agent@retailer.example via AMTP", Address: "reply+abc@retailer.example"}}, e.To)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			e := readFixture(t, c.file)
			require.Len(t, e.From, 1)
			assert.Equal(t, c.from, e.From[0])
			assert.Equal(t, c.subject, e.Subject)
			assert.True(t, c.date.Equal(e.Date), "date %s", e.Date)
			assert.Equal(t, c.messageID, e.MessageID)
			for _, s := range c.text {
				assert.Contains(t, e.Text, s)
			}
			for _, s := range c.html {
				assert.Contains(t, e.HTML, s)
			}
			if len(c.html) == 0 {
				assert.Empty(t, e.HTML)
			}
			assert.Equal(t, c.attachments, e.Attachments)
			assert.NotContains(t, e.Text, "\r", "line breaks are \\n")
			_, carried := e.AMTPMessage()
			assert.False(t, carried)
			if c.check != nil {
				c.check(t, e)
			}
		})
	}
}

func TestRepliesTo(t *testing.T) {
	const ours = "0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f"
	older := "018f0000-0000-7000-8000-000000000001"
	cases := []struct {
		name       string
		inReplyTo  []string
		references []string
		domain     string
		want       string
	}{
		{"in-reply-to", []string{"amtp." + ours + "@retailer.example"}, nil, "retailer.example", ours},
		{"domain compared without case", []string{"amtp." + ours + "@Retailer.EXAMPLE"}, nil, "RETAILER.example.", ours},
		{"id in canonical case", []string{"AMTP." + "0190B4B2-6F2A-7CC3-98C4-DC0C0C07398F" + "@retailer.example"}, nil, "retailer.example", ours},
		{"references, newest first", []string{"someone@else.example"},
			[]string{"amtp." + older + "@retailer.example", "x@y.example", "amtp." + ours + "@retailer.example"}, "retailer.example", ours},
		{"in-reply-to before references", []string{"amtp." + older + "@retailer.example"},
			[]string{"amtp." + ours + "@retailer.example"}, "retailer.example", older},
		{"another domain's id", []string{"amtp." + ours + "@evil.example"}, nil, "retailer.example", ""},
		{"a subdomain is another domain", []string{"amtp." + ours + "@x.retailer.example"}, nil, "retailer.example", ""},
		{"not an AMTP id", []string{"amtp.not-an-id@retailer.example"}, nil, "retailer.example", ""},
		{"no prefix", []string{ours + "@retailer.example"}, nil, "retailer.example", ""},
		{"no domain asked", []string{"amtp." + ours + "@retailer.example"}, nil, "", ""},
		{"nothing", nil, nil, "retailer.example", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &email.Email{InReplyTo: c.inReplyTo, References: c.references}
			id, ok := e.RepliesTo(c.domain)
			assert.Equal(t, c.want, id)
			assert.Equal(t, c.want != "", ok)
		})
	}
}

// TestParseParts covers part shapes the fixtures do not: encoded file
// names, a forwarded message, JSON parts that are and are not AMTP
// messages, inline text split around an image.
func TestParseParts(t *testing.T) {
	_, raw := amtpMessage(t, "Order", `{"a":1}`)
	const head = "From: a@x.example\r\nTo: b@y.example\r\nSubject: parts\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n"
	body := head +
		"--mixed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBefore the image.\r\n" +
		"--mixed\r\nContent-Type: image/gif\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n" +
		"--mixed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAfter the image.\r\n" +
		"--mixed\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf\r\n\r\n%PDF\r\n" +
		"--mixed\r\nContent-Type: text/csv; name=\"=?UTF-8?B?5pel5pysLmNzdg==?=\"\r\nContent-Disposition: attachment\r\n\r\na,b\r\n" +
		"--mixed\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@z.example\r\nSubject: forwarded\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n" +
		"--mixed\r\nContent-Type: application/json\r\n\r\n{\"not\":\"an AMTP message\"}\r\n" +
		"--mixed\r\nContent-Type: application/json; name=amtp-message.json\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64Lines(raw) + "\r\n" +
		"--mixed--\r\n"
	e, err := email.Parse(strings.NewReader(body), email.Limits{})
	require.NoError(t, err)
	assert.Equal(t, "Before the image.\nAfter the image.", e.Text)
	names := []string{}
	for _, a := range e.Attachments {
		names = append(names, a.Filename+" "+a.ContentType)
	}
	assert.Equal(t, []string{" image/gif", "Rechnung März.pdf application/pdf", "日本.csv text/csv", " message/rfc822", " application/json", "amtp-message.json application/json"}, names)
	assert.NotContains(t, e.Text, "Inner text", "a forwarded message is an attachment, not walked")
	carried, ok := e.AMTPMessage()
	require.True(t, ok, "the JSON part that is an AMTP message is found, the other is not")
	assert.Equal(t, raw, carried)
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out []string
	for len(s) > 76 {
		out = append(out, s[:76])
		s = s[76:]
	}
	return strings.Join(append(out, s), "\r\n")
}
