package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// countingLimiter records which buckets Accept charges.
type countingLimiter struct {
	inner   policy.Limiter
	charged []string
}

func (c *countingLimiter) Allow(ctx context.Context, key string, l policy.Limit, now time.Time) (bool, time.Duration, error) {
	c.charged = append(c.charged, key)
	return c.inner.Allow(ctx, key, l, now)
}

// TestAcceptAppliesPolicy: the policy decides each (sender, recipient)
// pair before anything is stored; each bucket is charged once per message.
func TestAcceptAppliesPolicy(t *testing.T) {
	const src = `
default_policy: allow
rules:
  - name: quiet
    action: deny
    recipients: ["quiet@example.org"]
  - name: partners
    action: allow
    senders: ["*@example.org"]
    recipients: ["p1@example.org", "p2@example.org"]
    rate_limit: 2/hour
    per: domain
`
	pol, err := policy.Parse([]byte(src))
	require.NoError(t, err)
	cases := []struct {
		name        string
		recipients  string
		coordinated bool
		sends       int
		wantCode    amtp.Code // of the last send; "" = accepted
		wantCharged int       // bucket charges over all sends
		wantFailed  []string  // recipients failed POLICY_DENIED in the last send
	}{
		{name: "unlimited recipient", recipients: `["p3@example.org"]`, sends: 3, wantCharged: 0},
		{name: "two limited recipients, one bucket, one charge", recipients: `["p1@example.org","p2@example.org"]`, sends: 1, wantCharged: 1},
		{name: "third message in the hour is throttled", recipients: `["p1@example.org"]`, sends: 3, wantCode: amtp.CodeRateLimitExceeded, wantCharged: 3},
		{name: "only recipient denied", recipients: `["quiet@example.org"]`, sends: 1, wantCode: amtp.CodePolicyDenied},
		{name: "denied and unknown", recipients: `["quiet@example.org","ghost@example.org"]`, sends: 1, wantCode: amtp.CodePolicyDenied},
		{name: "one of two denied", recipients: `["quiet@example.org","p3@example.org"]`, sends: 1, wantFailed: []string{"quiet@example.org"}},
		{name: "workflow with a denied participant", recipients: `["quiet@example.org","p3@example.org"]`, coordinated: true, sends: 1, wantCode: amtp.CodePolicyDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
			require.NoError(t, err)
			defer func() { assert.NoError(t, db.Close()) }()
			for _, name := range []string{"alice", "quiet", "p1", "p2", "p3"} {
				require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: name + "@example.org", DeliveryMode: gateway.ModePull}))
			}
			lim := &countingLimiter{inner: policy.NewMemoryLimiter()}
			svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
				gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, Policy: pol, Limiter: lim})
			require.NoError(t, err)

			var (
				res     *gateway.AcceptResult
				lastErr error
			)
			for i := range tc.sends {
				coord := ""
				if tc.coordinated {
					coord = `,"coordination":{"type":"parallel","timeout":60}`
				}
				body := fmt.Sprintf(`{"version":"1.0","sender":"alice@example.org","recipients":%s,"idempotency_key":"k-%d","payload":{"n":%d}%s}`, tc.recipients, i, i, coord)
				res, lastErr = svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller}, []byte(body))
			}
			assert.Len(t, lim.charged, tc.wantCharged, "bucket charges: %v", lim.charged)
			if tc.wantCode != "" {
				e, ok := amtp.AsError(lastErr)
				require.True(t, ok, "want %s, got %v", tc.wantCode, lastErr)
				assert.Equal(t, tc.wantCode, e.Code)
				return
			}
			require.NoError(t, lastErr)
			var failed []string
			for _, st := range res.Recipients {
				if st.ErrorCode == string(amtp.CodePolicyDenied) {
					assert.Equal(t, gateway.StateFailed, st.Status)
					failed = append(failed, st.Address)
				}
			}
			assert.Equal(t, tc.wantFailed, failed)
		})
	}
}
