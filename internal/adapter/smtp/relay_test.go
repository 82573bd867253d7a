package smtp_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/smtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

var outbound = delivery.OutboundEmail{
	From: "amtp-bridge@retailer.example",
	To:   "orders@supplier.example",
	Raw:  []byte("From: amtp-bridge@retailer.example\r\nTo: orders@supplier.example\r\nSubject: [AMTP] Order\r\n\r\nHello.\r\n.leading dot\r\n"),
}

func TestRelaySends(t *testing.T) {
	cert, roots := selfSigned(t)
	cases := []struct {
		name     string
		server   serverOptions
		config   func(addr string) smtp.RelayConfig
		tls      bool
		username string
	}{
		{
			name:   "STARTTLS",
			server: serverOptions{tls: &cert},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, TLS: &tls.Config{RootCAs: roots}}
			},
			tls: true,
		},
		{
			name:   "STARTTLS and AUTH PLAIN",
			server: serverOptions{tls: &cert, password: "s3cret"},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, TLS: &tls.Config{RootCAs: roots}, Username: "gateway", Password: "s3cret", HelloName: "gw.retailer.example"}
			},
			tls: true, username: "gateway",
		},
		{
			name:   "plaintext when allowed",
			server: serverOptions{},
			config: func(addr string) smtp.RelayConfig { return smtp.RelayConfig{Addr: addr, AllowPlaintext: true} },
		},
		{
			name:   "plaintext AUTH when allowed",
			server: serverOptions{password: "s3cret", plainAuth: true},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, AllowPlaintext: true, Username: "gateway", Password: "s3cret"}
			},
			username: "gateway",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startMailServer(t, c.server)
			id, err := smtp.NewRelay(c.config(srv.addr)).SendEmail(context.Background(), outbound)
			require.NoError(t, err)
			assert.NotContains(t, id, "\n")
			got := srv.got()
			require.Len(t, got, 1)
			assert.Equal(t, outbound.From, got[0].from)
			assert.Equal(t, []string{outbound.To}, got[0].to)
			assert.Equal(t, string(outbound.Raw), string(got[0].data), "dot-stuffing undone, bytes intact")
			assert.Equal(t, c.tls, got[0].tls)
			assert.Equal(t, c.username, got[0].username)
		})
	}
}

// TestRelayRefusals: what the relay or its setup refuses, and whether it
// is final for the email (EmailRejected) or retried.
func TestRelayRefusals(t *testing.T) {
	cert, roots := selfSigned(t)
	cases := []struct {
		name   string
		server serverOptions
		config func(addr string) smtp.RelayConfig
		final  bool
		reason []string // substrings of the error
	}{
		{
			name:   "a relay without STARTTLS",
			server: serverOptions{},
			config: func(addr string) smtp.RelayConfig { return smtp.RelayConfig{Addr: addr} },
			reason: []string{"STARTTLS (required)", "doesn't support STARTTLS"},
		},
		{
			name:   "a certificate nobody vouches for",
			server: serverOptions{tls: &cert},
			config: func(addr string) smtp.RelayConfig { return smtp.RelayConfig{Addr: addr} },
			reason: []string{"certificate"},
		},
		{
			name:   "a wrong password",
			server: serverOptions{tls: &cert, password: "s3cret"},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, TLS: &tls.Config{RootCAs: roots}, Username: "gateway", Password: "wrong"}
			},
			reason: []string{"AUTH: SMTP error 454"},
		},
		{
			name:   "AUTH in the clear is not attempted",
			server: serverOptions{password: "s3cret", plainAuth: true},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, Username: "gateway", Password: "s3cret"}
			},
			reason: []string{"STARTTLS (required)"},
		},
		{
			name: "a 5xx to RCPT",
			server: serverOptions{tls: &cert, rcptErr: &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
				Message: "<orders@supplier.example>: Recipient address rejected: User unknown in virtual mailbox table " + strings.Repeat("x", 300)}},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, TLS: &tls.Config{RootCAs: roots}}
			},
			final:  true,
			reason: []string{"RCPT: 550 5.1.1", "Recipient address rejected"},
		},
		{
			name:   "a 5xx to DATA",
			server: serverOptions{tls: &cert, dataErr: &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, TLS: &tls.Config{RootCAs: roots}}
			},
			final:  true,
			reason: []string{"DATA: 554 5.7.1 (Message rejected as spam)"},
		},
		{
			name:   "a 4xx to DATA",
			server: serverOptions{tls: &cert, dataErr: &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}},
			config: func(addr string) smtp.RelayConfig {
				return smtp.RelayConfig{Addr: addr, TLS: &tls.Config{RootCAs: roots}}
			},
			reason: []string{"451"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startMailServer(t, c.server)
			_, err := smtp.NewRelay(c.config(srv.addr)).SendEmail(context.Background(), outbound)
			require.Error(t, err)
			assert.Equal(t, c.final, delivery.IsEmailRejected(err), "%v", err)
			for _, s := range c.reason {
				assert.Contains(t, err.Error(), s)
			}
			if c.final {
				assert.LessOrEqual(t, len(err.Error()), 250, "the reason is clipped")
			}
			assert.Empty(t, srv.got(), "nothing was delivered")
		})
	}
}

func TestRelayUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = smtp.NewRelay(smtp.RelayConfig{Addr: addr, AllowPlaintext: true}).SendEmail(context.Background(), outbound)
	require.Error(t, err)
	assert.False(t, delivery.IsEmailRejected(err))
}

// TestRelaySilentServer: a relay that accepts the connection and never
// greets is given up on when the timeout runs out.
func TestRelaySilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	_, err = smtp.NewRelay(smtp.RelayConfig{Addr: l.Addr().String(), AllowPlaintext: true, Timeout: 200 * time.Millisecond}).
		SendEmail(context.Background(), outbound)
	require.Error(t, err)
	assert.False(t, delivery.IsEmailRejected(err))
}
