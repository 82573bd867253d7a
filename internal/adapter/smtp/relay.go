// Package smtp speaks SMTP for the email bridge (draft §11.2) through
// emersion/go-smtp: Relay hands bridged emails to a mail relay
// (delivery.EmailTransport), and Listener receives mail for our domain.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/agentry/agentry/internal/usecase/delivery"
)

// DefaultTimeout bounds one send: connect, STARTTLS, AUTH and the
// transaction together.
const DefaultTimeout = 60 * time.Second

// maxReasonText is how much of a relay's reply text a refusal shows.
const maxReasonText = 120

// RelayConfig says how to reach the mail relay.
type RelayConfig struct {
	Addr      string // host:port
	Username  string // AUTH PLAIN when set
	Password  string
	HelloName string // our name in EHLO; "localhost" when empty
	// AllowPlaintext sends without STARTTLS (and AUTH in the clear): only
	// for tests or a relay on loopback.
	AllowPlaintext bool
	TLS            *tls.Config // nil: the system roots, ServerName from Addr
	Timeout        time.Duration
}

// Relay sends each email in its own SMTP session.
type Relay struct {
	cfg RelayConfig
}

var _ delivery.EmailTransport = (*Relay)(nil)

// NewRelay returns a relay transport for cfg.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	return &Relay{cfg: cfg}
}

// SendEmail hands e to the relay. A 5xx reply to MAIL, RCPT or DATA is a
// final *delivery.EmailRejected; a 4xx reply, a failed connection, TLS or
// authentication (our configuration, not the email) is an error to retry.
// The provider id is the relay's reply to DATA (often "queued as …").
func (r *Relay) SendEmail(ctx context.Context, e delivery.OutboundEmail) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", r.cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("smtp relay: connect: %w", err)
	}
	// go-smtp sets its own deadline per command; the context bounds the
	// whole session by closing the connection under it.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	c, err := r.open(conn)
	if err != nil {
		_ = conn.Close()
		return "", err
	}
	defer func() { _ = c.Close() }()
	id, err := r.transact(c, e)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("smtp relay: %w", ctx.Err())
		}
		return "", err
	}
	_ = c.Quit()
	return id, nil
}

// open greets the relay, secures the session and authenticates.
func (r *Relay) open(conn net.Conn) (*gosmtp.Client, error) {
	var c *gosmtp.Client
	if r.cfg.AllowPlaintext {
		c = gosmtp.NewClient(conn)
	} else {
		var err error
		if c, err = gosmtp.NewClientStartTLS(conn, r.tlsConfig()); err != nil {
			return nil, fmt.Errorf("smtp relay: STARTTLS (required): %w", err)
		}
	}
	if err := c.Hello(r.cfg.HelloName); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("smtp relay: EHLO: %w", err)
	}
	if r.cfg.Username == "" {
		return c, nil
	}
	if _, secure := c.TLSConnectionState(); !secure && !r.cfg.AllowPlaintext {
		_ = c.Close()
		return nil, errors.New("smtp relay: refusing AUTH without TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", r.cfg.Username, r.cfg.Password)); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("smtp relay: AUTH: %w", err)
	}
	return c, nil
}

func (r *Relay) tlsConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.cfg.TLS != nil {
		cfg = r.cfg.TLS.Clone()
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(r.cfg.Addr); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}

func (r *Relay) transact(c *gosmtp.Client, e delivery.OutboundEmail) (string, error) {
	if err := c.Mail(e.From, nil); err != nil {
		return "", classify("MAIL", err)
	}
	if err := c.Rcpt(e.To, nil); err != nil {
		return "", classify("RCPT", err)
	}
	w, err := c.Data()
	if err != nil {
		return "", classify("DATA", err)
	}
	if _, err := w.Write(e.Raw); err != nil {
		_ = w.Close()
		return "", classify("DATA", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", classify("DATA", err)
	}
	return safeText(resp.StatusText), nil
}

// classify makes a relay's 5xx reply a final refusal, naming the code,
// the enhanced code and a clipped, control-free form of its text;
// anything else is returned for a retry.
func classify(stage string, err error) error {
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code < 500 || se.Code > 599 {
		return fmt.Errorf("smtp relay: %s: %w", stage, err)
	}
	reason := fmt.Sprintf("the mail relay refused the email at %s: %d", stage, se.Code)
	if se.EnhancedCode != gosmtp.NoEnhancedCode && se.EnhancedCode != gosmtp.EnhancedCodeNotSet {
		reason += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	if text := safeText(se.Message); text != "" {
		reason += " (" + text + ")"
	}
	return &delivery.EmailRejected{Reason: reason}
}

// safeText keeps a relay's free text to one clipped line of printable
// ASCII.
func safeText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxReasonText {
		s = s[:maxReasonText] + "…"
	}
	return s
}
