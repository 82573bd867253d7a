package ses_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/ses"
)

const (
	sesMailID  = "0100018f2a1b2c3d-4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8-000000"
	amtpMailID = "0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseNotification(t *testing.T) {
	cases := []struct {
		file  string
		want  ses.Notification
		final bool
	}{
		{"bounce_permanent_sns.json", ses.Notification{
			Type: ses.TypeBounce, BounceType: ses.BouncePermanent, BounceSubType: "General",
			Recipients: []ses.Recipient{{Address: "orders@supplier.example", Status: "5.1.1",
				Diagnostic: "smtp; 550 5.1.1 <orders@supplier.example>: Recipient address rejected: User unknown  X-Injected: 1"}},
			MailID: sesMailID, AMTPMessageID: amtpMailID,
		}, true},
		{"bounce_transient_sns.json", ses.Notification{
			Type: ses.TypeBounce, BounceType: ses.BounceTransient, BounceSubType: "MailboxFull",
			Recipients: []ses.Recipient{{Address: "orders@supplier.example", Status: "4.2.2", Diagnostic: "smtp; 452 4.2.2 Mailbox full"}},
			MailID:     sesMailID, AMTPMessageID: amtpMailID,
		}, false},
		{"complaint_sns.json", ses.Notification{
			Type: ses.TypeComplaint, Recipients: []ses.Recipient{{Address: "orders@supplier.example"}}, MailID: sesMailID,
		}, true},
		{"delivery_event.json", ses.Notification{
			Type: ses.TypeDelivery, Recipients: []ses.Recipient{{Address: "orders@supplier.example"}}, MailID: sesMailID, AMTPMessageID: amtpMailID,
		}, false},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			n, err := ses.ParseNotification(fixture(t, c.file))
			require.NoError(t, err)
			assert.Equal(t, c.want, n)
			assert.Equal(t, c.final, n.Final())
		})
	}
}

func TestParseNotificationRefuses(t *testing.T) {
	big := `{"notificationType":"Delivery","delivery":{"recipients":["` + strings.Repeat("a", ses.MaxNotificationBytes) + `"]},"mail":{}}`
	cases := []struct {
		name    string
		body    string
		notNote bool
	}{
		{"a subscription confirmation", string(fixture(t, "subscription_confirmation.json")), true},
		{"another event type", `{"eventType":"Open","open":{},"mail":{"messageId":"x"}}`, true},
		{"a bounce without its bounce", `{"notificationType":"Bounce","mail":{"messageId":"x"}}`, true},
		{"an SNS notification whose message is not JSON", `{"Type":"Notification","Message":"hello"}`, false},
		{"not JSON", `<xml/>`, false},
		{"too large", big, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ses.ParseNotification([]byte(c.body))
			require.Error(t, err)
			assert.Equal(t, c.notNote, errors.Is(err, ses.ErrNotNotification), "%v", err)
		})
	}
}

func TestParseNotificationBoundsRecipients(t *testing.T) {
	var rcpts []string
	for range 500 {
		rcpts = append(rcpts, `{"emailAddress":"x@y.example"}`)
	}
	body := `{"notificationType":"Complaint","complaint":{"complainedRecipients":[` + strings.Join(rcpts, ",") + `]},"mail":{"messageId":"m"}}`
	n, err := ses.ParseNotification([]byte(body))
	require.NoError(t, err)
	assert.Len(t, n.Recipients, 100)
}

func FuzzParseNotification(f *testing.F) {
	for _, name := range []string{"bounce_permanent_sns.json", "bounce_transient_sns.json", "complaint_sns.json", "delivery_event.json", "subscription_confirmation.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"Type":"Notification","Message":"{\"notificationType\":\"Bounce\",\"bounce\":{\"bouncedRecipients\":[{}]}}"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ses.ParseNotification(body)
		if err != nil {
			return
		}
		require.Contains(t, []string{ses.TypeBounce, ses.TypeComplaint, ses.TypeDelivery}, n.Type)
		assert.LessOrEqual(t, len(n.Recipients), 100)
		for _, s := range append([]string{n.MailID, n.AMTPMessageID, n.BounceType}, recipientTexts(n)...) {
			for _, r := range s {
				assert.True(t, r >= 0x20 && r <= 0x7e, "printable ASCII only: %q", s)
			}
		}
	})
}

func recipientTexts(n ses.Notification) []string {
	var out []string
	for _, r := range n.Recipients {
		out = append(out, r.Address, r.Status, r.Diagnostic)
	}
	return out
}

func TestReceiptVerdicts(t *testing.T) {
	var rec events.SimpleEmailReceipt
	require.NoError(t, json.Unmarshal([]byte(`{
		"recipients": ["orders@agents.example"],
		"timestamp": "2025-08-14T10:45:00.000Z",
		"spamVerdict": {"status": "PASS"},
		"virusVerdict": {"status": "PASS"},
		"spfVerdict": {"status": "PASS"},
		"dkimVerdict": {"status": "FAIL"},
		"dmarcVerdict": {"status": "FAIL"},
		"dmarcPolicy": "REJECT",
		"action": {"type": "Lambda", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:inbound-email", "invocationType": "Event"},
		"processingTimeMillis": 574
	}`), &rec))
	v := ses.ReceiptVerdicts(rec)
	assert.Equal(t, ses.Verdicts{SPF: "PASS", DKIM: "FAIL", DMARC: "FAIL", Spam: "PASS", Virus: "PASS", DMARCPolicy: "REJECT"}, v)
	assert.False(t, v.Authenticated())
	assert.True(t, v.Clean())

	cases := []struct {
		name                 string
		v                    ses.Verdicts
		authenticated, clean bool
	}{
		{"all pass", ses.Verdicts{SPF: "PASS", DKIM: "PASS", DMARC: "PASS", Spam: "PASS", Virus: "PASS"}, true, true},
		{"virus", ses.Verdicts{DMARC: "PASS", Spam: "PASS", Virus: "FAIL"}, true, false},
		{"spam gray", ses.Verdicts{DMARC: "PASS", Spam: "GRAY", Virus: "PASS"}, true, false},
		{"checks disabled", ses.Verdicts{DMARC: "GRAY", Spam: "DISABLED", Virus: "DISABLED"}, false, false},
		{"nothing", ses.Verdicts{}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.authenticated, c.v.Authenticated())
			assert.Equal(t, c.clean, c.v.Clean())
		})
	}
}
