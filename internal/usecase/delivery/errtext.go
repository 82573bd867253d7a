package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// What the sender reads about a failed delivery (a recipient's
// error_message, the failure report) is written for the sender: it names
// the kind of failure, never the gateway's resolver, what a name resolved
// to, addresses, ports, URLs or Go error text. The full error goes to the
// operator's log (outcome.detail, logged once by finish).

// The parties a delivery talks to, as the sender reads them.
const (
	targetWebhook = "the recipient's webhook"
	targetGateway = "the recipient's gateway"
)

// maxPeerText bounds the part of a peer's own error text that is passed
// on to the sender.
const maxPeerText = 256

// transportError is what the sender is told of an exchange with target
// that got no HTTP answer, and whether the failure is permanent: a refused
// address is, everything else may pass and is retried.
func transportError(target string, err error) (*amtp.Error, bool) {
	switch {
	case errors.Is(err, gateway.ErrBlockedAddress):
		return amtp.Errorf(amtp.CodeRecipientUnavailable, "the destination address is not allowed"), true
	case timedOut(err):
		return amtp.Errorf(amtp.CodeRecipientUnavailable, "%s did not answer in time", target), false
	case tlsRefused(err):
		return amtp.Errorf(amtp.CodeRecipientUnavailable, "%s could not be reached: its TLS certificate was not accepted", target), false
	default:
		return amtp.Errorf(amtp.CodeRecipientUnavailable, "%s could not be reached", target), false
	}
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// tlsRefused: the peer's certificate did not verify — worth telling the
// sender, whose correspondent can fix it.
func tlsRefused(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &inv)
}

// peerText makes text a peer answered fit to pass on: valid UTF-8,
// control and format characters (terminal escapes, CR/LF, bidi overrides)
// turned into spaces, runs of spaces collapsed, at most maxPeerText bytes
// cut at a character boundary.
func peerText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > maxPeerText {
			return b.String() + "…"
		}
		b.WriteRune(r)
	}
	return b.String()
}
