package email_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
)

var (
	agent      = amtp.MustParseAddress("reports@agents.example")
	bridgeFrom = amtp.MustParseAddress("email-bridge@agents.example")
	now        = time.Date(2024, 12, 2, 14, 5, 0, 123456789, time.UTC)
)

// accepted is what the accept path sees: the JSON of the wrapped message
// parsed as any submission.
func accepted(t *testing.T, m *amtp.Message) *amtp.Message {
	t.Helper()
	raw, err := m.MarshalJSON()
	require.NoError(t, err)
	got, err := amtp.Parse(raw, amtp.Limits{})
	require.NoError(t, err, "the wrapped message is a valid AMTP message")
	return got
}

func TestWrap(t *testing.T) {
	e := readFixture(t, "outlook_attachment.eml")
	m, err := email.Wrap(e, agent, bridgeFrom, now)
	require.NoError(t, err)
	got := accepted(t, m)

	assert.Equal(t, email.SchemaWrapped, got.Schema)
	assert.Equal(t, bridgeFrom.String(), got.Sender)
	assert.Equal(t, []string{agent.String()}, got.Recipients)
	assert.Equal(t, "Q1 report", got.Subject)
	assert.Equal(t, "2024-12-02T14:05:00.123Z", amtp.FormatTime(got.Timestamp))
	assert.True(t, amtp.IsUUID(got.MessageID))
	assert.True(t, amtp.ValidIdempotencyKey(got.IdempotencyKey))

	var p email.WrappedEmail
	require.NoError(t, json.Unmarshal(got.Payload, &p))
	assert.Equal(t, email.WrappedMailbox{Name: "Anna Smith", Address: "anna.smith@contoso.example"}, p.From)
	assert.Equal(t, []email.WrappedMailbox{{Name: "reports@agents.example", Address: "reports@agents.example"}}, p.To)
	assert.Len(t, p.Cc, 2)
	assert.Equal(t, "Q1 report", p.Subject)
	assert.Contains(t, p.Text, "der Bericht für Q1 ist angehängt.")
	assert.Contains(t, p.HTML, `<p class="MsoNormal">`)
	assert.Equal(t, "2024-12-02T14:03:10.000Z", p.Date)
	assert.Equal(t, "DB9PR01MB1234A1B2C3D4E5F6A7B8C9D0E1F2A@DB9PR01MB1234.eurprd01.prod.outlook.example", p.MessageID)
	assert.Empty(t, p.InReplyTo)
	assert.Equal(t, []email.WrappedAttachment{{
		Filename: "Q1-report.pdf", ContentType: "application/pdf", Size: 321,
		SHA256: "a5500d85ae253bba9fb882058202e58d21eb308607639df4eb87b10d51979a9a",
	}}, p.Attachments)
	assert.False(t, p.Truncated)

	// The payload's members are exactly the documented ones.
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(got.Payload, &members))
	for _, k := range []string{"from", "to", "cc", "subject", "text", "html", "date", "message_id", "in_reply_to", "attachments", "truncated"} {
		assert.Contains(t, members, k)
	}
	assert.Len(t, members, 11)
}

// TestWrapIsIdempotent: the same mail delivered twice gives the same ids
// and the same content (so the accept path answers the first acceptance
// again); another recipient, another sender or another mail does not.
func TestWrapIsIdempotent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "gmail_alternative.eml"))
	require.NoError(t, err)
	parse := func(b []byte) *email.Email {
		e, err := email.Parse(bytes.NewReader(b), email.Limits{})
		require.NoError(t, err)
		return e
	}
	digest := func(m *amtp.Message) string { return string(m.AppendContentDigestInput(nil)) }

	first, err := email.Wrap(parse(raw), agent, bridgeFrom, now)
	require.NoError(t, err)
	// A second delivery: another relay added a Received field, later.
	again, err := email.Wrap(parse(append([]byte("Received: from relay2.example\r\n"), raw...)), agent, bridgeFrom, now.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, first.MessageID, again.MessageID)
	assert.Equal(t, first.IdempotencyKey, again.IdempotencyKey)
	assert.Equal(t, digest(first), digest(again))

	other, err := email.Wrap(parse(raw), amtp.MustParseAddress("sales@agents.example"), bridgeFrom, now)
	require.NoError(t, err)
	assert.NotEqual(t, first.IdempotencyKey, other.IdempotencyKey, "another recipient")
	assert.NotEqual(t, first.MessageID, other.MessageID)

	forged := bytes.Replace(raw, []byte("From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen.mueller@gmail.example>"), []byte("From: mallory@evil.example"), 1)
	require.NotEqual(t, raw, forged)
	stranger, err := email.Wrap(parse(forged), agent, bridgeFrom, now)
	require.NoError(t, err)
	assert.NotEqual(t, first.IdempotencyKey, stranger.IdempotencyKey, "a stranger reusing the Message-ID")

	// Without Message-ID the raw mail decides.
	noID := bytes.Replace(raw, []byte("Message-ID: <CAH+kq2Zx9fT4a1bQvW7rN0mLp3sD8eYgU@mail.gmail.example>\r\n"), nil, 1)
	require.NotEqual(t, raw, noID)
	a, err := email.Wrap(parse(noID), agent, bridgeFrom, now)
	require.NoError(t, err)
	b, err := email.Wrap(parse(noID), agent, bridgeFrom, now)
	require.NoError(t, err)
	c, err := email.Wrap(parse(bytes.Replace(noID, []byte("Hallo,"), []byte("Hallo!"), 1)), agent, bridgeFrom, now)
	require.NoError(t, err)
	assert.Equal(t, a.IdempotencyKey, b.IdempotencyKey)
	assert.NotEqual(t, a.IdempotencyKey, c.IdempotencyKey)
	assert.NotEqual(t, first.IdempotencyKey, a.IdempotencyKey)
}

func TestWrapBounds(t *testing.T) {
	e := &email.Email{
		From:    []email.Mailbox{{Name: "Bad\x00Name\r\nX: y", Address: "a@x.example"}},
		Subject: "Broken \xff\xfe subject",
		Text:    strings.Repeat("\xff", 10) + strings.Repeat("€", email.MaxWrappedText),
		HTML:    strings.Repeat("<p>x</p>", email.MaxWrappedHTML),
	}
	for range email.MaxWrappedAttachments + 5 {
		e.Attachments = append(e.Attachments, email.Attachment{Filename: "f", ContentType: "application/octet-stream", Size: 1, SHA256: "00"})
	}
	for range email.MaxWrappedAddresses + 5 {
		e.To = append(e.To, email.Mailbox{Address: "t@x.example"})
	}
	m, err := email.Wrap(e, agent, bridgeFrom, now)
	require.NoError(t, err)
	got := accepted(t, m)
	var p email.WrappedEmail
	require.NoError(t, json.Unmarshal(got.Payload, &p))
	assert.True(t, p.Truncated)
	assert.LessOrEqual(t, len(p.Text), email.MaxWrappedText)
	assert.True(t, strings.HasPrefix(p.Text, "\uFFFD€"), "invalid UTF-8 replaced")
	assert.LessOrEqual(t, len(p.HTML), email.MaxWrappedHTML)
	assert.Len(t, p.Attachments, email.MaxWrappedAttachments)
	assert.Len(t, p.To, email.MaxWrappedAddresses)
	assert.Equal(t, "Bad Name  X: y", p.From.Name)
	assert.Equal(t, "Broken \uFFFD subject", got.Subject)
	assert.Less(t, len(got.Payload), 10<<20, "below the AMTP message size limit")
}

func TestWrapRefuses(t *testing.T) {
	_, err := email.Wrap(&email.Email{}, agent, bridgeFrom, now)
	assert.Error(t, err, "no From")
	e := &email.Email{From: []email.Mailbox{{Address: "a@x.example"}}}
	_, err = email.Wrap(e, amtp.Address{Local: "a\r\nb", Domain: "x.example"}, bridgeFrom, now)
	assert.Error(t, err, "invalid recipient")
	_, err = email.Wrap(e, agent, amtp.Address{}, now)
	assert.Error(t, err, "no sender")
}
