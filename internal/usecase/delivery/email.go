package delivery

import (
	"context"
	"errors"
)

// EmailTransport is the outbound leg of the SMTP bridge (draft §11.2.1):
// it hands one rendered email for one recipient to a mail system (SES,
// an SMTP relay, or an outbox folder). The worker renders the email and
// decides retries; the transport only sends.
type EmailTransport interface {
	// SendEmail sends e and returns the mail system's id for it ("" when
	// it gives none). An error that is an *EmailRejected is final; any
	// other error is retried like a network failure.
	SendEmail(ctx context.Context, e OutboundEmail) (providerID string, err error)
}

// OutboundEmail is one rendered email for one recipient.
type OutboundEmail struct {
	From string // envelope sender: the bridge address of our domain
	To   string // the one recipient (an RFC 5321 mailbox)
	Raw  []byte // the RFC 5322 message, CRLF line endings
}

// EmailRejected is a mail system's final refusal of an email (an SMTP 5xx
// reply, SES MessageRejected). Reason is safe to show the sender: the
// transport strips hosts, addresses of ours and control characters.
type EmailRejected struct {
	Reason string
}

func (e *EmailRejected) Error() string { return "email rejected: " + e.Reason }

// IsEmailRejected reports whether err is a final refusal.
func IsEmailRejected(err error) bool {
	var r *EmailRejected
	return errors.As(err, &r)
}
