package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Email is the SMTP bridge (draft §11; README "The email bridge").
type Email struct {
	// Relay (AGENTRY_SMTP_RELAY, host:port) sends bridged email through an
	// SMTP relay, with STARTTLS unless RelayInsecure; "" writes each to the
	// outbox folder <data dir>/outbox instead. Local runtime only: on AWS
	// SES sends.
	Relay         string
	RelayUsername string // AGENTRY_SMTP_USERNAME: AUTH PLAIN with the password below
	RelayPassword string // AGENTRY_SMTP_PASSWORD, or read from AGENTRY_SMTP_PASSWORD_FILE
	// RelayInsecure (AGENTRY_SMTP_INSECURE=1): speak plaintext SMTP to the
	// relay; loopback tests only.
	RelayInsecure bool
	// Fallback (AGENTRY_SMTP_FALLBACK=1): bridge a recipient whose AMTP
	// gateway stayed unreachable for the whole retry window, when its
	// domain receives email.
	Fallback bool
	// BridgeAddress (AGENTRY_SMTP_BRIDGE_ADDRESS, default
	// amtp-bridge@<domain>): the From of bridged email, an address of our
	// domain under a reserved local-part.
	BridgeAddress string
	// Listen (AGENTRY_SMTP_LISTEN): the inbound SMTP listener's address;
	// a bare ":port" or "port" listens on loopback. "" runs none.
	Listen string
	// InboundPolicy (AGENTRY_EMAIL_INBOUND_POLICY): what becomes of inbound
	// email whose From could not be proven (DKIM/DMARC, SES verdicts):
	// accept, flag (default: delivered from the bridge address, marked
	// unverified) or reject.
	InboundPolicy string
	// SESConfigurationSet (AGENTRY_SES_CONFIGURATION_SET): AWS: the SES
	// configuration set bridged email is sent with; setting it turns the
	// bridge on in the deliver function.
	SESConfigurationSet string
	// SESInboundPrefix (AGENTRY_SES_INBOUND_PREFIX, default inbound-email/):
	// AWS: where the receipt rule's S3 action stores received email in
	// AGENTRY_BUCKET, under <prefix><SES message id>.
	SESInboundPrefix string
	// Outbox is where bridged email is written without a relay.
	Outbox string
}

// Inbound email policies.
const (
	EmailAccept = "accept"
	EmailFlag   = "flag"
	EmailReject = "reject"
)

// DefaultSESInboundPrefix is where received email is stored in the
// bucket unless AGENTRY_SES_INBOUND_PREFIX says otherwise.
const DefaultSESInboundPrefix = "inbound-email/"

// maxPasswordBytes bounds the password file, read whole at start.
const maxPasswordBytes = 4096

// emailFromEnv reads the bridge's variables; dataDir and domain are the
// already-read AGENTRY_DATA_DIR and AGENTRY_DOMAIN.
func emailFromEnv(getenv Getenv, dataDir, domain string) (Email, []error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	e := Email{
		Relay:               get("AGENTRY_SMTP_RELAY"),
		RelayUsername:       get("AGENTRY_SMTP_USERNAME"),
		RelayPassword:       getenv("AGENTRY_SMTP_PASSWORD"),
		BridgeAddress:       get("AGENTRY_SMTP_BRIDGE_ADDRESS"),
		Listen:              get("AGENTRY_SMTP_LISTEN"),
		InboundPolicy:       strings.ToLower(get("AGENTRY_EMAIL_INBOUND_POLICY")),
		SESConfigurationSet: get("AGENTRY_SES_CONFIGURATION_SET"),
		SESInboundPrefix:    get("AGENTRY_SES_INBOUND_PREFIX"),
		Outbox:              filepath.Join(dataDir, "outbox"),
	}
	var errs []error
	var err error
	if e.RelayInsecure, err = parseBool(get("AGENTRY_SMTP_INSECURE")); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_SMTP_INSECURE: %w", err))
	}
	if e.Fallback, err = parseBool(get("AGENTRY_SMTP_FALLBACK")); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_SMTP_FALLBACK: %w", err))
	}
	if file := get("AGENTRY_SMTP_PASSWORD_FILE"); file != "" {
		if e.RelayPassword != "" {
			errs = append(errs, errors.New("set only one of AGENTRY_SMTP_PASSWORD and AGENTRY_SMTP_PASSWORD_FILE"))
		} else if e.RelayPassword, err = readSecretFile(file); err != nil {
			errs = append(errs, fmt.Errorf("AGENTRY_SMTP_PASSWORD_FILE: %w", err))
		}
	}
	if e.Relay != "" {
		if _, _, err := net.SplitHostPort(e.Relay); err != nil {
			errs = append(errs, fmt.Errorf("AGENTRY_SMTP_RELAY %q: want host:port", e.Relay))
		}
	}
	if (e.RelayUsername == "") != (e.RelayPassword == "") {
		errs = append(errs, errors.New("AGENTRY_SMTP_USERNAME and AGENTRY_SMTP_PASSWORD (or _FILE) must be set together"))
	}
	if e.Listen, err = loopbackByDefault(e.Listen); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_SMTP_LISTEN: %w", err))
	}
	switch e.InboundPolicy {
	case "":
		e.InboundPolicy = EmailFlag
	case EmailAccept, EmailFlag, EmailReject:
	default:
		errs = append(errs, fmt.Errorf("AGENTRY_EMAIL_INBOUND_POLICY %q: must be accept, flag or reject", e.InboundPolicy))
	}
	if e.SESInboundPrefix == "" {
		e.SESInboundPrefix = DefaultSESInboundPrefix
	}
	if e.BridgeAddress == "" {
		e.BridgeAddress = "amtp-bridge@" + domain
	}
	if a, err := amtp.ParseAddress(e.BridgeAddress); err != nil || a.Domain != domain || !amtp.IsReservedLocalPart(a.Local) {
		errs = append(errs, fmt.Errorf("AGENTRY_SMTP_BRIDGE_ADDRESS %q: must be an address of %s under a reserved name (%s)",
			e.BridgeAddress, domain, strings.Join(amtp.ReservedLocalParts(), ", ")))
	} else {
		e.BridgeAddress = a.String()
	}
	return e, errs
}

// loopbackByDefault gives a listen address without a host the loopback
// host: an SMTP listener open to the world is a decision, not a default.
func loopbackByDefault(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("%q: want host:port, :port or port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// readSecretFile reads a one-line secret, without its line break.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	buf, err := io.ReadAll(io.LimitReader(f, maxPasswordBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(buf) > maxPasswordBytes {
		return "", fmt.Errorf("%s: longer than %d bytes", path, maxPasswordBytes)
	}
	s := strings.TrimRight(string(buf), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
