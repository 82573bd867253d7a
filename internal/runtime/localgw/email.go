package localgw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/agentry/agentry/internal/adapter/authn"
	"github.com/agentry/agentry/internal/adapter/dkim"
	"github.com/agentry/agentry/internal/adapter/outbox"
	"github.com/agentry/agentry/internal/adapter/smtp"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

// emailTransport is where the local gateway sends bridged email: the
// relay AGENTRY_SMTP_RELAY names, else the outbox folder under the data
// dir, where a developer reads each email as an .eml file.
func emailTransport(cfg config.Config) (delivery.EmailTransport, error) {
	e := cfg.Email
	if e.Relay == "" {
		o, err := outbox.New(e.Outbox)
		if err != nil {
			return nil, fmt.Errorf("email outbox: %w", err)
		}
		return o, nil
	}
	rc := smtp.RelayConfig{Addr: e.Relay, Username: e.RelayUsername, Password: e.RelayPassword,
		HelloName: cfg.Domain, AllowPlaintext: e.RelayInsecure}
	if cfg.TLSRootCA != "" {
		// A relay on a private PKI is trusted like the partners are.
		_, roots, err := authn.ClientTLS(cfg)
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(e.Relay)
		rc.TLS = &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return smtp.NewRelay(rc), nil
}

// dkimVerifier checks the DKIM signatures of received email against keys
// in DNS, asked of the resolver discovery uses.
func dkimVerifier(cfg config.Config) *dkim.Verifier {
	return dkim.NewVerifier(dkim.DNSLookup(cfg.DNSServer, 0))
}

// listenSMTP binds the inbound SMTP listener when AGENTRY_SMTP_LISTEN
// asks for one: at start, so that a port in use stops the gateway rather
// than leaving it without its inbound bridge.
func (g *Gateway) listenSMTP() error {
	if g.Config.Email.Listen == "" || g.smtpLn != nil {
		return nil
	}
	ln, err := net.Listen("tcp", g.Config.Email.Listen)
	if err != nil {
		return fmt.Errorf("smtp listen on %s: %w", g.Config.Email.Listen, err)
	}
	g.smtpLn = ln
	return nil
}

// SMTPAddr is the bound address of the inbound SMTP listener, "" when
// there is none.
func (g *Gateway) SMTPAddr() string {
	if g.smtpLn == nil {
		return ""
	}
	return g.smtpLn.Addr().String()
}

// serveSMTP serves the bound SMTP listener until ctx ends.
func (g *Gateway) serveSMTP(ctx context.Context) {
	if g.smtpLn == nil {
		return
	}
	l := smtp.NewListener(smtp.ListenerConfig{
		Addr: g.smtpLn.Addr().String(), Domain: g.Config.Domain, MaxRecipients: g.Config.MaxRecipients,
		Deliver: g.receiveSMTP, Logger: g.log,
	})
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	if err := l.Serve(g.smtpLn); err != nil && ctx.Err() == nil {
		g.log.Error("smtp listener stopped", "err", err)
	}
}

// receiveSMTP hands one email the listener accepted to the bridge; a
// refusal is a 5xx reply, anything else a 4xx (the sender retries).
func (g *Gateway) receiveSMTP(ctx context.Context, _ string, to []string, raw []byte) error {
	_, err := g.Bridge.Receive(ctx, bridge.Inbound{Raw: raw, Recipients: to})
	return SMTPReply(err)
}

// SMTPReply is what the bridge's answer means to a sending mail server.
func SMTPReply(err error) error {
	var ae *amtp.Error
	if !errors.As(err, &ae) {
		return err
	}
	code := 550
	switch ae.Code {
	case amtp.CodeMessageTooLarge:
		code = 552
	case amtp.CodeInvalidMessageFormat:
		code = 554
	}
	return &smtp.RefusedError{Code: code, Reason: ae.Message}
}
