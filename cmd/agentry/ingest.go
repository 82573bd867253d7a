package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
	"github.com/agentry/agentry/internal/usecase/bridge"
)

// Exit codes of ingest-email, as sendmail's (sysexits.h): a mail server
// that pipes mail to it bounces on a refusal and retries on a temporary
// failure.
const (
	exitRefused  = 1  // the email was refused; the reason is on stderr
	exitUsage    = 64 // EX_USAGE
	exitTempFail = 75 // EX_TEMPFAIL: try again later
)

// ingestTimeout bounds one ingestion, store opening included.
const ingestTimeout = 2 * time.Minute

// ingestEmail reads one email (RFC 5322) on stdin and hands it to the
// local gateway's inbound bridge: through the running gateway's SMTP
// listener when AGENTRY_SMTP_LISTEN is set, else straight into the data
// dir (the gateway must then be stopped: the store is one process's).
func ingestEmail(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ingest-email", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var to listFlag
	fs.Var(&to, "to", "envelope recipient (repeatable); default the To and Cc addresses of our domain")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: agentry ingest-email [-to address]... < message.eml")
		return exitUsage
	}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		fmt.Fprintln(stderr, "agentry: configuration:", err)
		return exitUsage
	}
	if cfg.Backend != "embedded" {
		fmt.Fprintln(stderr, "agentry: ingest-email feeds the local gateway; on AWS, SES receives email (the inbound-email function)")
		return exitUsage
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, email.DefaultLimits.MaxBytes+1))
	if err != nil {
		fmt.Fprintln(stderr, "agentry: read the email:", err)
		return exitTempFail
	}
	if int64(len(raw)) > email.DefaultLimits.MaxBytes {
		fmt.Fprintf(stderr, "agentry: refused: the email is larger than %d bytes\n", email.DefaultLimits.MaxBytes)
		return exitRefused
	}
	ctx, cancel := context.WithTimeout(context.Background(), ingestTimeout)
	defer cancel()
	if cfg.Email.Listen != "" {
		return handOver(ctx, cfg, to, raw, stdout, stderr)
	}
	return ingestDirect(ctx, cfg, to, raw, stdout, stderr)
}

// ingestDirect opens the data dir and runs the bridge in this process.
func ingestDirect(ctx context.Context, cfg config.Config, to []string, raw []byte, stdout, stderr io.Writer) int {
	g, err := localgw.New(cfg, localgw.Options{Logger: newLogger(stderr, cfg.LogLevel)})
	if err != nil {
		fmt.Fprintln(stderr, "agentry: open the gateway (is it running? then set AGENTRY_SMTP_LISTEN and it takes the email):", err)
		return exitTempFail
	}
	defer func() { _ = g.Close() }()
	res, err := g.Bridge.Receive(ctx, bridge.Inbound{Raw: raw, Recipients: to})
	var ae *amtp.Error
	switch {
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "agentry: refused: %s (%s)\n", ae.Message, ae.Code)
		return exitRefused
	case err != nil:
		slog.Default().Error("ingest email", "err", err)
		fmt.Fprintln(stderr, "agentry: temporary failure, try again later:", err)
		return exitTempFail
	}
	for _, a := range res.Accepts {
		fmt.Fprintf(stdout, "accepted %s as %s message %s\n", res.Kind, a.Status, a.MessageID)
	}
	return 0
}

// handOver gives the email to the running gateway's SMTP listener, as a
// mail server on the same host would.
func handOver(ctx context.Context, cfg config.Config, to []string, raw []byte, stdout, stderr io.Writer) int {
	if len(to) == 0 {
		e, err := email.Parse(bytes.NewReader(raw), email.Limits{})
		if err != nil {
			fmt.Fprintln(stderr, "agentry: refused: the email could not be read as an Internet message")
			return exitRefused
		}
		to = ourAddresses(cfg.Domain, append(append([]email.Mailbox(nil), e.To...), e.Cc...))
		if len(to) == 0 {
			fmt.Fprintf(stderr, "agentry: refused: the email has no recipient at %s\n", cfg.Domain)
			return exitRefused
		}
	}
	err := smtpHandOver(ctx, cfg.Email.Listen, to, raw)
	var se *gosmtp.SMTPError
	switch {
	case errors.As(err, &se) && se.Code >= 500:
		fmt.Fprintf(stderr, "agentry: refused: %s\n", se.Message)
		return exitRefused
	case err != nil:
		fmt.Fprintln(stderr, "agentry: temporary failure, try again later:", err)
		return exitTempFail
	}
	fmt.Fprintf(stdout, "accepted by the gateway at %s\n", cfg.Email.Listen)
	return 0
}

func smtpHandOver(ctx context.Context, addr string, to []string, raw []byte) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if d, ok := ctx.Deadline(); ok {
		c.CommandTimeout, c.SubmissionTimeout = time.Until(d), time.Until(d)
	}
	// The envelope sender is not ours to know; "" is what a bounce uses,
	// and the bridge reads the From of the email itself.
	if err := c.SendMail("", to, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

// ourAddresses are the addresses of domain among mbs.
func ourAddresses(domain string, mbs []email.Mailbox) []string {
	var out []string
	for _, mb := range mbs {
		if a, err := amtp.ParseAddress(mb.Address); err == nil && a.Domain == domain {
			out = append(out, a.String())
		}
	}
	return out
}
