package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Listener defaults: what one session may cost.
const (
	DefaultMaxBytes       = 25 << 20
	DefaultMaxRecipients  = 50
	DefaultMaxConnections = 16
	DefaultSessionTimeout = 60 * time.Second
)

// ErrRefused marks a Deliver error as final: the sending server gets a
// 5xx reply and stops retrying. Any other Deliver error is a 4xx reply
// (try again later).
var ErrRefused = errors.New("smtp: message refused")

// RefusedError is a final refusal whose Reason (safe to send to a
// stranger's mail server) becomes the text of the 5xx reply. It matches
// ErrRefused.
type RefusedError struct {
	Code   int    // 550 when zero; must be 5xx
	Reason string // e.g. "mailbox unavailable"
}

func (e *RefusedError) Error() string        { return "smtp: refused: " + e.Reason }
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ListenerConfig configures the inbound SMTP listener.
type ListenerConfig struct {
	Addr   string // host:port to listen on
	Domain string // RCPT is accepted only for addresses of this domain
	// MaxBytes bounds one message (SIZE and the DATA stream);
	// MaxRecipients the RCPT commands of one message; MaxConnections the
	// sessions served at once (further ones wait to be accepted).
	MaxBytes       int64
	MaxRecipients  int
	MaxConnections int
	// Timeout bounds each read and write of a session, and one Deliver.
	Timeout time.Duration
	// TLS, when set, is offered with STARTTLS.
	TLS *tls.Config
	// Deliver receives one accepted message: the envelope sender (""
	// for a bounce), the envelope recipients and the raw message.
	Deliver func(ctx context.Context, from string, to []string, raw []byte) error
	Logger  *slog.Logger
}

// Listener is an SMTP server that accepts mail for one domain and hands
// it to Deliver; it relays nothing.
type Listener struct {
	cfg    ListenerConfig
	srv    *gosmtp.Server
	domain string
	// base is the context every Deliver runs under: ListenAndServe's, so
	// that a shutdown ends the deliveries under way.
	base context.Context
}

// NewListener returns a listener for cfg (not yet listening).
func NewListener(cfg ListenerConfig) *Listener {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSessionTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	domain, _ := amtp.NormalizeDomain(cfg.Domain)
	l := &Listener{cfg: cfg, domain: domain, base: context.Background()}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &session{l: l}, nil
	}))
	srv.Addr = cfg.Addr
	srv.Domain = cfg.Domain
	srv.MaxMessageBytes = cfg.MaxBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.ReadTimeout = cfg.Timeout
	srv.WriteTimeout = cfg.Timeout
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = slogLogger{cfg.Logger}
	l.srv = srv
	return l
}

// ListenAndServe listens on Addr and serves until ctx ends (then it
// returns nil) or listening fails.
func (l *Listener) ListenAndServe(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", l.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp listener: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = l.srv.Close() })
	defer stop()
	l.base = ctx
	err = l.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Serve accepts sessions on ln, at most MaxConnections at once, until
// Close.
func (l *Listener) Serve(ln net.Listener) error {
	err := l.srv.Serve(&boundedListener{Listener: ln, slots: make(chan struct{}, l.cfg.MaxConnections)})
	if errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops listening and ends every session.
func (l *Listener) Close() error { return l.srv.Close() }

// session is one SMTP transaction at a time.
type session struct {
	l    *Listener
	from string
	to   []string
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	s.from, s.to = from, nil
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	a, err := amtp.ParseAddress(to)
	if err != nil {
		return &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	}
	if a.Domain != s.l.domain {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	}
	s.to = append(s.to, a.String())
	return nil
}

func (s *session) Data(r io.Reader) error {
	// go-smtp stops the stream at MaxMessageBytes; the limit here only
	// guards against that promise being broken.
	raw, err := io.ReadAll(io.LimitReader(r, s.l.cfg.MaxBytes+1))
	if err != nil {
		return err
	}
	if int64(len(raw)) > s.l.cfg.MaxBytes {
		return gosmtp.ErrDataTooLarge
	}
	ctx, cancel := context.WithTimeout(s.l.base, s.l.cfg.Timeout)
	defer cancel()
	err = s.l.cfg.Deliver(ctx, s.from, append([]string(nil), s.to...), raw)
	return s.l.reply(err)
}

// reply maps Deliver's answer to the SMTP reply the sending server gets.
func (l *Listener) reply(err error) error {
	if err == nil {
		return nil
	}
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		code := refused.Code
		if code < 500 || code > 599 {
			code = 550
		}
		reason := safeText(refused.Reason)
		if reason == "" {
			reason = "Message refused"
		}
		return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: reason}
	case errors.Is(err, ErrRefused):
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Message refused"}
	}
	l.cfg.Logger.Warn("smtp listener: delivery failed, asking the sender to retry", "error", err)
	return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// boundedListener accepts a connection only while fewer than cap(slots)
// are open.
type boundedListener struct {
	net.Listener
	slots chan struct{}
}

func (b *boundedListener) Accept() (net.Conn, error) {
	b.slots <- struct{}{}
	c, err := b.Listener.Accept()
	if err != nil {
		<-b.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: func() { <-b.slots }}, nil
}

type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// slogLogger adapts go-smtp's error log to slog.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) {
	s.l.Warn("smtp listener: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (s slogLogger) Println(v ...any) {
	s.l.Warn("smtp listener: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
