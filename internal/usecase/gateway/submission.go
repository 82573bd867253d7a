package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
)

// payloadValidator is what Submission needs of the SchemaRegistry.
type payloadValidator interface {
	Validate(ctx context.Context, id string, payload json.RawMessage) (*schema.Result, error)
}

// coordinator is what Submission needs of the workflow driver: to start a
// workflow with the message that asks for one, and to count a reply
// before the reply itself is accepted.
type coordinator interface {
	begin(m *amtp.Message, now time.Time) (*workflow.State, Task, error)
	applyReply(ctx context.Context, m *amtp.Message, now, since time.Time) error
}

// Submission owns the acceptance of messages: who may send what
// (authorisation, peer identity, domain signatures, attachments), the
// access policy and the schema check, the workflow a message starts or
// answers, and then the write itself, which it leaves to its intake.
type Submission struct {
	site          site
	log           opsLog
	maxBytes      int64 // Config.MaxMessageBytes
	maxRecipients int   // Config.MaxRecipients
	// requirePeerMTLS is Config.RequirePeerMTLS.
	requirePeerMTLS bool
	inbound         InboundVerifier    // nil: mail from other domains unchecked
	attachments     AttachmentVerifier // nil: attachments checked for shape only
	policy          *accessPolicy
	schemas         payloadValidator // nil: no schema validation
	workflows       coordinator
	intake          *intake
}

// submission is a parsed message on its way into the store.
type submission struct {
	m            *amtp.Message
	origin       Origin
	verification SenderVerification
	// received is the body as another gateway sent it: stored and handed
	// on as it came (PROTOCOL.md "Message fields") unless the gateway had
	// to fill in a field it lacked.
	received []byte
	// senderSince is the CreatedAt of the agent that submitted the
	// message, zero for other submitters.
	senderSince time.Time
}

// Accept validates, authorises and durably accepts a message submitted
// over the API (by a local agent, the admin, or another gateway). Accept
// keeps body: the caller must not change it afterwards.
func (s *Submission) Accept(ctx context.Context, p Principal, body []byte) (*AcceptResult, error) {
	m, err := s.parse(body)
	if err != nil {
		return nil, err
	}
	origin, err := s.authorizeEnvelope(p, m.SenderAddress(), m.RecipientAddresses())
	if err != nil {
		return nil, err
	}
	// Authorisation comes first: a relay attempt or a spoofed local sender
	// is refused without costing a key lookup in DNS.
	sv, err := s.verifySender(ctx, p, origin, body)
	if err != nil {
		return nil, err
	}
	if origin == OriginLocal {
		if err := s.checkLocal(ctx, m); err != nil {
			return nil, err
		}
	}
	in := submission{m: m, origin: origin, verification: sv}
	if origin == OriginRemote {
		in.received = body
	}
	if p.Kind == AgentCaller {
		in.senderSince = p.Agent.CreatedAt
	}
	return s.accept(ctx, in)
}

// SubmitSystem accepts a message this gateway itself writes (a delivery
// failure report, a workflow result). It skips caller authorisation but
// otherwise takes exactly the same path.
func (s *Submission) SubmitSystem(ctx context.Context, m *amtp.Message) (*AcceptResult, error) {
	return s.intake.SubmitSystem(ctx, m)
}

// parse checks the size and parses body. The message shares body's memory
// rather than holding a second copy of a payload that may be megabytes.
func (s *Submission) parse(body []byte) (*amtp.Message, error) {
	if int64(len(body)) > s.maxBytes {
		return nil, amtp.Errorf(amtp.CodeMessageTooLarge, "message is larger than %d bytes", s.maxBytes).WithDetail("max_size", s.maxBytes)
	}
	return amtp.ParseOwned(body, amtp.Limits{MaxRecipients: s.maxRecipients})
}

// verifySender establishes how the sender is known. The signature of mail
// from another domain is checked over body, the bytes as received, not
// over the parsed message, and before anything is stored or any workflow
// moves (draft §9.3.4).
func (s *Submission) verifySender(ctx context.Context, p Principal, origin Origin, body []byte) (SenderVerification, error) {
	if origin == OriginRemote {
		return s.verifyInbound(ctx, body)
	}
	return localVerification(p), nil
}

// localVerification records how a local submission's sender was
// established: by its agent key, the admin key or an OAuth token.
func localVerification(p Principal) SenderVerification {
	switch {
	case p.Kind == AdminCaller:
		return SenderVerification{Result: Authenticated, Method: MethodAdminKey}
	case p.ViaToken:
		return SenderVerification{Result: Authenticated, Method: MethodOAuth}
	}
	return SenderVerification{Result: Authenticated, Method: MethodAgentAPIKey}
}

// verifyInbound applies the InboundVerifier port, passing its AMTP errors
// through and treating anything else as a failure worth retrying.
func (s *Submission) verifyInbound(ctx context.Context, body []byte) (SenderVerification, error) {
	if s.inbound == nil {
		return SenderVerification{Result: Unsigned, Method: MethodNone}, nil
	}
	sv, err := s.inbound.VerifyInbound(ctx, body)
	if err == nil {
		return sv, nil
	}
	var ae *amtp.Error
	if errors.As(err, &ae) {
		return sv, ae
	}
	return sv, s.log.unavailable("verify signature", err)
}

// checkLocal checks what only our own agents' mail is checked for: its
// attachments, and the participants its coordination names.
func (s *Submission) checkLocal(ctx context.Context, m *amtp.Message) error {
	if err := s.checkAttachments(ctx, m); err != nil {
		return err
	}
	if len(m.Coordination) > 0 {
		return s.foldParticipants(m)
	}
	return nil
}

// checkAttachments fetches and checks a local sender's attachments. Mail
// from another domain was the sending gateway's to check, and fetching for
// it would make us a download service for strangers.
func (s *Submission) checkAttachments(ctx context.Context, m *amtp.Message) error {
	if s.attachments == nil || len(m.Attachments) == 0 {
		return nil
	}
	err := s.attachments.VerifyAttachments(ctx, m)
	if err == nil {
		return nil
	}
	if ae, ok := amtp.AsError(err); ok {
		return ae
	}
	return s.log.unavailable("verify attachments", err)
}

// foldParticipants adds to m's recipients the addresses its sequential or
// conditional coordination names without listing them (the draft's
// examples do so), so that every participant is authorised, policed and
// rate-limited exactly as a recipient is, and has a status.
func (s *Submission) foldParticipants(m *amtp.Message) error {
	c, err := amtp.ParseCoordination(m.Coordination)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(m.Recipients))
	for _, r := range m.Recipients {
		seen[amtp.KeyOf(r)] = true
	}
	for _, addr := range workflow.Addresses(c) {
		a, err := amtp.ParseAddress(addr)
		if err != nil || seen[a.Key()] {
			continue // a bad address is Start's to report, with its field
		}
		seen[a.Key()] = true
		m.Recipients = append(m.Recipients, a.String())
	}
	if len(m.Recipients) > s.maxRecipients {
		return amtp.FieldError("recipients", "recipients and the participants the coordination names are more than %d", s.maxRecipients).WithDetail("max", s.maxRecipients)
	}
	return nil
}

// accept takes a parsed, authorised submission through the protocol's
// steps: stamp it, screen it (policy, schema), let it start or answer a
// workflow, and write it.
func (s *Submission) accept(ctx context.Context, in submission) (*AcceptResult, error) {
	d, err := s.intake.prepare(in)
	if err != nil {
		return nil, err
	}
	// From here on every log line of this submission (and of its Immediate
	// Path attempt) carries the message id, next to the request id.
	ctx = logctx.WithMessageID(ctx, d.m.MessageID)
	if err := s.screen(ctx, d); err != nil {
		return nil, err
	}
	if err := s.coordinate(ctx, d); err != nil {
		return nil, err
	}
	return s.intake.commit(ctx, d)
}

// coordinate starts the workflow a local coordinated message asks for, and
// applies a reply to a workflow this gateway runs. Only the initiator's
// gateway runs a workflow: a coordinated message from another domain is
// delivered like any other.
func (s *Submission) coordinate(ctx context.Context, d *draft) error {
	m := d.m
	if d.origin == OriginLocal && len(m.Coordination) > 0 {
		var err error
		if d.wf, d.start, err = s.workflows.begin(m, d.now); err != nil {
			return err
		}
	}
	// A reply whose signature failed moves no workflow, whatever the
	// policy lets through: a forged answer must not decide a step.
	if d.origin != OriginSystem && d.verification.Result != InvalidSignature {
		return s.workflows.applyReply(ctx, m, d.now, d.senderSince)
	}
	return nil
}
