package delivery

import (
	"context"
	"errors"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// BridgeConfig configures the outbound leg of the SMTP bridge (draft
// §11.2.1). It has effect only when Deps.Email is set.
type BridgeConfig struct {
	// Address is the From of every bridged email; "" means
	// amtp-bridge@<Domain> (a reserved local-part, so no agent can
	// register it and answer as the bridge).
	Address string
	// Fallback bridges a recipient whose domain has an AMTP gateway but
	// whose delivery ran out of retries, when the domain also has mail
	// exchangers (the draft's discovery flowchart, AGENTRY_SMTP_FALLBACK).
	Fallback bool
}

// BridgeLocalPart is the default local-part of the bridge address.
const BridgeLocalPart = "amtp-bridge"

// MailExchangers tells whether a domain receives email. Discovery only
// reports MX hosts for domains without an AMTP record; the fallback asks
// about domains that have one.
type MailExchangers interface {
	HasMailExchangers(ctx context.Context, domain string) (bool, error)
}

// ViaSMTP is the via of a recipient delivered through the email bridge
// (PROTOCOL.md "Status vocabulary").
const ViaSMTP = "smtp"

// bridgeAddress is the From of bridged email.
func (w *Worker) bridgeAddress() (amtp.Address, error) {
	a := w.cfg.Bridge.Address
	if a == "" {
		a = BridgeLocalPart + "@" + w.cfg.Domain
	}
	return amtp.ParseAddress(a)
}

// bridges reports whether a domain without an AMTP record is reached by
// email: the bridge is configured and the domain names mail exchangers.
func (w *Worker) bridges(route gateway.Route) bool {
	return w.d.Email != nil && route.Invalid == "" && len(route.MX) > 0
}

// UpgradeHint is the record a bridged recipient's domain would publish to
// be reached over AMTP instead of email: the capability record of draft
// §3.2.1, written as §11.2.1's example writes it (a gateway at
// amtp.<domain>, which they adjust to where theirs runs).
func UpgradeHint(domain string) string {
	return "_amtp." + domain + ". IN TXT \"v=amtp1;gateway=https://amtp." + domain + "\""
}

// bridge hands the message to the email transport, one email per
// recipient. body is the AMTP message for those recipients as it would go
// to a gateway (signed when we sign), carried whole in the email so that
// a receiving gateway can verify it.
func (w *Worker) bridge(ctx context.Context, m *amtp.Message, body []byte, domain string, rcpts []string) outcome {
	from, err := w.bridgeAddress()
	if err != nil {
		return outcome{transient: amtp.Errorf(amtp.CodeTemporaryFailure, "this gateway's email bridge is misconfigured"), detail: "bridge address: " + err.Error()}
	}
	o := outcome{results: map[string]result{}}
	for _, r := range rcpts {
		res, transient, detail := w.sendEmail(ctx, m, body, from, domain, r)
		if transient != nil {
			// One recipient per task: a transient failure retries the task.
			return outcome{transient: transient, detail: detail}
		}
		if detail != "" {
			o.detail = detail
		}
		o.results[r] = res
	}
	return o
}

// sendEmail renders and sends the email for one recipient: a settled
// result, or a transient error to retry, and a detail for the log.
func (w *Worker) sendEmail(ctx context.Context, m *amtp.Message, body []byte, from amtp.Address, domain, rcpt string) (result, *amtp.Error, string) {
	to, err := amtp.ParseAddress(rcpt)
	if err != nil {
		return result{err: amtp.Errorf(amtp.CodeInvalidRecipient, "%s is not an address", rcpt)}, nil, ""
	}
	// A person's answer goes to the sender's own address here, which the
	// inbound bridge delivers to that agent (as a reply when it answers
	// this email, see internal/usecase/bridge).
	replyTo := m.SenderAddress()
	raw, err := email.Render(m, body, to, email.RenderOptions{Bridge: from, ReplyTo: replyTo, UpgradeHint: UpgradeHint(domain)})
	if err != nil {
		return result{err: amtp.Errorf(amtp.CodeInvalidMessageFormat, "the message cannot be written as an email")}, nil, "render email: " + err.Error()
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	id, err := w.d.Email.SendEmail(actx, OutboundEmail{From: from.String(), To: to.String(), Raw: raw})
	var rej *EmailRejected
	if errors.As(err, &rej) {
		return result{err: amtp.Errorf(amtp.CodeRecipientUnavailable, "the recipient's mail system refused the email: %s", peerText(rej.Reason))}, nil, err.Error()
	}
	if err != nil {
		return result{}, amtp.Errorf(amtp.CodeRecipientUnavailable, "the email could not be handed to the mail system"), "send email: " + err.Error()
	}
	w.log.InfoContext(ctx, "bridged to email", "message_id", m.MessageID, "recipient", to.String(), "provider_id", id)
	return result{delivered: true, via: ViaSMTP}, nil, ""
}

// fallBack settles a task out of retries: a remote recipient whose
// gateway never answered is bridged to email instead of failed when
// Config.Bridge.Fallback is set and its domain receives email (the
// draft's flowchart); anything else gives up.
func (w *Worker) fallBack(ctx context.Context, j job, o outcome) outcome {
	t := j.task
	if !w.cfg.Bridge.Fallback || w.d.Email == nil || w.d.MX == nil || t.Kind != gateway.TaskRemote ||
		j.msg.SenderAddress().Domain != w.cfg.Domain {
		return giveUp(j, o)
	}
	has, err := w.d.MX.HasMailExchangers(ctx, t.Domain)
	if err != nil || !has {
		if err != nil {
			o.detail += "; email fallback: " + err.Error()
		}
		return giveUp(j, o)
	}
	fwd, body, failed := w.outboundBody(ctx, j.msg, t.Domain, j.pending)
	if failed == nil {
		bridged := w.bridge(ctx, fwd, body, t.Domain, j.pending)
		if bridged.transient == nil {
			w.log.InfoContext(ctx, "gateway unreachable for the whole retry window; bridged to email", "domain", t.Domain, "cause", o.transient.Message)
			return bridged
		}
		o.detail += "; email fallback: " + bridged.detail
	}
	return giveUp(j, o)
}
