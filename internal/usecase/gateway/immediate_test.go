package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// slowAccept is a message store whose Accept takes `took` on the
// service's clock, as a store does when its backend is slow or a retry
// waits out an earlier acceptance of the same key.
type slowAccept struct {
	*pebblestore.DB
	clock *atomic.Int64 // offset of the service's clock, ns
	took  time.Duration
}

func (s slowAccept) Accept(ctx context.Context, a *gateway.Acceptance) (*gateway.IdempotencyRecord, error) {
	s.clock.Add(int64(s.took))
	return s.DB.Accept(ctx, a)
}

// inlineSpy is an Immediate Path deliverer that records the time it was
// given and delivers nothing.
type inlineSpy struct {
	mu     sync.Mutex
	called bool
	left   time.Duration // until its context's deadline, when called
}

func (d *inlineSpy) DeliverNow(ctx context.Context, _ gateway.Task, _ gateway.Accepted) (gateway.ImmediateResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.called = true
	if dl, ok := ctx.Deadline(); ok {
		d.left = time.Until(dl)
	}
	return gateway.ImmediateResult{}, nil
}

// TestImmediatePathEndsBeforeTheQueueCopyIsDue: the queue's copy of an
// Immediate Path task is held back until the window after the submission
// began (plus a second); the inline attempt must be over by then however
// long the accept took, or the queue delivers the same message at the same
// time (seen on AWS: a retried submission that waited 6 s for its key was
// POSTed twice, 33 ms apart). What is left of the window is the inline
// attempt's; nothing left, no inline attempt.
func TestImmediatePathEndsBeforeTheQueueCopyIsDue(t *testing.T) {
	const window = 5 * time.Second
	cases := []struct {
		name   string
		took   time.Duration // the accept, on the service's clock
		inline bool
		atMost time.Duration // the inline attempt's time
	}{
		{"fast accept", 0, true, window},
		{"slow accept", 2 * time.Second, true, window - 2*time.Second},
		{"accept longer than the window", window + 500*time.Millisecond, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, db.Close()) })
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "alice@example.org", DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("key-alice")}))
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush, WebhookURL: "https://bob.example.org/hook", WebhookSecret: "whsec_c2VjcmV0"}))
			var offset atomic.Int64
			base := time.Now()
			store := slowAccept{DB: db, clock: &offset, took: tc.took}
			spy := &inlineSpy{}
			svc, err := gateway.NewService(gateway.Config{
				Domain: "example.org", ImmediateWindow: window, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Now: func() time.Time { return base.Add(time.Duration(offset.Load())) },
			}, gateway.Ports{Messages: store, Inbox: db, Agents: db, Queue: db, Workflows: db, Immediate: spy})
			require.NoError(t, err)
			alice, err := svc.Authenticate(ctx, "key-alice")
			require.NoError(t, err)

			res, err := svc.Accept(ctx, alice, []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{}}`))
			require.NoError(t, err)
			assert.Equal(t, gateway.OutcomeQueued, res.Outcome)
			assert.Equal(t, tc.inline, spy.called, "inline attempt made")
			if tc.inline {
				assert.Positive(t, spy.left)
				assert.LessOrEqual(t, spy.left, tc.atMost, "the inline attempt ends within what is left of the window")
			}
		})
	}
}
