package awsgw

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/delivery"
)

// TestBouncesOf: which SES notifications fail a bridged recipient.
func TestBouncesOf(t *testing.T) {
	const id = "0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f"
	mail := `"mail":{"messageId":"ses-1","headers":[{"name":"X-Amtp-Message-Id","value":"` + id + `"}]}`
	for _, tc := range []struct {
		name string
		body string
		want []delivery.Bounce
		err  string
	}{
		{name: "permanent bounce", body: `{"notificationType":"Bounce",` + mail + `,"bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"bob@mx.test","status":"5.1.1","diagnosticCode":"smtp; 550 user unknown"},{"emailAddress":"carol@mx.test","status":"5.2.2"}]}}`,
			want: []delivery.Bounce{{MessageID: id, Recipient: "bob@mx.test", Reason: "smtp; 550 user unknown"}, {MessageID: id, Recipient: "carol@mx.test", Reason: "5.2.2"}}},
		{name: "complaint (event publishing)", body: `{"eventType":"Complaint",` + mail + `,"complaint":{"complainedRecipients":[{"emailAddress":"bob@mx.test"}]}}`,
			want: []delivery.Bounce{{MessageID: id, Recipient: "bob@mx.test", Complaint: true}}},
		{name: "transient bounce", body: `{"notificationType":"Bounce",` + mail + `,"bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"bob@mx.test"}]}}`, err: "not final"},
		{name: "delivery", body: `{"notificationType":"Delivery",` + mail + `,"delivery":{"recipients":["bob@mx.test"]}}`, err: "not final"},
		{name: "headers left out", body: `{"notificationType":"Bounce","mail":{"messageId":"ses-2"},"bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"bob@mx.test"}]}}`, err: "carries no AMTP message id"},
		{name: "not SES", body: `{"hello":"world"}`, err: "not a bounce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bouncesOf([]byte(tc.body))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestSampleBounceEvent: events/sns-ses-bounce.json (what `sam local
// invoke EmailEvents -e` sends) is a bounce of a bridged email.
func TestSampleBounceEvent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "events", "sns-ses-bounce.json"))
	require.NoError(t, err)
	var ev struct {
		Records []struct {
			Sns struct{ Message string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &ev))
	require.Len(t, ev.Records, 1)
	got, err := bouncesOf([]byte(ev.Records[0].Sns.Message))
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "bob@mail.example", got[0].Recipient)
}
