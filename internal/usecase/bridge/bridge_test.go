package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// world is a gateway for example.org on the embedded store, with alice a
// pull agent.
type world struct {
	db  *pebblestore.DB
	svc *gateway.Service
	now time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", MaxMessageBytes: 1 << 20, Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db})
	require.NoError(t, err)
	require.NoError(t, db.PutAgent(context.Background(), &gateway.Agent{Address: "alice@example.org", DeliveryMode: gateway.ModePull, CreatedAt: now.Add(-time.Hour)}))
	return &world{db: db, svc: svc, now: now}
}

// dkimFunc stands in for the DKIM verifier port.
type dkimFunc func() ([]string, error)

func (f dkimFunc) VerifiedDomains(context.Context, []byte) ([]string, error) { return f() }

func signedBy(domains ...string) dkimFunc {
	return func() ([]string, error) { return domains, nil }
}

func (w *world) bridge(t *testing.T, pol bridge.Policy, dkim bridge.DKIMVerifier) *bridge.Bridge {
	t.Helper()
	b, err := bridge.New(bridge.Config{Domain: "example.org", Bridge: amtp.Address{Local: "amtp-bridge", Domain: "example.org"}, Policy: pol,
		Limits: email.Limits{MaxBytes: 64 << 10}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, w.svc, w.db, dkim)
	require.NoError(t, err)
	return b
}

// inbox is alice's inbox, parsed.
func (w *world) inbox(t *testing.T) []*amtp.Message {
	t.Helper()
	raws, _, err := w.svc.Inbox(context.Background(), gateway.Principal{Kind: gateway.AdminCaller}, "alice@example.org", 50, "")
	require.NoError(t, err)
	var out []*amtp.Message
	for _, r := range raws {
		m, err := amtp.Parse(r, amtp.Limits{})
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

func (w *world) verification(t *testing.T, id string) *gateway.SenderVerification {
	t.Helper()
	sm, err := w.db.GetMessage(context.Background(), gateway.StorageID(id, gateway.OriginRemote, []string{"alice@example.org"}))
	require.NoError(t, err)
	return sm.Verification
}

// plain is an ordinary email from bob@mail.example to to.
func plain(to string) string {
	return "From: Bob <bob@mail.example>\r\nTo: " + to + "\r\nSubject: Lunch?\r\nMessage-ID: <lunch-1@mail.example>\r\n" +
		"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNoon at the usual place?\r\n"
}

func TestWrappedEmail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		rcpts   []string
		policy  bridge.Policy
		dkim    bridge.DKIMVerifier
		ses     *bridge.Verdicts
		code    amtp.Code // a refusal
		sender  string
		result  gateway.VerificationResult
		method  string
		proven  string
		inboxed int
	}{
		{name: "proven by DKIM", raw: plain("alice@example.org"), dkim: signedBy("mail.example"),
			sender: "bob@mail.example", result: gateway.VerifiedSignature, method: "dkim", proven: "true", inboxed: 1},
		{name: "proven by a parent domain's signature", raw: plain("alice@example.org"), dkim: signedBy("example"),
			sender: "amtp-bridge@example.org", result: gateway.Unsigned, method: "dkim", proven: "false", inboxed: 1},
		{name: "signed by another domain", raw: plain("alice@example.org"), dkim: signedBy("spammer.example"),
			sender: "amtp-bridge@example.org", result: gateway.Unsigned, method: "dkim", proven: "false", inboxed: 1},
		{name: "no DKIM verifier", raw: plain("alice@example.org"),
			sender: "amtp-bridge@example.org", result: gateway.Unsigned, method: "dkim", proven: "false", inboxed: 1},
		{name: "unproven under reject", raw: plain("alice@example.org"), policy: bridge.Reject, dkim: signedBy(), code: amtp.CodeSignatureRequired},
		{name: "unproven under accept", raw: plain("alice@example.org"), policy: bridge.Accept, dkim: signedBy(),
			sender: "amtp-bridge@example.org", result: gateway.Unsigned, method: "dkim", proven: "false", inboxed: 1},
		{name: "SES DMARC pass", raw: plain("alice@example.org"), ses: &bridge.Verdicts{SPF: bridge.Pass, DKIM: bridge.Pass, DMARC: bridge.Pass, Spam: bridge.Pass, Virus: bridge.Pass},
			sender: "bob@mail.example", result: gateway.VerifiedSignature, method: "ses", proven: "true", inboxed: 1},
		{name: "SES DMARC gray", raw: plain("alice@example.org"), ses: &bridge.Verdicts{SPF: bridge.Pass, DKIM: bridge.Pass, DMARC: bridge.Gray, Spam: bridge.Pass, Virus: bridge.Pass},
			sender: "amtp-bridge@example.org", result: gateway.Unsigned, method: "ses", proven: "false", inboxed: 1},
		{name: "SES spam", raw: plain("alice@example.org"), ses: &bridge.Verdicts{DMARC: bridge.Pass, Spam: bridge.Fail}, code: amtp.CodePolicyDenied},
		{name: "SES virus", raw: plain("alice@example.org"), ses: &bridge.Verdicts{DMARC: bridge.Pass, Virus: bridge.Fail}, code: amtp.CodePolicyDenied},
		{name: "a From of our own domain is never proven by email", dkim: signedBy("example.org"),
			raw:    strings.Replace(plain("alice@example.org"), "bob@mail.example", "carol@example.org", 1),
			sender: "amtp-bridge@example.org", result: gateway.Unsigned, method: "dkim", proven: "false", inboxed: 1},
		{name: "envelope recipients decide", raw: plain("someone@else.example"), rcpts: []string{"alice@example.org"}, dkim: signedBy("mail.example"),
			sender: "bob@mail.example", result: gateway.VerifiedSignature, method: "dkim", proven: "true", inboxed: 1},
		{name: "unknown agent", raw: plain("nobody@example.org"), dkim: signedBy("mail.example"), code: amtp.CodeAgentUnknown},
		{name: "no recipient of ours", raw: plain("bob@elsewhere.example"), dkim: signedBy("mail.example"), code: amtp.CodeInvalidRecipient},
		{name: "not an email", raw: "\x00\x01 garbage without a header\r\n\r\n", code: amtp.CodeInvalidMessageFormat},
		{name: "too large", raw: plain("alice@example.org") + strings.Repeat("x", 64<<10), code: amtp.CodeMessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			b := w.bridge(t, tc.policy, tc.dkim)
			res, err := b.Receive(context.Background(), bridge.Inbound{Raw: []byte(tc.raw), Recipients: tc.rcpts, SES: tc.ses})
			if tc.code != "" {
				require.Error(t, err)
				assert.True(t, amtp.IsCode(err, tc.code), "want %s, got %v", tc.code, err)
				assert.Empty(t, w.inbox(t), "nothing delivered")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, bridge.Wrapped, res.Kind)
			got := w.inbox(t)
			require.Len(t, got, tc.inboxed)
			m := got[0]
			assert.Equal(t, tc.sender, m.Sender)
			assert.Equal(t, email.SchemaWrapped, m.Schema)
			assert.Equal(t, tc.proven, m.Headers[bridge.HeaderFromProven])
			var payload map[string]any
			require.NoError(t, json.Unmarshal(m.Payload, &payload))
			assert.Contains(t, payload["text"], "Noon at the usual place?")
			sv := w.verification(t, m.MessageID)
			require.NotNil(t, sv)
			assert.Equal(t, tc.result, sv.Result)
			assert.Equal(t, tc.method, sv.Method)
		})
	}
}

// TestDKIMUnavailable: a DKIM check that could not be made is a temporary
// failure (the sending MTA retries), not a verdict.
func TestDKIMUnavailable(t *testing.T) {
	w := newWorld(t)
	b := w.bridge(t, bridge.Flag, dkimFunc(func() ([]string, error) { return nil, errors.New("dns timeout") }))
	_, err := b.Receive(context.Background(), bridge.Inbound{Raw: []byte(plain("alice@example.org"))})
	require.Error(t, err)
	_, isAMTP := amtp.AsError(err)
	assert.False(t, isAMTP, "not a refusal")
	assert.Empty(t, w.inbox(t))
}

// bridged stores a message alice sent to bob@mail.example (as if bridged)
// and returns it.
func (w *world) bridged(t *testing.T, body string) *amtp.Message {
	t.Helper()
	res, err := w.svc.Accept(context.Background(), gateway.Principal{Kind: gateway.AdminCaller}, []byte(body))
	require.NoError(t, err)
	sm, err := w.db.GetMessage(context.Background(), res.MessageID)
	require.NoError(t, err)
	m, err := amtp.Parse(sm.Raw, amtp.Limits{})
	require.NoError(t, err)
	return m
}

// answer is bob's email reply to the bridged email of message id.
func answer(id, from string) string {
	return "From: " + from + "\r\nTo: alice@example.org\r\nSubject: Re: [AMTP] Approve?\r\n" +
		"Message-ID: <answer-1@mail.example>\r\nIn-Reply-To: <" + email.BridgedMessageID(id, "example.org") + ">\r\n" +
		"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nApproved.\r\n\r\n> Approve?\r\n"
}

func TestReplyToBridgedMessage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		from     string
		dkim     bridge.DKIMVerifier
		kind     bridge.Kind
		sender   string
		workflow bool
	}{
		{name: "proven reply", from: "bob@mail.example", dkim: signedBy("mail.example"), kind: bridge.Reply, sender: "bob@mail.example",
			body: `{"version":"1.0","sender":"alice@example.org","recipients":["bob@mail.example"],"subject":"Approve?","payload":{"q":1}}`},
		{name: "proven workflow reply", from: "bob@mail.example", dkim: signedBy("mail.example"), kind: bridge.Reply, sender: "bob@mail.example", workflow: true,
			body: `{"version":"1.0","sender":"alice@example.org","recipients":["bob@mail.example"],"subject":"Approve?","payload":{"q":1},"coordination":{"type":"parallel","timeout":3600}}`},
		{name: "unproven reply is wrapped mail from the bridge", from: "bob@mail.example", dkim: signedBy(), kind: bridge.Wrapped, sender: "amtp-bridge@example.org",
			body: `{"version":"1.0","sender":"alice@example.org","recipients":["bob@mail.example"],"subject":"Approve?","payload":{"q":1},"coordination":{"type":"parallel","timeout":3600}}`},
		{name: "a proven stranger's answer is ordinary mail", from: "eve@other.example", dkim: signedBy("other.example"), kind: bridge.Wrapped, sender: "eve@other.example",
			body: `{"version":"1.0","sender":"alice@example.org","recipients":["bob@mail.example"],"subject":"Approve?","payload":{"q":1},"coordination":{"type":"parallel","timeout":3600}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			orig := w.bridged(t, tc.body)
			b := w.bridge(t, bridge.Flag, tc.dkim)
			res, err := b.Receive(context.Background(), bridge.Inbound{Raw: []byte(answer(orig.MessageID, tc.from))})
			require.NoError(t, err)
			assert.Equal(t, tc.kind, res.Kind)
			var got *amtp.Message
			for _, m := range w.inbox(t) {
				// A completed workflow also sends alice its result.
				if m.MessageID != orig.MessageID && m.ResponseType != amtp.ResponseWorkflowResult {
					got = m
				}
			}
			require.NotNil(t, got, "alice received the answer")
			assert.Equal(t, tc.sender, got.Sender)
			wf, err := w.db.GetWorkflow(context.Background(), orig.MessageID)
			if tc.kind != bridge.Reply {
				assert.Empty(t, got.InReplyTo)
				if err == nil {
					assert.Equal(t, "in_progress", string(wf.Status), "an unproven answer moves no workflow")
				}
				return
			}
			assert.Equal(t, orig.MessageID, got.InReplyTo)
			if !tc.workflow {
				assert.Empty(t, got.WorkflowID)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, orig.MessageID, got.WorkflowID)
			assert.Equal(t, amtp.ResponseWorkflowResponse, got.ResponseType)
			assert.Equal(t, "completed", string(wf.Status), "bob's answer completed the workflow")
		})
	}
}

// TestCarriedAMTPMessage: an email carrying another gateway's AMTP message
// is that message, accepted as mail from its domain; one carrying a
// message of ours is not taken for another gateway's.
func TestCarriedAMTPMessage(t *testing.T) {
	carried := func(sender string) string {
		js := `{"version":"1.0","message_id":"01JF2Z3Y4X5W6V7T8S9R0Q1P2N","idempotency_key":"k-1","timestamp":"2026-12-07T10:00:00Z","sender":"` + sender +
			`","recipients":["alice@example.org"],"subject":"Via email","payload":{"x":1}}`
		return "From: amtp-bridge@mail.example\r\nTo: alice@example.org\r\nSubject: [AMTP] Via email\r\nMessage-ID: <c-1@mail.example>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n" +
			"--b1\r\nContent-Type: application/json; name=amtp-message.json\r\nContent-Disposition: attachment; filename=amtp-message.json\r\n\r\n" +
			js + "\r\n--b1--\r\n"
	}
	w := newWorld(t)
	b := w.bridge(t, bridge.Flag, signedBy())
	res, err := b.Receive(context.Background(), bridge.Inbound{Raw: []byte(carried("bob@mail.example"))})
	require.NoError(t, err)
	assert.Equal(t, bridge.Carried, res.Kind)
	got := w.inbox(t)
	require.Len(t, got, 1)
	assert.Equal(t, "bob@mail.example", got[0].Sender)
	assert.Equal(t, "01jf2z3y4x5w6v7t8s9r0q1p2n", strings.ToLower(got[0].MessageID))

	w = newWorld(t)
	b = w.bridge(t, bridge.Flag, signedBy())
	res, err = b.Receive(context.Background(), bridge.Inbound{Raw: []byte(carried("carol@example.org"))})
	require.NoError(t, err)
	assert.Equal(t, bridge.Wrapped, res.Kind, "our own mail coming back is ordinary mail")
	got = w.inbox(t)
	require.Len(t, got, 1)
	assert.Equal(t, "amtp-bridge@example.org", got[0].Sender)
}

// TestWrappedSchemaRegistered: where payloads are validated, wrapped
// email is accepted because the bridge registers its schema first (and
// leaves an operator's own document of it alone).
func TestWrappedSchemaRegistered(t *testing.T) {
	for _, tc := range []struct {
		name     string
		operator string // a document the operator registered first
	}{
		{name: "registered by the bridge"},
		{name: "registered by the operator", operator: `{"type":"object"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			reg := schema.NewRegistry(db)
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc, err := gateway.NewService(gateway.Config{Domain: "example.org", MaxMessageBytes: 1 << 20, Logger: quiet},
				gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, Schemas: reg})
			require.NoError(t, err)
			require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "alice@example.org", DeliveryMode: gateway.ModePull, CreatedAt: time.Now().Add(-time.Hour)}))
			if tc.operator != "" {
				_, _, err := reg.Put(ctx, email.SchemaWrapped, json.RawMessage(tc.operator))
				require.NoError(t, err)
			}
			b, err := bridge.New(bridge.Config{Domain: "example.org", Bridge: amtp.Address{Local: "amtp-bridge", Domain: "example.org"}, Schemas: reg, Logger: quiet}, svc, db, signedBy("mail.example"))
			require.NoError(t, err)
			for range 2 {
				_, err = b.Receive(ctx, bridge.Inbound{Raw: []byte(plain("alice@example.org"))})
				require.NoError(t, err)
			}
			rec, err := reg.Get(ctx, email.SchemaWrapped)
			require.NoError(t, err)
			assert.Equal(t, 1, rec.Version)
			if tc.operator != "" {
				assert.JSONEq(t, tc.operator, string(rec.Schema))
			}
		})
	}
}

// TestWrappedSchemaIsDocumented: the schema the bridge registers is the
// one docs/email-bridge.md publishes.
func TestWrappedSchemaIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "email-bridge.md"))
	require.NoError(t, err)
	text := string(doc)
	at := strings.Index(text, "## The wrapped schema")
	require.GreaterOrEqual(t, at, 0)
	_, block, ok := strings.Cut(text[at:], "```json\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	assert.JSONEq(t, block, bridge.WrappedSchema)
}
