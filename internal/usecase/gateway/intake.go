package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/workflow"
)

// AcceptOutcome is what became of an accepted submission; the transport
// decides how to say it (httpapi: 202 or 200).
type AcceptOutcome int

const (
	// OutcomeQueued: durably accepted, delivery goes on after the answer.
	OutcomeQueued AcceptOutcome = iota
	// OutcomeReplied: delivered on the Immediate Path and the recipient
	// answered synchronously; Reply holds its answer.
	OutcomeReplied
)

// AcceptResult is the answer to a submission.
type AcceptResult struct {
	Outcome    AcceptOutcome
	MessageID  string
	Status     MessageState
	Recipients []RecipientStatus
	Reply      json.RawMessage // Immediate Path reply (Outcome OutcomeReplied)
	Duplicate  bool
}

// acceptStore is what the intake needs of the MessageStore.
type acceptStore interface {
	Accept(ctx context.Context, a *Acceptance) (*IdempotencyRecord, error)
	GetStatuses(ctx context.Context, id string) ([]RecipientStatus, error)
}

// agentReader is what several services need of the AgentStore: one agent.
type agentReader interface {
	GetAgent(ctx context.Context, address string) (*Agent, error)
}

// intake is the part of accepting that every submission shares, system
// mail included: it stamps the message, routes each recipient (a task, an
// inbox write, or a refusal), writes the Acceptance, answers a repeated
// submission from its idempotency record, and makes the Immediate Path
// attempt.
type intake struct {
	messages      acceptStore
	agents        agentReader
	immediate     ImmediateDeliverer // nil: every delivery goes to the queue
	metrics       Metrics
	notify        *Notifier // tells subscribers of deliveries made by the acceptance
	site          site
	clock         clock
	log           opsLog
	maxRecipients int
	window        time.Duration // Config.ImmediateWindow
}

// draft is a submission being accepted: the message completed and
// stamped, the ids it is stored under, and what the steps before the
// write decided about it.
type draft struct {
	submission
	digest     string
	now        time.Time
	complete   bool      // the message came with its id, key and timestamp
	acceptedAt time.Time // now, raised to the registration of every local agent involved (atOrAfter)
	id         string    // StorageID
	idemKey    string    // the scope of the idempotency key
	pol        policyOutcome
	// buf held the canonical payload for the digest and holds the stored
	// JSON after it: one buffer for both (amtp.Message.ContentSHA256).
	buf   []byte
	wf    *workflow.State // the workflow the message starts, or nil
	start Task            // the workflow_start task when wf is set
}

// routing is where each recipient of a draft goes.
type routing struct {
	statuses   []RecipientStatus
	tasks      []Task
	inbox      []string // pull agents, written with the message
	unknown    []string // no agent at the address
	refused    []string // the agent does not take the message's schema
	refusal    string   // why, for the last of refused
	pushOnly   *Agent   // a push agent among the recipients
	localCount int
}

// SubmitSystem accepts a message this gateway itself writes (a delivery
// failure report, a workflow result). It skips caller authorisation, the
// policy and the schema check, none of which apply to our own mail.
func (k *intake) SubmitSystem(ctx context.Context, m *amtp.Message) (*AcceptResult, error) {
	raw := m.AppendJSON(nil)
	parsed, err := amtp.Parse(raw, amtp.Limits{MaxRecipients: k.maxRecipients})
	if err != nil {
		return nil, fmt.Errorf("system message invalid: %w", err)
	}
	d, err := k.prepare(submission{m: parsed, origin: OriginSystem, verification: SenderVerification{Result: TrustedInternal, Method: MethodInternal}})
	if err != nil {
		return nil, err
	}
	return k.commit(logctx.WithMessageID(ctx, d.m.MessageID), d)
}

// prepare takes the content digest, then completes the message (id, key,
// timestamp) and decides the ids it is stored under.
func (k *intake) prepare(in submission) (*draft, error) {
	m := in.m
	d := &draft{submission: in}
	// The digest is taken before Complete fills generated fields, so that a
	// retry of a submission without message_id compares equal.
	var err error
	if d.digest, d.buf, err = contentDigest(m, make([]byte, 0, 512+len(m.Payload))); err != nil {
		return nil, err
	}
	d.now = k.clock.stamp() // AMTP times are UTC milliseconds
	d.complete = m.MessageID != "" && m.IdempotencyKey != "" && !m.Timestamp.IsZero()
	m.Complete(d.now)
	d.acceptedAt = atOrAfter(d.now, in.senderSince)
	// The id the message is stored under, and the scope of its key:
	// (sender, key) for our own senders, (sender, key, recipient) for mail
	// from other gateways, which arrives one recipient per delivery.
	d.id = StorageID(m.MessageID, in.origin, m.Recipients)
	d.idemKey = m.IdempotencyKey
	if in.origin == OriginRemote {
		d.idemKey += " " + strings.ToLower(strings.Join(m.Recipients, ","))
	}
	return d, nil
}

// commit routes the recipients, writes the acceptance, and makes the
// Immediate Path attempt when it applies.
func (k *intake) commit(ctx context.Context, d *draft) (*AcceptResult, error) {
	rt, err := k.route(ctx, d)
	if err != nil {
		return nil, err
	}
	if err := rt.noneLeft(d); err != nil {
		return nil, err
	}
	if d.wf != nil {
		d.startOnly(rt)
	}
	immediate := k.holdForImmediate(d, rt)
	acc := d.acceptance(rt)
	prev, err := k.messages.Accept(ctx, acc)
	switch {
	case errors.Is(err, ErrMessageIDTaken):
		return nil, messageIDInUse()
	case errors.Is(err, ErrDuplicate):
		return k.replay(ctx, prev, d.digest, d.senderSince)
	case err != nil:
		return nil, k.log.unavailable("accept", err)
	}
	k.announce(ctx, d, rt.statuses)
	res := &AcceptResult{Outcome: OutcomeQueued, MessageID: d.m.MessageID, Status: DeriveState(rt.statuses), Recipients: rt.statuses}
	// The queue's copy is due a second after the window that began with
	// this submission, not with the end of the accept: the inline attempt
	// gets what is left of the window, or none when a slow accept (a busy
	// store, a retry that waited for its key) used it up, so that the two
	// never deliver at once.
	left := k.window - k.clock().Sub(d.now)
	if immediate && left > 0 {
		k.deliverNow(ctx, left, Accepted{Stored: &acc.Message, Message: d.m, Statuses: rt.statuses}, rt.tasks[0], res)
	}
	return res, nil
}

// route decides each recipient's status and delivery: refused by the
// policy, a local agent's (routeLocal), or a remote one's task.
func (k *intake) route(ctx context.Context, d *draft) (*routing, error) {
	m := d.m
	rt := &routing{statuses: make([]RecipientStatus, 0, len(m.Recipients))}
	// m.Recipients are in canonical form (Parse made them so): each is its
	// address's String, and KeyOf its Key, without building either again.
	for i, rs := range m.Recipients {
		r, _ := amtp.ParseAddress(rs)
		st := RecipientStatus{Address: rs, Status: StateQueued, UpdatedAt: d.now}
		switch {
		case d.pol.refuses(i):
			policyStatus(&st)
		case k.site.isLocal(r):
			if err := k.routeLocal(ctx, d, rt, &st); err != nil {
				return nil, err
			}
		default:
			// One delivery per remote recipient, each signed on its own
			// (draft §9.3.3): status, retries and reports are per
			// recipient anyway.
			key := amtp.KeyOf(rs)
			rt.tasks = append(rt.tasks, Task{ID: TaskID(d.id, key), MessageID: d.id, Kind: TaskRemote, Recipients: []string{rs}, Domain: r.Domain, CreatedAt: d.now})
		}
		rt.statuses = append(rt.statuses, st)
	}
	return rt, nil
}

// routeLocal routes a local recipient: failed when no agent takes the
// message, nothing yet for a workflow's participant, delivered into a pull
// agent's inbox by the acceptance write itself, a task otherwise.
func (k *intake) routeLocal(ctx context.Context, d *draft, rt *routing, st *RecipientStatus) error {
	rs, key := st.Address, amtp.KeyOf(st.Address)
	rt.localCount++
	ag, err := k.agents.GetAgent(ctx, key)
	if err == nil {
		d.acceptedAt = atOrAfter(d.acceptedAt, ag.CreatedAt)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		st.Status = StateFailed
		st.ErrorCode = string(amtp.CodeAgentUnknown)
		st.ErrorMessage = "no agent " + rs + " is registered at this gateway"
		rt.unknown = append(rt.unknown, rs)
	case err != nil:
		return k.log.unavailable("accept", err)
	case agentRefuses(ag, d.m) != "":
		rt.refusal = agentRefuses(ag, d.m)
		st.Status, st.ErrorCode, st.ErrorMessage = StateFailed, string(amtp.CodeSchemaValidationFailed), rt.refusal
		rt.refused = append(rt.refused, rs)
	case d.wf != nil:
		// A participant gets the message when the workflow asks it
		// (sendWorkflow), not now.
	case ag.DeliveryMode == ModePull:
		n := d.now
		st.Status, st.Attempts, st.DeliveredAt, st.Via = StateDelivered, 1, &n, "inbox"
		rt.inbox = append(rt.inbox, key)
	default:
		rt.tasks = append(rt.tasks, Task{ID: TaskID(d.id, key), MessageID: d.id, Kind: TaskLocal, Recipients: []string{rs}, CreatedAt: d.now})
		if ag.DeliveryMode == ModePush {
			rt.pushOnly = ag
		}
	}
	return nil
}

// noneLeft refuses the message as a whole when no recipient is left, for
// the most fundamental of its recipients' reasons.
func (rt *routing) noneLeft(d *draft) error {
	if d.pol.count+len(rt.refused)+len(rt.unknown) != len(rt.statuses) {
		return nil
	}
	if d.pol.count > 0 {
		return policy.DeniedError(d.pol.first).WithDetail("recipients", d.pol.addresses(d.m))
	}
	if len(rt.refused) > 0 {
		return amtp.Errorf(amtp.CodeSchemaValidationFailed, "%s", rt.refusal).WithDetail("schema", d.m.Schema).WithDetail("recipients", rt.refused)
	}
	return amtp.Errorf(amtp.CodeAgentUnknown, "no agent %s is registered at this gateway", strings.Join(rt.unknown, ", ")).WithDetail("recipients", rt.unknown)
}

// startOnly replaces the deliveries of a message that starts a workflow
// with the workflow_start task. sendWorkflow tells the participants the
// workflow was started with from agents registered at their addresses
// since by the workflow's creation time (predates), as the worker does by
// the message's: it is raised like the message's.
func (d *draft) startOnly(rt *routing) {
	rt.tasks, rt.pushOnly = []Task{d.start}, nil
	d.wf.CreatedAt = atOrAfter(d.wf.CreatedAt, d.acceptedAt)
	d.wf.UpdatedAt = atOrAfter(d.wf.UpdatedAt, d.wf.CreatedAt)
}

// holdForImmediate reports whether the Immediate Path applies: to a
// message from a local agent whose only recipient is a local push agent.
// Its task is then held back for the window so that a queue worker does
// not race the inline attempt; if the attempt does not settle it, the
// queue takes over after the window. Mail from another gateway always
// takes the durable path: whatever fails after our 202 is then ours to
// report, and only synchronous refusals (an unknown agent) are reported
// by the sending gateway.
func (k *intake) holdForImmediate(d *draft, rt *routing) bool {
	immediate := k.immediate != nil && d.origin == OriginLocal && len(rt.statuses) == 1 && rt.localCount == 1 && rt.pushOnly != nil && len(rt.tasks) == 1
	if immediate {
		rt.tasks[0].NotBefore = d.now.Add(k.window + time.Second)
	}
	return immediate
}

// acceptance is everything the store writes for d, in one Acceptance.
func (d *draft) acceptance(rt *routing) *Acceptance {
	m := d.m
	raw := d.received
	if raw == nil || !d.complete {
		raw = m.AppendJSON(d.buf[:0])
	}
	sv := d.verification
	return &Acceptance{
		Message: StoredMessage{
			ID: d.id, Raw: raw, Sender: m.Sender, Recipients: m.Recipients,
			Subject: m.Subject, Origin: d.origin, AcceptedAt: d.acceptedAt, Verification: &sv,
		},
		// The record is dated like the message, so that replay can tell a
		// key of the sending agent's own from one of a deleted agent's.
		Idempotency: IdempotencyRecord{Sender: amtp.KeyOf(m.Sender), Key: d.idemKey, MessageID: d.id, Digest: d.digest, CreatedAt: d.acceptedAt},
		Statuses:    rt.statuses,
		Tasks:       rt.tasks,
		Inbox:       rt.inbox,
		Workflow:    d.wf,
	}
}

// announce logs and counts a newly accepted message. It is called only
// after the write succeeded and never in replay, so a retried submission
// is one message, not two.
func (k *intake) announce(ctx context.Context, d *draft, statuses []RecipientStatus) {
	m := d.m
	// LogAttrs with typed attributes writes the same line as InfoContext
	// with key-value pairs, without boxing each value into an interface
	// (an allocation per string, on every accepted message).
	k.log.LogAttrs(ctx, slog.LevelInfo, "message accepted", slog.String("message_id", m.MessageID), slog.String("sender", m.Sender),
		slog.Int("recipients", len(m.Recipients)), slog.String("origin", string(d.origin)))
	k.metrics.MessageAccepted(ctx, m.MessageID, len(m.Recipients))
	for _, st := range statuses {
		if st.Status == StateDelivered && st.Via == "inbox" {
			// An inbox delivery is part of the acceptance write itself:
			// delivered at the moment of acceptance, zero latency.
			k.metrics.MessageDelivered(ctx, m.MessageID, st.Address, "inbox", 0)
		}
	}
	k.notifySettled(ctx, d, statuses)
}

// deliverNow makes the inline attempt of the Immediate Path within left,
// and puts what became of it into res.
func (k *intake) deliverNow(ctx context.Context, left time.Duration, acc Accepted, t Task, res *AcceptResult) {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), left)
	out, err := k.immediate.DeliverNow(ictx, t, acc)
	cancel()
	if err != nil {
		k.log.WarnContext(ctx, "immediate delivery did not settle; the queue will retry", "message_id", acc.Message.MessageID, "err", err)
	}
	if err == nil && out.Recorded != nil {
		cur := mergeRecorded(acc.Statuses, out.Recorded)
		res.Recipients, res.Status = cur, DeriveState(cur)
	} else if cur, err := k.messages.GetStatuses(ctx, acc.Message.MessageID); err == nil {
		res.Recipients = cur
		res.Status = DeriveState(cur)
	}
	if out.Delivered && len(out.Reply) > 0 {
		res.Outcome = OutcomeReplied
		res.Reply = out.Reply
	}
}

// replay answers a repeated submission: the same message and outcome
// when the content matches, IDEMPOTENCY_CONFLICT when it does not. since
// is the submitting agent's CreatedAt (zero for other submitters): a
// record older than the agent is a deleted agent's, at the same address,
// and nothing of it is shown.
func (k *intake) replay(ctx context.Context, prev *IdempotencyRecord, digest string, since time.Time) (*AcceptResult, error) {
	if prev == nil {
		return nil, k.log.unavailable("accept", errors.New("duplicate without a record"))
	}
	if prev.CreatedAt.Before(since) {
		return nil, amtp.Errorf(amtp.CodeIdempotencyConflict, "this idempotency_key is already in use: send the message under another idempotency_key").
			WithDetail("field", "idempotency_key")
	}
	if prev.Digest != digest {
		return nil, amtp.Errorf(amtp.CodeIdempotencyConflict, "idempotency key %q was already used by %s for different content", keyOf(prev.Key), MessageIDOf(prev.MessageID)).WithDetail("message_id", MessageIDOf(prev.MessageID))
	}
	st, err := k.messages.GetStatuses(ctx, prev.MessageID)
	if err != nil {
		return nil, k.log.unavailable("accept", err)
	}
	res := &AcceptResult{Outcome: OutcomeQueued, MessageID: MessageIDOf(prev.MessageID), Status: DeriveState(st), Recipients: st, Duplicate: true}
	if len(st) == 1 && len(st[0].Response) > 0 {
		res.Outcome = OutcomeReplied
		res.Reply = st[0].Response
	}
	return res, nil
}

// contentDigest is the hex SHA-256 of m's canonical content. scratch
// holds the canonical payload on its way to the hash; it comes back (or
// a larger one) for the caller to reuse.
func contentDigest(m *amtp.Message, scratch []byte) (string, []byte, error) {
	h, buf, err := m.ContentSHA256(scratch)
	if err != nil {
		return "", nil, amtp.Errorf(amtp.CodeInvalidMessageFormat, "message content is not I-JSON (duplicate keys, lone surrogates or out-of-range numbers): %s", err.Error()).WithDetail("field", "payload")
	}
	return hexDigest(h), buf, nil
}

// messageIDInUse answers a submission whose message_id another
// acceptance holds. It is the same whether that acceptance is the
// sender's own (under another idempotency key) or another sender's, and
// names no message, key or sender: another sender's mail stays as hidden
// as GET /v1/messages/{id} keeps it. That the id is taken cannot be hidden
// from the submitter without accepting two messages under one id.
func messageIDInUse() error {
	return amtp.Errorf(amtp.CodeIdempotencyConflict, "this message_id is already in use: send the message under another message_id, or without one for the gateway to assign it").
		WithDetail("field", "message_id")
}

// atOrAfter is the later of at and since. A message's acceptance time is
// raised so to the registration time of each local agent it involves:
// each agent reads only mail accepted since it was registered (canRead),
// and a host whose clock is behind the one that registered the agent would
// otherwise date mail for it before the agent existed. The raise keeps
// since's full resolution rather than rounding up to AMTP's milliseconds:
// a rounded time could postdate an agent registered again at the address
// within that millisecond, and hand it the old agent's mail.
func atOrAfter(at, since time.Time) time.Time {
	if since.After(at) {
		return since.UTC()
	}
	return at
}

// keyOf is the idempotency key of a record's scoped key (accept appends
// the recipients for mail from other gateways after a space, which no key
// contains).
func keyOf(scoped string) string {
	k, _, _ := strings.Cut(scoped, " ")
	return k
}

// mergeRecorded is statuses with the recorded ones in place of those of
// the same addresses (as the stores merge updates).
func mergeRecorded(statuses, recorded []RecipientStatus) []RecipientStatus {
	out := slices.Clone(statuses)
	for _, r := range recorded {
		for i := range out {
			if strings.EqualFold(out[i].Address, r.Address) {
				addr := out[i].Address
				out[i] = r
				out[i].Address = addr
			}
		}
	}
	return out
}
