package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// mailbox is the EmailTransport port's stand-in: it keeps what it is
// handed, or answers err.
type mailbox struct {
	mu   sync.Mutex
	sent []delivery.OutboundEmail
	err  error
}

func (b *mailbox) SendEmail(_ context.Context, e delivery.OutboundEmail) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return "", b.err
	}
	b.sent = append(b.sent, e)
	return "provider-1", nil
}

func (b *mailbox) emails() []delivery.OutboundEmail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivery.OutboundEmail(nil), b.sent...)
}

// mxOnly is discovery of a domain with mail exchangers and no AMTP record.
var mxOnly = routeFunc(func(_ context.Context, d string) (gateway.Route, error) {
	return gateway.Route{Domain: d, MX: []string{"mx1." + d}}, nil
})

// mxAnswer stands in for the MailExchangers port.
type mxAnswer bool

func (a mxAnswer) HasMailExchangers(context.Context, string) (bool, error) { return bool(a), nil }

// TestBridgeToEmail: a recipient whose domain has only mail exchangers is
// sent an email when a transport is configured, and recorded as the
// transport's answer says; without one it fails as before.
func TestBridgeToEmail(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport *mailbox // nil: no bridge configured
		bridge    string
		want      gateway.State
		via       string
		code      amtp.Code
		message   string
		reports   int
		from      string
	}{
		{name: "bridged", transport: &mailbox{}, want: gateway.StateDelivered, via: "smtp", from: "amtp-bridge@example.org"},
		{name: "bridged from a configured address", transport: &mailbox{}, bridge: "robot@example.org", want: gateway.StateDelivered, via: "smtp", from: "robot@example.org"},
		{name: "no bridge configured", want: gateway.StateFailed, code: amtp.CodeRecipientNotFound, message: "does not bridge to email", reports: 1},
		{name: "refused by the mail system", transport: &mailbox{err: &delivery.EmailRejected{Reason: "550 no such user\r\nInjected: yes"}},
			want: gateway.StateFailed, code: amtp.CodeRecipientUnavailable, message: "refused the email: 550 no such user", reports: 1},
		{name: "mail system unreachable", transport: &mailbox{err: errors.New("dial tcp 10.0.0.7:587: connection refused")},
			want: gateway.StateRetrying, code: amtp.CodeRecipientUnavailable, message: "could not be handed to the mail system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			wk := w.worker(t, func(c *delivery.Config, d *delivery.Deps) {
				d.Discover = mxOnly
				c.Bridge.Address = tc.bridge
				if tc.transport != nil {
					d.Email = tc.transport
				}
			})
			id := w.sendBody(t, `{"version":"1.0","sender":"alice@example.org","recipients":["bob@mail.example"],"subject":"Quarterly report","payload":{"n":1}}`)
			require.NoError(t, wk.Process(context.Background(), w.lease(t)))
			st := w.status(t, id, "bob@mail.example")
			assert.Equal(t, tc.want, st.Status)
			assert.Equal(t, tc.via, st.Via)
			assert.Equal(t, string(tc.code), st.ErrorCode)
			assert.Contains(t, st.ErrorMessage, tc.message)
			assert.NotContains(t, st.ErrorMessage, "10.0.0.7", "the sender never reads our infrastructure")
			assert.NotContains(t, st.ErrorMessage, "\n")
			assert.Equal(t, tc.reports, w.reports(t))
			if tc.from == "" {
				return
			}
			sent := tc.transport.emails()
			require.Len(t, sent, 1)
			assert.Equal(t, tc.from, sent[0].From)
			assert.Equal(t, "bob@mail.example", sent[0].To)
			msg, err := mail.ReadMessage(bytes.NewReader(sent[0].Raw))
			require.NoError(t, err)
			assert.Equal(t, id, msg.Header.Get("X-AMTP-Message-ID"))
			assert.Equal(t, "alice@example.org", msg.Header.Get("X-AMTP-Sender"))
			assert.Equal(t, "[AMTP] Quarterly report", msg.Header.Get("Subject"))
			assert.Equal(t, "<alice@example.org>", msg.Header.Get("Reply-To"), "a person's answer goes back to the sender")
			assert.Contains(t, string(sent[0].Raw), "_amtp.mail.example.", "the upgrade hint names the recipient's domain")
		})
	}
}

// TestBridgeFallback: with AGENTRY_SMTP_FALLBACK a recipient whose AMTP
// gateway stayed unreachable for the whole retry window is bridged when
// its domain receives email; otherwise it fails as before.
func TestBridgeFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool
		mx       mxAnswer
		want     gateway.State
		via      string
	}{
		{name: "fallback to email", fallback: true, mx: true, want: gateway.StateDelivered, via: "smtp"},
		{name: "fallback off", fallback: false, mx: true, want: gateway.StateFailed},
		{name: "domain without mail exchangers", fallback: true, mx: false, want: gateway.StateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			down := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				rw.WriteHeader(http.StatusServiceUnavailable)
			}))
			t.Cleanup(down.Close)
			box := &mailbox{}
			wk := w.worker(t, func(c *delivery.Config, d *delivery.Deps) {
				c.Retry = delivery.RetryPolicy{Base: time.Second, Max: time.Second, Window: time.Minute}
				c.Bridge.Fallback = tc.fallback
				d.Email, d.MX, d.Client = box, tc.mx, down.Client()
				d.Discover = routeFunc(func(_ context.Context, dom string) (gateway.Route, error) {
					return gateway.Route{Domain: dom, Found: true, Gateway: down.URL}, nil
				})
			})
			ctx := context.Background()
			id := w.send(t, "bob@peer.example")
			require.NoError(t, wk.Process(ctx, w.lease(t)))
			require.Equal(t, gateway.StateRetrying, w.status(t, id, "bob@peer.example").Status, "within the window the gateway is retried")
			assert.Empty(t, box.emails())

			w.clock.Add(2 * time.Minute)
			require.NoError(t, wk.Process(ctx, w.lease(t)))
			st := w.status(t, id, "bob@peer.example")
			assert.Equal(t, tc.want, st.Status)
			assert.Equal(t, tc.via, st.Via)
			if tc.want == gateway.StateDelivered {
				require.Len(t, box.emails(), 1)
				assert.True(t, strings.HasPrefix(box.emails()[0].From, "amtp-bridge@"))
				assert.Zero(t, w.reports(t))
				return
			}
			assert.Equal(t, string(amtp.CodeRecipientUnavailable), st.ErrorCode)
			assert.Empty(t, box.emails())
			assert.Equal(t, 1, w.reports(t))
		})
	}
}

// TestEmailBounced: a bounce or complaint about a delivered bridged
// recipient fails it and reports to the sender, once however often the
// notification comes; about anything else it changes nothing.
func TestEmailBounced(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bounce    func(id string) delivery.Bounce
		want      gateway.State
		message   string
		reports   int
		bridgedTo bool // the recipient was delivered through the bridge
	}{
		{name: "bounce", bridgedTo: true, bounce: func(id string) delivery.Bounce {
			return delivery.Bounce{MessageID: id, Recipient: "BOB@mail.example", Reason: "smtp; 550 5.1.1 user unknown\r\nX: y"}
		}, want: gateway.StateFailed, message: "returned the email: smtp; 550 5.1.1 user unknown", reports: 1},
		{name: "complaint", bridgedTo: true, bounce: func(id string) delivery.Bounce {
			return delivery.Bounce{MessageID: id, Recipient: "bob@mail.example", Complaint: true}
		}, want: gateway.StateFailed, message: "reported the email as unwanted", reports: 1},
		{name: "unknown message", bridgedTo: true, bounce: func(string) delivery.Bounce {
			return delivery.Bounce{MessageID: "019d48ea-2e00-76cb-a086-811a19c63d95", Recipient: "bob@mail.example"}
		}, want: gateway.StateDelivered},
		{name: "another recipient", bridgedTo: true, bounce: func(id string) delivery.Bounce {
			return delivery.Bounce{MessageID: id, Recipient: "carol@mail.example"}
		}, want: gateway.StateDelivered},
		{name: "not delivered by email", bounce: func(id string) delivery.Bounce {
			return delivery.Bounce{MessageID: id, Recipient: "bob@mail.example"}
		}, want: gateway.StateQueued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			wk := w.worker(t, func(_ *delivery.Config, d *delivery.Deps) {
				d.Discover, d.Email = mxOnly, &mailbox{}
			})
			ctx := context.Background()
			id := w.sendBody(t, `{"version":"1.0","sender":"alice@example.org","recipients":["bob@mail.example"],"subject":"hi","payload":{"n":1}}`)
			if tc.bridgedTo {
				require.NoError(t, wk.Process(ctx, w.lease(t)))
			}
			for range 2 {
				require.NoError(t, wk.EmailBounced(ctx, tc.bounce(id)))
			}
			st := w.status(t, id, "bob@mail.example")
			assert.Equal(t, tc.want, st.Status)
			assert.Contains(t, st.ErrorMessage, tc.message)
			assert.NotContains(t, st.ErrorMessage, "\n")
			assert.Equal(t, tc.reports, w.reports(t))
		})
	}
}

// TestNoReportToTheBridge: mail the email bridge delivered from its own
// address (an unproven From) has nobody to report a failure to: the
// bridge address is no agent, and a report to it would only fail.
func TestNoReportToTheBridge(t *testing.T) {
	w := newWorld(t)
	w.hookStatus.Store(http.StatusGone)
	wk := w.worker(t, nil)
	m := &amtp.Message{Version: amtp.Version, Sender: "amtp-bridge@example.org", Recipients: []string{"hook@example.org"}, Payload: []byte(`{"text":"hi"}`)}
	res, err := w.svc.SubmitBridged(context.Background(), m, gateway.SenderVerification{Result: gateway.Unsigned, Method: gateway.MethodDKIM})
	require.NoError(t, err)
	require.NoError(t, wk.Process(context.Background(), w.lease(t)))
	st, err := w.db.DB.GetStatuses(context.Background(), gateway.StorageID(res.MessageID, gateway.OriginRemote, []string{"hook@example.org"}))
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, gateway.StateFailed, st[0].Status)
	assert.NotContains(t, w.logs.String(), "could not send delivery failure report")
}
