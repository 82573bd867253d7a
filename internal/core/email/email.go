package email

import (
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// SchemaWrapped is the schema of an AMTP message that wraps an ordinary
// email (one that carries no AMTP message and answers none of ours).
const SchemaWrapped = "agntcy:email.message.v1"

// The X-AMTP-* header fields Render writes, in the canonical form Parse
// stores them under in Email.AMTPHeaders.
const (
	HeaderMessageID      = "X-Amtp-Message-Id"
	HeaderSender         = "X-Amtp-Sender"
	HeaderSchema         = "X-Amtp-Schema"
	HeaderIdempotencyKey = "X-Amtp-Idempotency-Key"
)

// Errors Parse returns, wrapped with details. A caller answers ErrTooLarge
// (which ErrTooComplex also matches) with "too large / over a limit" and
// ErrMalformed with "not a message we can read".
var (
	ErrTooLarge   = errors.New("email: over a size limit")
	ErrTooComplex = fmt.Errorf("%w: too many header fields, parts or nesting levels", ErrTooLarge)
	ErrMalformed  = errors.New("email: malformed message")
)

// RenderOptions says how an AMTP message becomes an email.
type RenderOptions struct {
	// Bridge is the From address: the bridge address of our domain
	// (default amtp-bridge@<domain>).
	Bridge amtp.Address
	// ReplyTo receives a person's answer; the caller picks an address
	// that the inbound bridge maps back to the AMTP sender.
	ReplyTo amtp.Address
	// UpgradeHint is the _amtp TXT record the recipient's domain could
	// publish to receive AMTP directly; "" leaves the hint out.
	UpgradeHint string
}

// Limits bound what Parse reads and keeps. Zero fields take the defaults
// documented on DefaultLimits.
type Limits struct {
	MaxBytes     int64 // the whole message as received
	MaxHeaders   int   // header fields per part
	MaxParts     int   // MIME parts in all
	MaxDepth     int   // multipart nesting
	MaxPartBytes int64 // one part after transfer decoding
}

// DefaultLimits are the limits Parse applies where a Limits field is zero:
//
//   - MaxBytes 25 MiB: what the large mail services let a person send
//     (an attachment of about 18 MiB after base64);
//   - MaxHeaders 1000 fields per part: a long relay path has a few dozen
//     Received fields, a mailing list adds a few dozen more;
//   - MaxParts 256: a newsletter with many inline images stays well below;
//   - MaxDepth 10 levels of multipart: mail clients nest 3 to 5
//     (mixed → alternative → related), a forward a few more;
//   - MaxPartBytes 25 MiB decoded: transfer decoding only shrinks, but a
//     charset conversion can grow a text part up to threefold.
var DefaultLimits = Limits{
	MaxBytes:     25 << 20,
	MaxHeaders:   1000,
	MaxParts:     256,
	MaxDepth:     10,
	MaxPartBytes: 25 << 20,
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultLimits.MaxHeaders
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultLimits.MaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxPartBytes <= 0 {
		l.MaxPartBytes = DefaultLimits.MaxPartBytes
	}
	return l
}

// Mailbox is one parsed address (display name decoded).
type Mailbox struct {
	Name    string
	Address string
}

// Attachment is a part that is neither the text nor the HTML body; the
// wrapped AMTP message refers to it by name, type, size and digest.
type Attachment struct {
	Filename    string
	ContentType string
	Size        int64
	SHA256      string // hex
}

// Email is a parsed Internet message, decoded as a mail client would.
type Email struct {
	From        []Mailbox
	To          []Mailbox
	Cc          []Mailbox
	Subject     string // RFC 2047 decoded
	MessageID   string // without angle brackets
	InReplyTo   []string
	References  []string
	Date        time.Time
	AMTPHeaders map[string]string // X-AMTP-* fields, canonical names; as the sender wrote them
	Text        string            // the text/plain body, UTF-8
	HTML        string            // the text/html body, UTF-8
	Attachments []Attachment

	amtpPart []byte
	// digest is the SHA-256 of the raw message: Wrap's idempotency key
	// for a mail without Message-ID.
	digest [32]byte
}

// AMTPMessage returns the AMTP message an application/json part carries
// (the first that amtp.Parse accepts). Whoever sent the email chose it: a
// forwarded bridged email carries someone else's message.
func (e *Email) AMTPMessage() ([]byte, bool) {
	return e.amtpPart, e.amtpPart != nil
}

// AMTPHeader returns the X-AMTP-* field name (any case), decoded; "" when
// absent.
func (e *Email) AMTPHeader(name string) string {
	return e.AMTPHeaders[textproto.CanonicalMIMEHeaderKey(name)]
}
