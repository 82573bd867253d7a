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

// gate holds whatever enters it until released, counting how many are
// in at once.
type gate struct {
	release        chan struct{}
	mu             sync.Mutex
	inflight, most int
}

func (g *gate) enter() {
	g.mu.Lock()
	g.inflight++
	g.most = max(g.most, g.inflight)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
}

func (g *gate) in() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight
}

// gatedMail is an email transport that sends once its gate lets it.
type gatedMail struct{ g *gate }

func (m gatedMail) SendEmail(context.Context, delivery.OutboundEmail) (string, error) {
	m.g.enter()
	return "provider-1", nil
}

// TestDeliveriesPerDomainAreBounded: a slow destination holds at most
// PerDomain of the worker's deliveries, whether it is a peer gateway or a
// domain bridged to email; further deliveries to its domain do not wait
// for it (here: not at all) but are retried later, so the worker's other
// slots stay free for other domains.
func TestDeliveriesPerDomainAreBounded(t *testing.T) {
	const perDomain, tasks = 2, 6
	for _, tc := range []struct {
		name string
		// route sends the domain's deliveries through g.
		route func(t *testing.T, g *gate, d *delivery.Deps)
		via   string
	}{
		{"peer gateway", func(t *testing.T, g *gate, d *delivery.Deps) {
			peer := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				g.enter()
				rw.WriteHeader(http.StatusAccepted)
			}))
			t.Cleanup(peer.Close)
			d.Discover = routeFunc(func(_ context.Context, domain string) (gateway.Route, error) {
				return gateway.Route{Domain: domain, Found: true, Gateway: peer.URL}, nil
			})
		}, "amtp"},
		{"bridged to email", func(_ *testing.T, g *gate, d *delivery.Deps) {
			d.Discover = mxOnly
			d.Email = gatedMail{g}
		}, "smtp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gate{release: make(chan struct{})}
			w := newWorld(t)
			wk := w.worker(t, func(c *delivery.Config, d *delivery.Deps) {
				c.Concurrency = 64
				c.Domains = delivery.DomainLimits{PerDomain: perDomain, Wait: -1}
				tc.route(t, g, d)
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
			// The two that hold the domain's slots wait at the destination
			// until released; every other one is answered without reaching it.
			var turnedAway []string
			for range tasks - perDomain {
				select {
				case id := <-done:
					turnedAway = append(turnedAway, id)
				case <-time.After(10 * time.Second):
					close(g.release) // let the goroutines finish
					require.FailNow(t, "deliveries beyond the domain's slots were not turned away", "%d reached the destination", g.in())
				}
			}
			// The slot holders may still be on their way (a slot is taken
			// before the request is made): wait for them to arrive.
			require.Eventually(t, func() bool { return g.in() == perDomain }, 10*time.Second, 5*time.Millisecond,
				"deliveries at the destination while the rest were turned away")
			for _, id := range turnedAway {
				st := w.status(t, id, "carol@remote.example")
				assert.Equal(t, gateway.StateRetrying, st.Status)
				assert.Equal(t, string(amtp.CodeTemporaryFailure), st.ErrorCode)
				assert.Contains(t, st.ErrorMessage, "remote.example")
			}
			close(g.release)
			for range perDomain {
				id := <-done
				st := w.status(t, id, "carol@remote.example")
				assert.Equal(t, gateway.StateDelivered, st.Status)
				assert.Equal(t, tc.via, st.Via)
			}
			assert.Equal(t, perDomain, g.most, "never more than PerDomain at the destination")
		})
	}
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
