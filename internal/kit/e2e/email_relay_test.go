package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// relay is a mail relay on loopback (go-smtp) that wants AUTH PLAIN and
// keeps what it is handed.
type relay struct {
	addr string
	mu   sync.Mutex
	got  []relayed
}

type relayed struct {
	user, from string
	to         []string
	data       []byte
}

func (r *relay) mails() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayed(nil), r.got...)
}

func startRelay(t *testing.T, user, password string) *relay {
	t.Helper()
	r := &relay{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &relaySession{r: r, user: user, password: password}, nil
	}))
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = true // loopback test relay: no TLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return r
}

type relaySession struct {
	r              *relay
	user, password string
	authed         string
	cur            relayed
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *relaySession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.user || pass != s.password {
			return errors.New("bad credentials")
		}
		s.authed = user
		return nil
	}), nil
}

func (s *relaySession) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.authed == "" {
		return gosmtp.ErrAuthRequired
	}
	s.cur = relayed{user: s.authed, from: from}
	return nil
}

func (s *relaySession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	s.cur.data = b
	s.r.mu.Lock()
	s.r.got = append(s.r.got, s.cur)
	s.r.mu.Unlock()
	return nil
}

func (s *relaySession) Reset()        { s.cur = relayed{} }
func (s *relaySession) Logout() error { return nil }

// TestBridgeThroughRelay: with AGENTRY_SMTP_RELAY the local gateway hands
// bridged email to that relay (here plaintext on loopback, with AUTH)
// instead of the outbox.
func TestBridgeThroughRelay(t *testing.T) {
	dns := dnstest.Start(t)
	r := startRelay(t, "gateway", "relay-secret")
	a := startGateway(t, dns, "a.test", gwOpts{env: map[string]string{
		"AGENTRY_SMTP_RELAY": r.addr, "AGENTRY_SMTP_INSECURE": "1",
		"AGENTRY_SMTP_USERNAME": "gateway", "AGENTRY_SMTP_PASSWORD": "relay-secret",
	}})
	alice, _ := a.register("alice", "pull", "")
	dns.SetMX("mx.test", 60, "mail.mx.test", 10)
	m := quarterly(t, a)
	code, out := a.send(alice, m)
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	st := a.waitStatus(alice, id, "bob@mx.test", "delivered", settleWithin)
	assert.Equal(t, "smtp", st["via"])
	got := r.mails()
	require.Len(t, got, 1)
	assert.Equal(t, "gateway", got[0].user)
	assert.Equal(t, "amtp-bridge@a.test", got[0].from)
	assert.Equal(t, []string{"bob@mx.test"}, got[0].to)
	checkBridged(t, readEmail(t, got[0].data), id, "alice@a.test", "bob@mx.test", "a.test")
}

// TestAMTPOverEmailBetweenGateways: b.test publishes no AMTP record, only
// an MX; a.test's relay is b.test's SMTP listener. alice's message
// travels as email and b.test's bridge takes the AMTP message it carries
// as a.test's mail: signed by a.test, verified against a.test's key, the
// same message in bob's inbox.
func TestAMTPOverEmailBetweenGateways(t *testing.T) {
	dns := dnstest.Start(t)
	b := startGateway(t, dns, "b.test", gwOpts{env: map[string]string{"AGENTRY_SMTP_LISTEN": "127.0.0.1:0"}})
	bob, _ := b.register("bob", "pull", "")
	dns.Remove("_amtp.b.test")
	dns.SetMX("b.test", 60, "mail.b.test", 10)
	a := startGateway(t, dns, "a.test", gwOpts{env: map[string]string{
		"AGENTRY_SMTP_RELAY": b.local.SMTPAddr(), "AGENTRY_SMTP_INSECURE": "1",
	}})
	alice, _ := a.register("alice", "pull", "")

	code, out := a.send(alice, msg("alice@a.test", []string{"bob@b.test"}, map[string]any{"hello": "over email"}))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	st := a.waitStatus(alice, id, "bob@b.test", "delivered", settleWithin)
	assert.Equal(t, "smtp", st["via"])
	got := b.waitInbox(bob, "bob@b.test", 1, settleWithin)
	require.Len(t, got, 1)
	assert.Equal(t, id, got[0]["message_id"])
	assert.Equal(t, "alice@a.test", got[0]["sender"])
	assert.Equal(t, map[string]any{"hello": "over email"}, got[0]["payload"])
	assert.NotNil(t, got[0]["signature"], "a.test's signature travelled with it")
	sv, _ := b.status(bob, id)["sender_verification"].(map[string]any)
	assert.Equal(t, "verified", sv["result"], "verified against a.test's published key")
	assert.Equal(t, "a.test", sv["domain"])
}
