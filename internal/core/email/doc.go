// Package email maps AMTP messages to Internet mail and back (draft §11.2:
// the SMTP bridge). It is pure: it renders and parses bytes (RFC 5322,
// RFC 2045–2047 through emersion/go-message) and never sends or receives.
//
//	Render(m *amtp.Message, raw []byte, to amtp.Address, o RenderOptions) ([]byte, error)
//	Parse(r io.Reader, l Limits) (*Email, error)
//	(*Email).AMTPMessage() ([]byte, bool)         // a carried application/json AMTP part
//	(*Email).RepliesTo(domain string) (messageID string, ok bool) // In-Reply-To/References of a bridged message of ours
//	Wrap(e *Email, to amtp.Address, sender amtp.Address, now time.Time) (*amtp.Message, error) // schema agntcy:email.message.v1
//
// Render's email has Message-ID <amtp.{AMTP message id}@{bridge domain}>
// (BridgedMessageID), which a person's reply names in In-Reply-To and
// References; RepliesTo reads it back. Parse refuses what is over Limits
// (ErrTooLarge, ErrTooComplex) or unreadable (ErrMalformed), and keeps
// memory proportional to the limits, not to what the input claims.
// docs/email-bridge.md describes the email a recipient gets and the
// wrapped schema.
package email
