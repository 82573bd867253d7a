package smtp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/smtp"
)

type delivered struct {
	from string
	to   []string
	raw  []byte
}

// inbox is a Deliver func that keeps what it gets and answers answer.
type inbox struct {
	mu     sync.Mutex
	mails  []delivered
	answer error
}

func (b *inbox) deliver(_ context.Context, from string, to []string, raw []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.answer != nil {
		return b.answer
	}
	b.mails = append(b.mails, delivered{from, to, raw})
	return nil
}

func (b *inbox) got() []delivered {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivered(nil), b.mails...)
}

func startListener(t *testing.T, cfg smtp.ListenerConfig) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := smtp.NewListener(cfg)
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, l.Close())
		require.NoError(t, <-done)
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *gosmtp.Client {
	t.Helper()
	c, err := gosmtp.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

const inboundMail = "From: Orders Desk <orders@supplier.example>\r\nTo: reply+abc@retailer.example\r\nSubject: Re: [AMTP] Order\r\n\r\nConfirmed.\r\n.dot line\r\n"

func send(c *gosmtp.Client, from string, to []string, raw string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		return err
	}
	return w.Close()
}

func smtpCode(t *testing.T, err error) (int, gosmtp.EnhancedCode) {
	t.Helper()
	var se *gosmtp.SMTPError
	require.True(t, errors.As(err, &se), "%v", err)
	return se.Code, se.EnhancedCode
}

func TestListenerAccepts(t *testing.T) {
	box := &inbox{}
	addr := startListener(t, smtp.ListenerConfig{Domain: "Retailer.example", Deliver: box.deliver})
	c := dial(t, addr)
	require.NoError(t, send(c, "orders@supplier.example", []string{"reply+abc@retailer.example", "sales@RETAILER.EXAMPLE"}, inboundMail))
	require.NoError(t, send(c, "", []string{"postmaster@retailer.example"}, inboundMail), "a bounce (null sender)")
	got := box.got()
	require.Len(t, got, 2)
	assert.Equal(t, delivered{"orders@supplier.example", []string{"reply+abc@retailer.example", "sales@retailer.example"}, []byte(inboundMail)}, got[0])
	assert.Equal(t, "", got[1].from)
}

func TestListenerRefusesRelaying(t *testing.T) {
	box := &inbox{}
	addr := startListener(t, smtp.ListenerConfig{Domain: "retailer.example", Deliver: box.deliver})
	cases := []struct {
		rcpt string
		code int
	}{
		{"victim@elsewhere.example", 550},
		{"a@sub.retailer.example", 550},
		{"a@retailer.example.evil.example", 550},
		{"not an address", 501},
		{"a@[127.0.0.1]", 501},
	}
	for _, tc := range cases {
		t.Run(tc.rcpt, func(t *testing.T) {
			c := dial(t, addr)
			require.NoError(t, c.Mail("x@y.example", nil))
			code, _ := smtpCode(t, c.Rcpt(tc.rcpt, nil))
			assert.Equal(t, tc.code, code)
		})
	}
	assert.Empty(t, box.got())
}

func TestListenerMapsDeliverErrors(t *testing.T) {
	cases := []struct {
		name   string
		answer error
		code   int
		text   string
	}{
		{"a refusal with a reason", &smtp.RefusedError{Reason: "Mailbox unavailable\r\nX: y"}, 550, "Mailbox unavailable X: y"},
		{"a refusal with a code", &smtp.RefusedError{Code: 552, Reason: "Message too complex"}, 552, "Message too complex"},
		{"a wrapped ErrRefused", fmt.Errorf("ingest: sender not proven: %w", smtp.ErrRefused), 550, "Message refused"},
		{"a temporary failure", errors.New("store unavailable at 10.0.0.7"), 451, "Temporary failure, try again later"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			box := &inbox{answer: tc.answer}
			addr := startListener(t, smtp.ListenerConfig{Domain: "retailer.example", Deliver: box.deliver})
			err := send(dial(t, addr), "orders@supplier.example", []string{"a@retailer.example"}, inboundMail)
			code, _ := smtpCode(t, err)
			assert.Equal(t, tc.code, code)
			var se *gosmtp.SMTPError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.text, se.Message, "nothing internal reaches the other server")
		})
	}
}

func TestListenerBounds(t *testing.T) {
	box := &inbox{}
	addr := startListener(t, smtp.ListenerConfig{Domain: "retailer.example", MaxBytes: 1024, MaxRecipients: 3, Deliver: box.deliver})

	c := dial(t, addr)
	err := send(c, "x@y.example", []string{"a@retailer.example"}, inboundMail+strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20))
	code, _ := smtpCode(t, err)
	assert.Equal(t, 552, code, "too large: %v", err)

	c = dial(t, addr)
	require.NoError(t, c.Mail("x@y.example", nil))
	for i := range 3 {
		require.NoError(t, c.Rcpt(fmt.Sprintf("a%d@retailer.example", i), nil))
	}
	code, _ = smtpCode(t, c.Rcpt("a3@retailer.example", nil))
	assert.Equal(t, 452, code, "too many recipients")
	assert.Empty(t, box.got())
}

func TestListenerSTARTTLS(t *testing.T) {
	cert, roots := selfSigned(t)
	box := &inbox{}
	addr := startListener(t, smtp.ListenerConfig{Domain: "retailer.example", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Deliver: box.deliver})
	c, err := gosmtp.DialStartTLS(addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, send(c, "orders@supplier.example", []string{"a@retailer.example"}, inboundMail))
	require.Len(t, box.got(), 1)
	assert.True(t, bytes.Equal([]byte(inboundMail), box.got()[0].raw))
}

// TestListenAndServeStops: the listener serves until its context ends,
// and then returns without error.
func TestListenAndServeStops(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := probe.Addr().String()
	require.NoError(t, probe.Close())

	box := &inbox{}
	l := smtp.NewListener(smtp.ListenerConfig{Addr: addr, Domain: "retailer.example", Deliver: box.deliver})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.ListenAndServe(ctx) }()

	var c *gosmtp.Client
	require.Eventually(t, func() bool {
		c, err = gosmtp.Dial(addr)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, send(c, "x@y.example", []string{"a@retailer.example"}, inboundMail))
	_ = c.Close()
	cancel()
	require.NoError(t, <-done)
	assert.Len(t, box.got(), 1)
}

// TestListenAndServeEndsDeliveries: a delivery under way when the
// listener's context ends is told so.
func TestListenAndServeEndsDeliveries(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := probe.Addr().String()
	require.NoError(t, probe.Close())

	started, ended := make(chan struct{}), make(chan error, 1)
	deliver := func(ctx context.Context, _ string, _ []string, _ []byte) error {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	}
	l := smtp.NewListener(smtp.ListenerConfig{Addr: addr, Domain: "retailer.example", Timeout: time.Hour, Deliver: deliver})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.ListenAndServe(ctx) }()

	var c *gosmtp.Client
	require.Eventually(t, func() bool {
		c, err = gosmtp.Dial(addr)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	defer func() { _ = c.Close() }()
	go func() { _ = send(c, "x@y.example", []string{"a@retailer.example"}, inboundMail) }()
	<-started
	cancel()
	select {
	case err := <-ended:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery was not told that the listener stopped")
	}
	require.NoError(t, <-done)
}
