package gateway

import (
	"context"
	"fmt"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Verification methods of mail that arrived as email (the SMTP bridge,
// draft §11.2.2): a DKIM signature aligned with the From domain that this
// gateway verified, or the verdicts of the SES receipt that received it.
const (
	MethodDKIM = "dkim"
	MethodSES  = "ses"
)

// SubmitBridged accepts a message the email bridge made of an inbound
// email, with sv saying how far its sender was proven. It takes the path
// of mail from another domain (policy, schema, workflow replies, one
// storage id per recipient) without a signature check: sv is the bridge's
// finding. The bridge never relays, and an email never speaks for one of
// our agents: every recipient must be ours, and a sender of our domain
// must be one of the names the gateway itself sends as (the bridge
// address, for mail whose From could not be proven).
func (s *Submission) SubmitBridged(ctx context.Context, m *amtp.Message, sv SenderVerification) (*AcceptResult, error) {
	raw := m.AppendJSON(nil)
	if int64(len(raw)) > s.maxBytes {
		return nil, amtp.Errorf(amtp.CodeMessageTooLarge, "message is larger than %d bytes", s.maxBytes).WithDetail("max_size", s.maxBytes)
	}
	parsed, err := amtp.ParseOwned(raw, amtp.Limits{MaxRecipients: s.maxRecipients})
	if err != nil {
		return nil, err
	}
	if from := parsed.SenderAddress(); s.site.isLocal(from) && !amtp.IsReservedLocalPart(from.Local) {
		return nil, amtp.Errorf(amtp.CodeForbidden, "an email cannot be accepted as mail of %s", from).WithDetail("field", "sender")
	}
	for i, r := range parsed.RecipientAddresses() {
		if !s.site.isLocal(r) {
			return nil, amtp.Errorf(amtp.CodeForbidden, "this gateway does not relay: %s is not in %s", r, s.site.domain).WithDetail("field", fmt.Sprintf("recipients[%d]", i))
		}
	}
	return s.accept(ctx, submission{m: parsed, origin: OriginRemote, verification: sv})
}
