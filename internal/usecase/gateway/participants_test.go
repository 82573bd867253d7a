package gateway_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
)

// Addresses a sequential or conditional coordination names need not be
// listed in recipients (the draft's examples do not list them); they are
// authorised exactly as recipients are: the policy refuses a denied one,
// and each gets a status.
func TestCoordinationParticipantsAreRecipients(t *testing.T) {
	pol, err := policy.Parse([]byte("default_policy: allow\nrules:\n  - name: quiet\n    action: deny\n    recipients: [\"quiet@example.org\"]\n"))
	require.NoError(t, err)
	cases := []struct {
		name     string
		body     string
		wantCode amtp.Code // "" = accepted
		want     []string  // the message's recipients once accepted
	}{
		{
			name: "conditional, branches not listed",
			body: `{"sender":"boss@example.org","recipients":["approver@example.org"],"payload":{},"coordination":{"type":"conditional","timeout":600,` +
				`"conditions":[{"if":"approver@example.org responds with approve == true","then":["exec@example.org"],"else":["reject@example.org"]}]}}`,
			want: []string{"approver@example.org", "exec@example.org", "reject@example.org"},
		},
		{
			name: "sequential, only the first listed",
			body: `{"sender":"boss@example.org","recipients":["exec@example.org"],"payload":{},"coordination":{"type":"sequential","timeout":600,` +
				`"sequence":["exec@example.org","approver@example.org"]}}`,
			want: []string{"exec@example.org", "approver@example.org"},
		},
		{
			name: "an unlisted participant the policy denies",
			body: `{"sender":"boss@example.org","recipients":["approver@example.org"],"payload":{},"coordination":{"type":"conditional","timeout":600,` +
				`"conditions":[{"if":"approver@example.org responds with approve == true","then":["quiet@example.org"]}]}}`,
			wantCode: amtp.CodePolicyDenied,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			svc, as := localService(t, pol, "boss", "approver", "exec", "reject", "quiet")
			p := as("boss")
			res, err := svc.Accept(ctx, p, []byte(tc.body))
			if tc.wantCode != "" {
				require.Error(t, err)
				assert.True(t, amtp.IsCode(err, tc.wantCode), "%v", err)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, r := range res.Recipients {
				got = append(got, r.Address)
			}
			assert.Equal(t, tc.want, got)
			v, err := svc.WorkflowView(ctx, p, res.MessageID)
			require.NoError(t, err)
			assert.Len(t, v.Participants, len(tc.want))
		})
	}
}
