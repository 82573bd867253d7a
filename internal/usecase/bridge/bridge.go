// Package bridge is the inbound leg of the SMTP bridge (draft §11.2.2):
// an email received for our domain (by SES on AWS, by the local SMTP
// listener or `agentry ingest-email`) becomes AMTP mail on the gateway's
// normal accept path.
//
// What an email becomes, in this order:
//
//  1. the AMTP message it carries (an application/json part written by
//     another gateway's bridge), accepted as mail from that gateway's
//     domain: its signature and the signature policy decide its trust;
//  2. a reply to a message we bridged to email (In-Reply-To, References or
//     X-AMTP-Message-ID name it), from a proven From: an AMTP reply to the
//     original sender, in that message's workflow when it had one;
//  3. anything else: wrapped (schema agntcy:email.message.v1) and
//     delivered to the agents the recipients' local-parts name.
//
// A From is proven when a DKIM signature of its domain verified (locally)
// or SES's DMARC verdict passed (on AWS). An unproven From is never the
// AMTP sender: the bridge address is, and the status says unsigned.
package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Gateway is the accept path as the bridge uses it (*gateway.Service).
type Gateway interface {
	// Accept takes a carried AMTP message as another gateway's mail.
	Accept(ctx context.Context, p gateway.Principal, body []byte) (*gateway.AcceptResult, error)
	// SubmitBridged takes a message the bridge made, with its finding
	// about the sender.
	SubmitBridged(ctx context.Context, m *amtp.Message, sv gateway.SenderVerification) (*gateway.AcceptResult, error)
}

// Originals reads the messages replies answer (gateway.MessageStore).
type Originals interface {
	GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error)
}

// DKIMVerifier verifies the DKIM signatures of a raw email and answers
// the signing domains (d=) of those that verified. An error means the
// check could not be made (DNS down) and is retried by the sending MTA.
type DKIMVerifier interface {
	VerifiedDomains(ctx context.Context, raw []byte) ([]string, error)
}

// Verdict is one of SES's receipt verdicts.
type Verdict string

// SES verdict values.
const (
	Pass Verdict = "PASS"
	Fail Verdict = "FAIL"
	Gray Verdict = "GRAY"
)

// Verdicts are SES's findings about a received email (the receipt's
// spfVerdict, dkimVerdict, dmarcVerdict, spamVerdict, virusVerdict).
type Verdicts struct {
	SPF, DKIM, DMARC, Spam, Virus Verdict
}

// Inbound is one received email.
type Inbound struct {
	Raw []byte
	// Recipients are the envelope recipients (RCPT TO, SES's
	// receipt.recipients); none takes the To and Cc of our domain.
	Recipients []string
	// SES holds SES's verdicts on AWS; nil checks DKIM here.
	SES *Verdicts
}

// Policy is what becomes of email whose From could not be proven.
type Policy string

// Policies (AGENTRY_EMAIL_INBOUND_POLICY).
const (
	Accept Policy = "accept" // delivered from the bridge address
	Flag   Policy = "flag"   // the same, with a warning logged and the message marked
	Reject Policy = "reject" // refused
)

// HeaderFromProven is the AMTP header the bridge sets on mail it wraps:
// "true" when the From was proven, "false" when it was not (and the
// sender is the bridge address).
const HeaderFromProven = "email-from-proven"

// Config configures a Bridge.
type Config struct {
	Domain string       // ours, lower-case
	Bridge amtp.Address // the bridge address: the sender of unproven mail
	Policy Policy
	Limits email.Limits
	// MaxRecipients bounds the recipients one email is delivered to.
	MaxRecipients int
	// Schemas is where payloads are validated; nil where they are not.
	Schemas Schemas
	Now     func() time.Time
	Logger  *slog.Logger
}

// Bridge turns received email into AMTP mail.
type Bridge struct {
	cfg       Config
	gw        Gateway
	originals Originals
	dkim      DKIMVerifier
	schema    schemaOnce
}

// New builds a Bridge; dkim may be nil where SES verdicts are the only
// proof (AWS).
func New(cfg Config, gw Gateway, originals Originals, dkim DKIMVerifier) (*Bridge, error) {
	if gw == nil || originals == nil || cfg.Domain == "" || cfg.Bridge.IsZero() {
		return nil, errors.New("bridge: gateway, originals, domain and bridge address are required")
	}
	switch cfg.Policy {
	case "":
		cfg.Policy = Flag
	case Accept, Flag, Reject:
	default:
		return nil, fmt.Errorf("bridge: unknown inbound policy %q", cfg.Policy)
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = amtp.DefaultMaxRecipients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Bridge{cfg: cfg, gw: gw, originals: originals, dkim: dkim}, nil
}

// Result is what became of an email.
type Result struct {
	Kind    Kind
	Accepts []*gateway.AcceptResult
}

// Kind says which of the package's three cases an email was.
type Kind string

// Kinds of inbound email.
const (
	Carried Kind = "carried" // an AMTP message it carried
	Reply   Kind = "reply"   // an answer to a bridged message
	Wrapped Kind = "wrapped" // any other email
)

// Receive turns one email into AMTP mail. A refusal is an *amtp.Error
// (the SMTP side answers 5xx); any other error is temporary (4xx).
func (b *Bridge) Receive(ctx context.Context, in Inbound) (*Result, error) {
	if limit := b.limits().MaxBytes; int64(len(in.Raw)) > limit {
		return nil, amtp.Errorf(amtp.CodeMessageTooLarge, "the email is larger than %d bytes", limit)
	}
	if in.SES != nil && (in.SES.Spam == Fail || in.SES.Virus == Fail) {
		return nil, amtp.Errorf(amtp.CodePolicyDenied, "the email was judged spam or to carry a virus")
	}
	e, err := email.Parse(bytes.NewReader(in.Raw), b.cfg.Limits)
	if err != nil {
		if errors.Is(err, email.ErrTooLarge) {
			return nil, amtp.Errorf(amtp.CodeMessageTooLarge, "the email is over this gateway's limits (size, parts, nesting or header fields)")
		}
		return nil, amtp.Errorf(amtp.CodeInvalidMessageFormat, "the email could not be read as an Internet message")
	}
	if carried, ok := e.AMTPMessage(); ok && !b.ours(carried) {
		res, err := b.gw.Accept(ctx, gateway.Principal{Kind: gateway.Anonymous}, carried)
		if err != nil {
			return nil, err
		}
		return &Result{Kind: Carried, Accepts: []*gateway.AcceptResult{res}}, nil
	}
	proof, err := b.prove(ctx, in, e)
	if err != nil {
		return nil, err
	}
	if !proof.proven && b.cfg.Policy == Reject {
		return nil, amtp.Errorf(amtp.CodeSignatureRequired, "the email's sender could not be proven (DKIM/DMARC) and this gateway refuses such mail")
	}
	if proof.proven {
		if res, ok, err := b.reply(ctx, e, proof); ok || err != nil {
			return res, err
		}
	}
	return b.wrap(ctx, in, e, proof)
}

func (b *Bridge) limits() email.Limits {
	l := b.cfg.Limits
	if l.MaxBytes <= 0 {
		l.MaxBytes = email.DefaultLimits.MaxBytes
	}
	return l
}

// ours reports whether a carried AMTP message claims one of our senders:
// our own bridged mail coming back (a forward, a reply quoting it whole)
// is not another gateway's mail.
func (b *Bridge) ours(carried []byte) bool {
	m, err := amtp.Parse(carried, amtp.Limits{MaxRecipients: 1 << 16})
	return err == nil && m.SenderAddress().Domain == b.cfg.Domain
}

// proof is what the bridge established about an email's From.
type proof struct {
	from   amtp.Address // the From, when it is an AMTP address at all
	proven bool
	sv     gateway.SenderVerification
}

// prove decides whether the From is proven: a DKIM signature verified for
// its domain (or a parent of it, DMARC's relaxed alignment), or SES's
// DMARC verdict passed. An address of our own domain is never proven by
// email: agents send AMTP.
func (b *Bridge) prove(ctx context.Context, in Inbound, e *email.Email) (proof, error) {
	var p proof
	method := gateway.MethodDKIM
	if in.SES != nil {
		method = gateway.MethodSES
	}
	p.sv = gateway.SenderVerification{Result: gateway.Unsigned, Method: method}
	if len(e.From) != 1 {
		return p, nil
	}
	from, err := amtp.ParseAddress(e.From[0].Address)
	if err != nil {
		return p, nil //nolint:nilerr // a From that is no address leaves the mail unsigned
	}
	p.from, p.sv.Domain = from, from.Domain
	if from.Domain == b.cfg.Domain {
		return p, nil
	}
	switch {
	case in.SES != nil:
		p.proven = in.SES.DMARC == Pass
	case b.dkim != nil:
		domains, err := b.dkim.VerifiedDomains(ctx, in.Raw)
		if err != nil {
			return p, fmt.Errorf("verify DKIM: %w", err)
		}
		p.proven = aligned(from.Domain, domains)
	}
	if p.proven {
		p.sv.Result = gateway.VerifiedSignature
	}
	return p, nil
}

// aligned reports whether one of the signing domains is the From domain
// or a parent of it.
func aligned(from string, signers []string) bool {
	for _, d := range signers {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == from || (strings.Count(d, ".") >= 1 && strings.HasSuffix(from, "."+d)) {
			return true
		}
	}
	return false
}

// reply makes an answer to a bridged message the AMTP reply it is: to the
// original sender, in reply to the original, in its workflow. ok is false
// when the email answers no message of ours that the From received.
func (b *Bridge) reply(ctx context.Context, e *email.Email, p proof) (*Result, bool, error) {
	id, ok := e.RepliesTo(b.cfg.Domain)
	if !ok {
		return nil, false, nil
	}
	sm, err := b.originals.GetMessage(ctx, id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the original %s: %w", id, err)
	}
	orig, err := amtp.Parse(sm.Raw, amtp.Limits{MaxRecipients: 1 << 16})
	if err != nil {
		return nil, false, fmt.Errorf("stored message %s does not parse: %w", id, err)
	}
	if !addressed(orig, p.from) {
		// Anyone may answer an email; only its recipient answers the
		// message. Anyone else's answer is ordinary mail.
		return nil, false, nil
	}
	to := orig.SenderAddress()
	m, err := email.Wrap(e, to, p.from, b.cfg.Now())
	if err != nil {
		return nil, false, amtp.Errorf(amtp.CodeInvalidMessageFormat, "the email cannot be carried as an AMTP message")
	}
	m.Recipients = []string{to.String()}
	m.InReplyTo = orig.MessageID
	if wf := workflowOf(orig); wf != "" {
		m.WorkflowID, m.ResponseType = wf, amtp.ResponseWorkflowResponse
	}
	setHeader(m, HeaderFromProven, "true")
	res, err := b.submit(ctx, m, p.sv)
	if err != nil {
		return nil, true, err
	}
	return &Result{Kind: Reply, Accepts: []*gateway.AcceptResult{res}}, true, nil
}

// addressed reports whether a is a recipient of m (a coordinated
// message's recipients include every participant it names).
func addressed(m *amtp.Message, a amtp.Address) bool {
	for _, r := range m.RecipientAddresses() {
		if r.Key() == a.Key() {
			return true
		}
	}
	return false
}

// workflowOf is the workflow a message belongs to (PROTOCOL.md "Message
// fields"): its workflow_id, else its own id when it is coordinated.
func workflowOf(m *amtp.Message) string {
	if m.WorkflowID != "" {
		return m.WorkflowID
	}
	if len(m.Coordination) > 0 {
		return m.MessageID
	}
	return ""
}

// wrap delivers any other email to the agents its recipients name.
func (b *Bridge) wrap(ctx context.Context, in Inbound, e *email.Email, p proof) (*Result, error) {
	rcpts, err := b.localRecipients(in, e)
	if err != nil {
		return nil, err
	}
	sender := p.from
	if !p.proven {
		sender = b.cfg.Bridge
		if b.cfg.Policy == Flag {
			b.cfg.Logger.WarnContext(ctx, "email from an unproven sender delivered from the bridge address", "from_domain", p.sv.Domain, "method", p.sv.Method)
		}
	}
	m, err := email.Wrap(e, rcpts[0], sender, b.cfg.Now())
	if err != nil {
		return nil, amtp.Errorf(amtp.CodeInvalidMessageFormat, "the email cannot be carried as an AMTP message")
	}
	m.Recipients = m.Recipients[:0]
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, r.String())
	}
	setHeader(m, HeaderFromProven, fmt.Sprint(p.proven))
	res, err := b.submit(ctx, m, p.sv)
	if err != nil {
		return nil, err
	}
	return &Result{Kind: Wrapped, Accepts: []*gateway.AcceptResult{res}}, nil
}

// localRecipients are the addresses of our domain the email is for: the
// envelope's, else the To and Cc fields'. Others are not ours to deliver
// (the bridge does not relay).
func (b *Bridge) localRecipients(in Inbound, e *email.Email) ([]amtp.Address, error) {
	var cands []string
	if len(in.Recipients) > 0 {
		cands = in.Recipients
	} else {
		for _, mb := range append(append([]email.Mailbox(nil), e.To...), e.Cc...) {
			cands = append(cands, mb.Address)
		}
	}
	seen := map[string]bool{}
	var out []amtp.Address
	for _, c := range cands {
		a, err := amtp.ParseAddress(c)
		if err != nil || a.Domain != b.cfg.Domain || seen[a.Key()] {
			continue
		}
		seen[a.Key()] = true
		out = append(out, a)
		if len(out) > b.cfg.MaxRecipients {
			return nil, amtp.Errorf(amtp.CodeInvalidRecipient, "the email has more than %d recipients at %s", b.cfg.MaxRecipients, b.cfg.Domain)
		}
	}
	if len(out) == 0 {
		return nil, amtp.Errorf(amtp.CodeInvalidRecipient, "the email has no recipient at %s", b.cfg.Domain)
	}
	return out, nil
}

// submit hands a wrapped message to the accept path, its schema
// registered first.
func (b *Bridge) submit(ctx context.Context, m *amtp.Message, sv gateway.SenderVerification) (*gateway.AcceptResult, error) {
	if err := b.schema.ensure(ctx, b.cfg.Schemas); err != nil {
		return nil, err
	}
	return b.gw.SubmitBridged(ctx, m, sv)
}

func setHeader(m *amtp.Message, k, v string) {
	if m.Headers == nil {
		m.Headers = map[string]string{}
	}
	m.Headers[k] = v
}
