package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// flakyWorld is a gateway for example.org over a flakyDB, with the pull
// agents alice and bob (keys "key-<name>") and the push agent shop.
type flakyWorld struct {
	svc  *gateway.Service
	db   *flakyDB
	logs *bytes.Buffer
}

func newFlakyWorld(t *testing.T, mutate func(*gateway.Config, *gateway.Ports)) *flakyWorld {
	t.Helper()
	return newFlakyWorldOn(t, time.Now, mutate)
}

// newFlakyWorldOn is newFlakyWorld with the store and the service on the
// clock now.
func newFlakyWorldOn(t *testing.T, now func() time.Time, mutate func(*gateway.Config, *gateway.Ports)) *flakyWorld {
	t.Helper()
	ctx := context.Background()
	edb, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = edb.Close() })
	for _, name := range []string{"alice", "bob"} {
		require.NoError(t, edb.PutAgent(ctx, &gateway.Agent{Address: name + "@example.org", DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("key-" + name)}))
	}
	require.NoError(t, edb.PutAgent(ctx, &gateway.Agent{Address: "shop@example.org", DeliveryMode: gateway.ModePush,
		WebhookURL: "https://hooks.example.com/shop", WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", APIKeyHash: gateway.HashAPIKey("key-shop")}))
	db := newFlakyDB(edb)
	logs := &bytes.Buffer{}
	cfg := gateway.Config{Domain: "example.org", Now: now, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	ports := gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db}
	if mutate != nil {
		mutate(&cfg, &ports)
	}
	svc, err := gateway.NewService(cfg, ports)
	require.NoError(t, err)
	return &flakyWorld{svc: svc, db: db, logs: logs}
}

func (w *flakyWorld) as(t *testing.T, name string) gateway.Principal {
	t.Helper()
	p, err := w.svc.Authenticate(context.Background(), "key-"+name)
	require.NoError(t, err)
	return p
}

// message is a submission from sender to recipients (names in
// example.org unless they have a domain) under key.
func message(sender string, key string, recipients ...string) []byte {
	for i, r := range recipients {
		if !bytes.ContainsRune([]byte(r), '@') {
			recipients[i] = r + "@example.org"
		}
	}
	to, _ := json.Marshal(recipients)
	return fmt.Appendf(nil, `{"version":"1.0","sender":%q,"recipients":%s,"idempotency_key":%q,"payload":{"n":1}}`, sender, to, key)
}

// failingLimiter is a rate-limit store that cannot be reached.
type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, policy.Limit, time.Time) (bool, time.Duration, error) {
	return false, 0, errBackend
}

// verifierFunc adapts a function to both verification ports.
type verifierFunc func() error

func (f verifierFunc) VerifyInbound(context.Context, []byte) (gateway.SenderVerification, error) {
	return gateway.SenderVerification{}, f()
}

func (f verifierFunc) VerifyAttachments(context.Context, *amtp.Message) error { return f() }

// TestBackendFailuresAreTemporary: when a store, the rate-limit buckets or
// a verification backend fails, every use case answers the retryable
// TEMPORARY_FAILURE and keeps the cause (which names internal addresses)
// for the operator's log.
func TestBackendFailuresAreTemporary(t *testing.T) {
	const limited = `
default_policy: allow
rules:
  - name: limited
    action: allow
    recipients: ["bob@example.org"]
    senders: ["shop@example.org"]
    rate_limit: 5/hour
`
	pol, err := policy.Parse([]byte(limited))
	require.NoError(t, err)
	w := newFlakyWorld(t, func(c *gateway.Config, p *gateway.Ports) {
		p.Policy, p.Limiter = pol, failingLimiter{}
		c.Inbound = verifierFunc(func() error { return errBackend })
		c.Attachments = verifierFunc(func() error { return errBackend })
	})
	ctx := context.Background()
	alice, bob, shop := w.as(t, "alice"), w.as(t, "bob"), w.as(t, "shop")
	first := message("alice@example.org", "k-first", "bob")
	res, err := w.svc.Accept(ctx, alice, first)
	require.NoError(t, err)
	id := res.MessageID
	reply := fmt.Appendf(nil, `{"version":"1.0","sender":"bob@example.org","recipients":["alice@example.org"],"idempotency_key":"k-reply",`+
		`"in_reply_to":%q,"response_type":"workflow_response","payload":{"ok":true}}`, id)
	withAttachment := []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"idempotency_key":"k-att","payload":{},` +
		`"attachments":[{"filename":"a.pdf","content_type":"application/pdf","size":10,"hash":"sha256:` + fmt.Sprintf("%064x", 1) + `","url":"https://files.example.com/a.pdf"}]}`)

	cases := []struct {
		name   string
		method string // the store method that fails; "" for none
		err    error  // default errBackend
		call   func() error
		want   string // in the error's message; default "temporarily unavailable"
	}{
		{name: "authenticate a key", method: "AgentByKeyHash", call: func() error { _, err := w.svc.Authenticate(ctx, "key-alice"); return err }},
		{name: "authenticate a token", method: "GetAgent", call: func() error {
			_, err := w.svc.AuthenticateClaims(ctx, gateway.TokenClaims{Agent: "alice"})
			return err
		}},
		{name: "register an agent", method: "PutAgent", call: func() error {
			_, err := w.svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "carol", DeliveryMode: gateway.ModePull})
			return err
		}},
		{name: "rotate a key: read the agent", method: "GetAgent", call: func() error { _, err := w.svc.RotateAgentKey(ctx, admin, "alice"); return err }},
		{name: "rotate a key: replace it", method: "ReplaceAgentKey", call: func() error { _, err := w.svc.RotateAgentKey(ctx, admin, "alice"); return err }},
		{name: "rotate a key: the agent keeps changing", method: "ReplaceAgentKey", err: gateway.ErrConflict, want: "changed while its key was rotated",
			call: func() error { _, err := w.svc.RotateAgentKey(ctx, admin, "alice"); return err }},
		{name: "get an agent", method: "GetAgent", call: func() error { _, err := w.svc.GetAgent(ctx, admin, "alice"); return err }},
		{name: "list agents", method: "ListAgents", call: func() error { _, err := w.svc.ListAgents(ctx, admin); return err }},
		{name: "discover agents", method: "ListAgents", call: func() error { _, err := w.svc.DiscoverAgents(ctx, gateway.AgentFilter{}); return err }},
		{name: "delete an agent", method: "DeleteAgent", call: func() error { return w.svc.DeleteAgent(ctx, admin, "bob") }},
		{name: "accept: look up a recipient", method: "GetAgent", call: func() error {
			_, err := w.svc.Accept(ctx, alice, message("alice@example.org", "k-2", "bob"))
			return err
		}},
		{name: "accept: store", method: "Accept", call: func() error {
			_, err := w.svc.Accept(ctx, alice, message("alice@example.org", "k-3", "bob"))
			return err
		}},
		{name: "accept: a duplicate the store shows no record of", method: "Accept", err: gateway.ErrDuplicate, call: func() error {
			_, err := w.svc.Accept(ctx, alice, message("alice@example.org", "k-4", "bob"))
			return err
		}},
		{name: "accept: replay reads the statuses", method: "GetStatuses", call: func() error { _, err := w.svc.Accept(ctx, alice, first); return err }},
		{name: "accept: correlate a reply", method: "GetWorkflow", call: func() error { _, err := w.svc.Accept(ctx, bob, reply); return err }},
		{name: "accept: rate limit buckets", call: func() error {
			_, err := w.svc.Accept(ctx, shop, message("shop@example.org", "k-5", "bob"))
			return err
		}},
		{name: "accept: verify a signature", call: func() error {
			_, err := w.svc.Accept(ctx, gateway.Principal{Kind: gateway.Anonymous}, message("zed@remote.example", "k-6", "bob"))
			return err
		}},
		{name: "accept: verify attachments", call: func() error { _, err := w.svc.Accept(ctx, alice, withAttachment); return err }},
		{name: "read a message", method: "GetMessage", call: func() error { _, err := w.svc.GetMessage(ctx, admin, id); return err }},
		{name: "read a status", method: "GetStatuses", call: func() error { _, err := w.svc.Status(ctx, admin, id); return err }},
		{name: "list messages", method: "ListMessages", call: func() error { _, _, err := w.svc.ListMessages(ctx, admin, gateway.MessageQuery{}); return err }},
		{name: "list an inbox", method: "ListInbox", call: func() error { _, _, err := w.svc.Inbox(ctx, bob, "bob", 0, ""); return err }},
		{name: "acknowledge", method: "AckInbox", call: func() error { return w.svc.Ack(ctx, bob, "bob", id) }},
		{name: "read a workflow", method: "GetWorkflow", call: func() error { _, err := w.svc.WorkflowView(ctx, admin, id); return err }},
		{name: "cancelled", method: "GetMessage", err: fmt.Errorf("get: %w", context.Canceled), want: "request cancelled or timed out",
			call: func() error { _, err := w.svc.GetMessage(ctx, admin, id); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				tc.err = errBackend
			}
			if tc.want == "" {
				tc.want = "temporarily unavailable"
			}
			if tc.method != "" {
				w.db.failOn(tc.method, tc.err, 0)
			}
			defer w.db.heal()
			err := tc.call()
			requireCode(t, err, amtp.CodeTemporaryFailure)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "10.1.2.3", "the cause stays in the log")
		})
	}
	assert.Contains(t, w.logs.String(), "10.1.2.3", "the operator's log has the cause")

	// Nothing of the failed calls was written.
	_, err = w.svc.GetAgent(ctx, admin, "carol")
	requireCode(t, err, amtp.CodeNotFound)
	_, err = w.svc.GetAgent(ctx, admin, "bob")
	require.NoError(t, err, "bob was not deleted")
	entries, _, err := w.db.ListInbox(ctx, "bob@example.org", 10, "")
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the first message reached bob")
}

// TestServiceRefusals: requests the use cases refuse before any store
// write, each with the code a client can act on.
func TestServiceRefusals(t *testing.T) {
	w := newFlakyWorld(t, func(c *gateway.Config, _ *gateway.Ports) { c.MaxMessageBytes, c.MaxRecipients = 4096, 3 })
	ctx := context.Background()
	require.NoError(t, w.db.DB.PutAgent(ctx, &gateway.Agent{Address: "postmaster@example.org", DeliveryMode: gateway.ModePull}))
	alice, bob := w.as(t, "alice"), w.as(t, "bob")
	big := fmt.Appendf(nil, `{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{"pad":%q}}`, bytes.Repeat([]byte("x"), 4096))
	crowd := []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{},` +
		`"coordination":{"type":"sequential","sequence":["p1@example.org","p2@example.org","p3@example.org"],"timeout":60}}`)
	anon := gateway.Principal{Kind: gateway.Anonymous}
	cases := []struct {
		name  string
		call  func() error
		code  amtp.Code
		field string // the error's details.field, when it names one
	}{
		{name: "message too large", code: amtp.CodeMessageTooLarge, call: func() error { _, err := w.svc.Accept(ctx, alice, big); return err }},
		{name: "agent sends as another", code: amtp.CodeSenderCredentialMismatch, field: "sender", call: func() error {
			_, err := w.svc.Accept(ctx, alice, message("bob@example.org", "k", "alice"))
			return err
		}},
		{name: "admin sends as another domain", code: amtp.CodeForbidden, field: "sender", call: func() error {
			_, err := w.svc.Accept(ctx, admin, message("zed@remote.example", "k", "alice"))
			return err
		}},
		{name: "participants beyond the recipient limit", code: amtp.CodeInvalidMessageFormat, field: "recipients", call: func() error {
			_, err := w.svc.Accept(ctx, alice, crowd)
			return err
		}},
		{name: "get agent: anonymous", code: amtp.CodeAuthenticationRequired, call: func() error { _, err := w.svc.GetAgent(ctx, anon, "alice"); return err }},
		{name: "get agent: not our address", code: amtp.CodeNotFound, call: func() error { _, err := w.svc.GetAgent(ctx, admin, "alice@remote.example"); return err }},
		{name: "delete agent: not our address", code: amtp.CodeNotFound, call: func() error { return w.svc.DeleteAgent(ctx, admin, "alice@remote.example") }},
		{name: "inbox: not our address", code: amtp.CodeNotFound, call: func() error { _, _, err := w.svc.Inbox(ctx, bob, "bob@remote.example", 0, ""); return err }},
		{name: "ack: not our address", code: amtp.CodeNotFound, call: func() error { return w.svc.Ack(ctx, bob, "bob@remote.example", "x") }},
		{name: "ack: anonymous", code: amtp.CodeAuthenticationRequired, call: func() error { return w.svc.Ack(ctx, anon, "bob", "x") }},
		{name: "read a message: malformed id", code: amtp.CodeNotFound, call: func() error { _, err := w.svc.GetMessage(ctx, admin, "no such id!"); return err }},
		{name: "token naming no agent", code: amtp.CodeAuthenticationRequired, call: func() error {
			_, err := w.svc.AuthenticateClaims(ctx, gateway.TokenClaims{Agent: "  "})
			return err
		}},
		{name: "token naming a reserved agent", code: amtp.CodeAuthenticationRequired, call: func() error {
			_, err := w.svc.AuthenticateClaims(ctx, gateway.TokenClaims{Agent: "postmaster"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			requireCode(t, err, tc.code)
			if tc.field != "" {
				e, _ := amtp.AsError(err)
				assert.Equal(t, tc.field, e.Details["field"])
			}
		})
	}
	// No refused submission was stored.
	list, _, err := w.svc.ListMessages(ctx, admin, gateway.MessageQuery{})
	require.NoError(t, err)
	assert.Empty(t, list)

	// A system message the gateway itself got wrong is a bug, not a refusal.
	_, err = w.svc.SubmitSystem(ctx, &amtp.Message{Version: "1.0", Sender: "postmaster@example.org"})
	require.ErrorContains(t, err, "system message invalid")
}

// TestPageSizesAreBounded: the listings ask the store for a default page
// when the caller names none, and never for more than their maximum.
func TestPageSizesAreBounded(t *testing.T) {
	w := newFlakyWorld(t, nil)
	ctx := context.Background()
	bob := w.as(t, "bob")
	for _, tc := range []struct{ asked, messages, inbox int }{{0, 100, 50}, {7, 7, 7}, {900, 900, 500}, {5000, 1000, 500}} {
		t.Run(fmt.Sprint(tc.asked), func(t *testing.T) {
			_, _, err := w.svc.ListMessages(ctx, admin, gateway.MessageQuery{Limit: tc.asked})
			require.NoError(t, err)
			assert.Equal(t, tc.messages, w.db.query.Limit)
			_, _, err = w.svc.Inbox(ctx, bob, "bob", tc.asked, "")
			require.NoError(t, err)
			assert.Equal(t, tc.inbox, w.db.inboxLimit)
		})
	}
	assert.Equal(t, 100, gateway.PageLimit(0))
	assert.Equal(t, 1000, gateway.PageLimit(1001))
	assert.Equal(t, 20, gateway.PageLimit(20))
}

func TestIdempotencyRecordFilled(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sm := &gateway.StoredMessage{ID: "m-1", Sender: "alice@example.org"}
	got := gateway.IdempotencyRecord{Key: "k"}.Filled(sm, now)
	assert.Equal(t, gateway.IdempotencyRecord{Key: "k", Sender: "alice@example.org", MessageID: "m-1", CreatedAt: now}, got)
	set := gateway.IdempotencyRecord{Key: "k", Sender: "bob@example.org", MessageID: "m-2", CreatedAt: now.Add(-time.Hour)}
	assert.Equal(t, set, set.Filled(sm, now), "what the record has is kept")
}

// TestAnonymousWithoutToken: no token is the anonymous caller, not an
// error; a token nobody holds is an error.
func TestAnonymousWithoutToken(t *testing.T) {
	w := newFlakyWorld(t, nil)
	p, err := w.svc.Authenticate(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, gateway.Anonymous, p.Kind)
	_, err = w.svc.Authenticate(context.Background(), "key-nobody")
	requireCode(t, err, amtp.CodeAuthenticationRequired)
}

// TestDiscoverAgentsBySchema: an agent is listed for a schema when one of
// its patterns matches it; agents that declare none are not.
func TestDiscoverAgentsBySchema(t *testing.T) {
	w := newFlakyWorld(t, nil)
	ctx := context.Background()
	for name, patterns := range map[string][]string{"orders": {"agntcy:commerce.order.v1"}, "commerce": {"agntcy:commerce.*"}, "travel": {"agntcy:travel.*"}} {
		_, err := w.svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: name, DeliveryMode: gateway.ModePull, SupportedSchemas: patterns})
		require.NoError(t, err)
	}
	got, err := w.svc.DiscoverAgents(ctx, gateway.AgentFilter{Schema: "agntcy:commerce.order.v1"})
	require.NoError(t, err)
	var names []string
	for _, a := range got {
		names = append(names, a.Address)
	}
	assert.Equal(t, []string{"commerce@example.org", "orders@example.org"}, names)
	got, err = w.svc.DiscoverAgents(ctx, gateway.AgentFilter{Schema: "agntcy:commerce.order.v1", DeliveryMode: gateway.ModePush})
	require.NoError(t, err)
	assert.Empty(t, got)
}

// TestSchemaValidationDisabledIsReported: with validation off a message
// naming a schema is accepted unchecked, and its status says so.
func TestSchemaValidationDisabledIsReported(t *testing.T) {
	w := newFlakyWorld(t, nil)
	ctx := context.Background()
	res, err := w.svc.Accept(ctx, w.as(t, "alice"), []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],`+
		`"schema":"agntcy:commerce.order.v1","payload":{"anything":true}}`))
	require.NoError(t, err)
	v, err := w.svc.Status(ctx, admin, res.MessageID)
	require.NoError(t, err)
	assert.Equal(t, "disabled", v.SchemaValidation)
}

// failingImmediate is an Immediate Path deliverer whose attempt errors
// (its own store write failed, say).
type failingImmediate struct{ called bool }

func (d *failingImmediate) DeliverNow(context.Context, gateway.Task, gateway.Accepted) (gateway.ImmediateResult, error) {
	d.called = true
	return gateway.ImmediateResult{}, errBackend
}

// TestImmediateFailureLeavesTheQueue: an inline attempt that errors does
// not fail the accepted submission: the answer is "queued" with the stored
// status, and the queue's copy delivers later.
func TestImmediateFailureLeavesTheQueue(t *testing.T) {
	inline := &failingImmediate{}
	w := newFlakyWorld(t, func(_ *gateway.Config, p *gateway.Ports) { p.Immediate = inline })
	ctx := context.Background()
	res, err := w.svc.Accept(ctx, w.as(t, "alice"), message("alice@example.org", "k-1", "shop"))
	require.NoError(t, err)
	assert.True(t, inline.called)
	assert.Equal(t, gateway.OutcomeQueued, res.Outcome)
	require.Len(t, res.Recipients, 1)
	assert.Equal(t, gateway.StateQueued, res.Recipients[0].Status)
	assert.Contains(t, w.logs.String(), "immediate delivery did not settle")
}

// TestReplayAnswersTheSynchronousReply: a retried submission whose one
// recipient answered synchronously gets the same outcome and reply as the
// first submission did.
func TestReplayAnswersTheSynchronousReply(t *testing.T) {
	w := newFlakyWorld(t, nil)
	ctx := context.Background()
	alice := w.as(t, "alice")
	body := message("alice@example.org", "k-1", "shop")
	res, err := w.svc.Accept(ctx, alice, body)
	require.NoError(t, err)
	now := time.Now().UTC()
	require.NoError(t, w.db.DB.UpdateStatuses(ctx, res.MessageID, []gateway.RecipientStatus{{Address: "shop@example.org", Status: gateway.StateDelivered,
		Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "webhook", Response: json.RawMessage(`{"order":42}`)}}))

	again, err := w.svc.Accept(ctx, alice, body)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, gateway.OutcomeReplied, again.Outcome)
	assert.JSONEq(t, `{"order":42}`, string(again.Reply))
	assert.Equal(t, res.MessageID, again.MessageID)
}

// TestAdminKeyFromFunc: an admin key fetched on first use (Secrets Manager
// on AWS) is fetched once; a fetch that fails, or a key too short to be
// one, leaves the gateway without an admin and answers a retryable error.
func TestAdminKeyFromFunc(t *testing.T) {
	const key = "fetched-admin-key-0123456789"
	for _, tc := range []struct {
		name  string
		fetch func() (string, error)
		want  amtp.Code // of authenticating key; "" = the admin
	}{
		{"fetched", func() (string, error) { return key, nil }, ""},
		{"fetch fails", func() (string, error) { return "", errBackend }, amtp.CodeTemporaryFailure},
		{"too short", func() (string, error) { return "short", nil }, amtp.CodeTemporaryFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			w := newFlakyWorld(t, func(c *gateway.Config, _ *gateway.Ports) {
				c.AdminKeyFunc = func(context.Context) (string, error) { calls++; return tc.fetch() }
			})
			ctx := context.Background()
			for range 2 {
				p, err := w.svc.Authenticate(ctx, key)
				q, aerr := w.svc.AuthenticateAdmin(ctx, key)
				if tc.want != "" {
					requireCode(t, err, tc.want)
					requireCode(t, aerr, tc.want)
					assert.NotContains(t, err.Error(), "10.1.2.3")
					continue
				}
				require.NoError(t, err)
				require.NoError(t, aerr)
				assert.Equal(t, gateway.AdminCaller, p.Kind)
				assert.Equal(t, gateway.AdminCaller, q.Kind)
			}
			if tc.want == "" {
				assert.Equal(t, 1, calls, "fetched once")
				_, err := w.svc.AuthenticateAdmin(ctx, "fetched-admin-key-wrong")
				requireCode(t, err, amtp.CodeAuthenticationRequired)
			} else {
				assert.Equal(t, 4, calls, "a failed fetch is tried again")
			}
		})
	}
}

func TestNewServiceRefusesBadConfig(t *testing.T) {
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	_, err = gateway.NewService(gateway.Config{Domain: "not a domain"}, gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.ErrorContains(t, err, "gateway domain")
	_, err = gateway.NewService(gateway.Config{Domain: "example.org"}, gateway.Ports{Messages: db, Inbox: db, Agents: db})
	require.ErrorContains(t, err, "every store port is required")
}

// discoverFunc adapts a function to the Discoverer port.
type discoverFunc func(ctx context.Context, domain string) (gateway.Route, error)

func (f discoverFunc) Discover(ctx context.Context, domain string) (gateway.Route, error) {
	return f(ctx, domain)
}

// TestCapabilities: our own domain is answered from configuration, any
// other from discovery; a failed lookup is a retryable error that does
// not tell the (anonymous) caller which resolver we use.
func TestCapabilities(t *testing.T) {
	lookup := discoverFunc(func(ctx context.Context, domain string) (gateway.Route, error) {
		switch domain {
		case "peer.example":
			return gateway.Route{Domain: domain, Found: true, Gateway: "https://gw.peer.example"}, nil
		case "slow.example":
			return gateway.Route{}, fmt.Errorf("lookup _amtp.%s: %w", domain, context.Canceled)
		}
		return gateway.Route{}, errors.New("lookup _amtp." + domain + " on 10.1.2.3:53: read udp: i/o timeout")
	})
	ctx := context.Background()
	w := newFlakyWorld(t, func(c *gateway.Config, p *gateway.Ports) { c.PublicURL, p.Discover = "https://gw.example.org", lookup })
	undiscovering := newFlakyWorld(t, nil)
	for _, tc := range []struct {
		name    string
		svc     *gateway.Service
		domain  string
		gateway string    // of the route found
		code    amtp.Code // of the error, "" for none
	}{
		{"our own domain", w.svc, "EXAMPLE.org", "https://gw.example.org", ""},
		{"another domain", w.svc, "peer.example", "https://gw.peer.example", ""},
		{"not a domain", w.svc, "not a domain", "", amtp.CodeInvalidRecipient},
		{"lookup fails", w.svc, "down.example", "", amtp.CodeTemporaryFailure},
		{"lookup cancelled", w.svc, "slow.example", "", amtp.CodeTemporaryFailure},
		{"no discovery configured", undiscovering.svc, "peer.example", "", amtp.CodeTemporaryFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.svc.Capabilities(ctx, tc.domain)
			if tc.code != "" {
				requireCode(t, err, tc.code)
				assert.NotContains(t, err.Error(), "10.1.2.3", "the resolver is ours to know")
				return
			}
			require.NoError(t, err)
			assert.True(t, r.Found)
			assert.Equal(t, tc.gateway, r.Gateway)
		})
	}
	assert.Contains(t, w.logs.String(), "10.1.2.3", "the operator's log has the cause")
}
