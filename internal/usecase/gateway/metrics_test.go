package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// recorder is a test double of the gateway's own Metrics port.
type recorder struct {
	mu        sync.Mutex
	accepted  []string // message ids
	delivered []string // "message id|recipient|via|latency"
}

func (r *recorder) MessageAccepted(_ context.Context, messageID string, recipients int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = append(r.accepted, messageID)
}

func (r *recorder) MessageDelivered(_ context.Context, messageID, recipient, via string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, messageID+"|"+recipient+"|"+via+"|"+latency.String())
}

var _ gateway.Metrics = (*recorder)(nil)

// TestAcceptMetrics: one MessagesAccepted per message newly accepted, none
// for the replay of an idempotent submission or a refused one; a pull
// recipient is delivered by the accept itself, with zero latency.
func TestAcceptMetrics(t *testing.T) {
	cases := []struct {
		name          string
		recipients    string // JSON array
		submissions   int    // the same submission, repeated
		wantAccepted  int
		wantDelivered []string // recipient|via|latency
		wantErr       bool
	}{
		{name: "push recipient", recipients: `["push@example.org"]`, submissions: 1, wantAccepted: 1},
		{name: "replayed submission counts once", recipients: `["push@example.org"]`, submissions: 3, wantAccepted: 1},
		{name: "pull recipient is delivered at accept", recipients: `["pull@example.org","push@example.org"]`, submissions: 2, wantAccepted: 1,
			wantDelivered: []string{"pull@example.org|inbox|0s"}},
		{name: "refused submission counts nothing", recipients: `["nobody@example.org"]`, submissions: 1, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
			require.NoError(t, err)
			defer func() { assert.NoError(t, db.Close()) }()
			for _, a := range []*gateway.Agent{
				{Address: "push@example.org", DeliveryMode: gateway.ModePush, WebhookURL: "https://agent.example.org/hook", WebhookSecret: "whsec_c2VjcmV0"},
				{Address: "pull@example.org", DeliveryMode: gateway.ModePull},
			} {
				require.NoError(t, db.PutAgent(ctx, a))
			}
			rec := &recorder{}
			svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Metrics: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
				gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
			require.NoError(t, err)

			body := []byte(`{"version":"1.0","sender":"alice@example.org","recipients":` + tc.recipients + `,"idempotency_key":"k-1","payload":{"n":1}}`)
			var id string
			for range tc.submissions {
				res, err := svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller}, body)
				if tc.wantErr {
					require.Error(t, err)
					continue
				}
				require.NoError(t, err)
				id = res.MessageID
			}

			rec.mu.Lock()
			defer rec.mu.Unlock()
			require.Len(t, rec.accepted, tc.wantAccepted, "MessagesAccepted")
			if tc.wantAccepted > 0 {
				assert.Equal(t, id, rec.accepted[0])
			}
			var want []string
			for _, d := range tc.wantDelivered {
				want = append(want, id+"|"+d)
			}
			assert.Equal(t, want, rec.delivered, "MessagesDelivered")
		})
	}
}
