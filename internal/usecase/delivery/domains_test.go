package delivery_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestDeliveriesPerDomainAreBounded: a slow peer gateway holds at most
// PerDomain of the worker's deliveries; further deliveries to its domain
// do not wait for it (here: not at all) but are retried later, so the
// worker's other slots stay free for other domains.
func TestDeliveriesPerDomainAreBounded(t *testing.T) {
	const perDomain, tasks = 2, 6
	release := make(chan struct{})
	var mu sync.Mutex
	inflight, most := 0, 0
	peer := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		<-release
		mu.Lock()
		inflight--
		mu.Unlock()
		rw.WriteHeader(http.StatusAccepted)
	}))
	defer peer.Close()

	w := newWorld(t)
	wk := w.worker(t, func(c *delivery.Config, d *delivery.Deps) {
		c.Concurrency = 64
		c.Domains = delivery.DomainLimits{PerDomain: perDomain, Wait: -1}
		d.Discover = routeFunc(func(_ context.Context, domain string) (gateway.Route, error) {
			return gateway.Route{Domain: domain, Found: true, Gateway: peer.URL}, nil
		})
	})
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = w.send(t, "carol@remote.example")
	}
	leased := w.due(t)
	require.Len(t, leased, tasks)

	done := make(chan string, tasks)
	for _, tk := range leased {
		go func() {
			assert.NoError(t, wk.Process(context.Background(), tk))
			done <- tk.MessageID
		}()
	}
	// The two that hold the domain's slots wait at the peer until
	// released; every other one is answered without reaching it.
	var turnedAway []string
	for range tasks - perDomain {
		turnedAway = append(turnedAway, <-done)
	}
	// The slot holders may still be on their way to the peer (a slot is
	// taken before the request is made): wait for them to arrive.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inflight == perDomain
	}, 10*time.Second, 5*time.Millisecond, "deliveries at the peer while the rest were turned away")
	for _, id := range turnedAway {
		st := w.status(t, id, "carol@remote.example")
		assert.Equal(t, gateway.StateRetrying, st.Status)
		assert.Equal(t, string(amtp.CodeTemporaryFailure), st.ErrorCode)
		assert.Contains(t, st.ErrorMessage, "remote.example")
	}
	close(release)
	for range perDomain {
		id := <-done
		assert.Equal(t, gateway.StateDelivered, w.status(t, id, "carol@remote.example").Status)
	}
	assert.Equal(t, perDomain, most, "never more than PerDomain at the peer")
}

// TestDomainLimitsDefaults: the zero value takes the defaults, and a
// per-domain bound above the worker's own concurrency is that.
func TestDomainLimitsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          delivery.DomainLimits
		concurrency int
		want        delivery.DomainLimits
	}{
		{"zero", delivery.DomainLimits{}, 64, delivery.DomainLimits{PerDomain: delivery.DefaultPerDomain, Wait: delivery.DefaultDomainWait}},
		{"above the worker's", delivery.DomainLimits{PerDomain: 100, Wait: -1}, 8, delivery.DomainLimits{PerDomain: 8, Wait: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.in.WithDefaults(tc.concurrency))
		})
	}
}
