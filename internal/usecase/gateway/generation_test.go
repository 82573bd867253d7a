package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// genWorld is a gateway for example.org on an embedded store whose clock
// the test sets, as the clocks of different hosts would be.
type genWorld struct {
	svc  *gateway.Service
	db   *pebblestore.DB
	logs *bytes.Buffer
	mu   sync.Mutex
	now  time.Time
}

func newGenWorld(t *testing.T) *genWorld {
	t.Helper()
	w := &genWorld{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir(), Now: w.clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Now: w.clock, Logger: slog.New(slog.NewJSONHandler(w.logs, nil))},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db})
	require.NoError(t, err)
	w.svc, w.db = svc, db
	return w
}

func (w *genWorld) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *genWorld) set(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = at
}

// register registers a pull agent as the admin and returns it as a caller.
func (w *genWorld) register(t *testing.T, name string) gateway.Principal {
	t.Helper()
	reg, err := w.svc.RegisterAgent(context.Background(), admin, gateway.RegisterRequest{Address: name, DeliveryMode: gateway.ModePull})
	require.NoError(t, err)
	p, err := w.svc.Authenticate(context.Background(), reg.APIKey)
	require.NoError(t, err)
	return p
}

// send submits a message from p's agent to one local recipient and returns
// its id.
func (w *genWorld) send(t *testing.T, p gateway.Principal, to string) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"version": "1.0", "sender": p.Agent.Address, "recipients": []string{to + "@example.org"}, "payload": map[string]any{"n": 1}})
	require.NoError(t, err)
	res, err := w.svc.Accept(context.Background(), p, body)
	require.NoError(t, err)
	return res.MessageID
}

func (w *genWorld) inboxIDs(t *testing.T, p gateway.Principal) []string {
	t.Helper()
	msgs, _, err := w.svc.Inbox(context.Background(), p, p.Agent.Address, 0, "")
	require.NoError(t, err)
	ids := []string{}
	for _, raw := range msgs {
		var m struct {
			MessageID string `json:"message_id"`
		}
		require.NoError(t, json.Unmarshal(raw, &m))
		ids = append(ids, m.MessageID)
	}
	return ids
}

// TestReregisteredAgentStartsEmpty: an agent registered under a deleted
// agent's address is a new agent. It sees none of the old agent's mail,
// received or sent, even an inbox entry the delete's purge missed; asking
// for it by id answers exactly what an id that never existed answers.
func TestReregisteredAgentStartsEmpty(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	t0 := w.clock()
	alice, dave := w.register(t, "alice"), w.register(t, "dave")
	w.set(t0.Add(time.Second))
	received := w.send(t, alice, "dave")
	sent := w.send(t, dave, "alice")
	require.Equal(t, []string{received}, w.inboxIDs(t, dave))

	w.set(t0.Add(2 * time.Second))
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "dave"))
	// A delivery that lands after the delete, as a lagging worker's or an
	// unfinished purge's would, leaves an entry in the old inbox.
	w.set(t0.Add(3 * time.Second))
	require.NoError(t, w.db.DeliverToInbox(ctx, "dave@example.org", received, gateway.RecipientStatus{Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: w.clock(), Via: "inbox"}))
	w.set(t0.Add(4 * time.Second))
	dave2 := w.register(t, "dave")

	assert.Empty(t, w.inboxIDs(t, dave2), "the new agent's inbox is empty")
	list, _, err := w.svc.ListMessages(ctx, dave2, gateway.MessageQuery{})
	require.NoError(t, err)
	assert.Empty(t, list, "the new agent lists none of the old agent's mail")

	const never = "0195f2a4-0000-7000-8000-000000000000"
	_, notFound := w.svc.GetMessage(ctx, dave2, never)
	requireCode(t, notFound, amtp.CodeNotFound)
	reads := map[string]func(string) error{
		"message": func(id string) error { _, err := w.svc.GetMessage(ctx, dave2, id); return err },
		"status":  func(id string) error { _, err := w.svc.Status(ctx, dave2, id); return err },
	}
	for _, id := range []string{received, sent} {
		for what, read := range reads {
			err := read(id)
			requireCode(t, err, amtp.CodeNotFound)
			assert.Equal(t, strings.ReplaceAll(notFound.Error(), never, "ID"), strings.ReplaceAll(err.Error(), id, "ID"), "%s of %s: the answer for an id that never existed", what, id)
		}
	}
	_, err = w.svc.Status(ctx, alice, received)
	assert.NoError(t, err, "the sender's record stays")
	_, err = w.svc.Status(ctx, alice, sent)
	assert.NoError(t, err, "so does the recipient's")

	w.set(t0.Add(5 * time.Second))
	fresh := w.send(t, alice, "dave")
	assert.Equal(t, []string{fresh}, w.inboxIDs(t, dave2), "mail for the new agent reaches it")
	_, err = w.svc.Status(ctx, dave2, fresh)
	assert.NoError(t, err)
}

// TestAgentGenerationAcrossClocks: who may read a message is decided by
// comparing the message's acceptance time with the reader's registration
// time, which different hosts' clocks wrote. Mail accepted in the same
// millisecond as the registration, or by a host whose clock is behind the
// registering host's, still belongs to the agent it was accepted for; mail
// accepted before a delete never belongs to the agent registered after it.
func TestAgentGenerationAcrossClocks(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		// run registers dave and has alice write to him, returning dave
		// as he is at the end, the message, and whether he should see it.
		run func(t *testing.T, w *genWorld, alice gateway.Principal) (dave gateway.Principal, id string, visible bool)
	}{
		{"registered and written to within one millisecond", func(t *testing.T, w *genWorld, alice gateway.Principal) (gateway.Principal, string, bool) {
			w.set(at.Add(300 * time.Microsecond))
			dave := w.register(t, "dave")
			w.set(at.Add(700 * time.Microsecond))
			return dave, w.send(t, alice, "dave"), true
		}},
		{"the registering host's clock is ahead", func(t *testing.T, w *genWorld, alice gateway.Principal) (gateway.Principal, string, bool) {
			w.set(at.Add(5 * time.Millisecond))
			dave := w.register(t, "dave")
			w.set(at)
			return dave, w.send(t, alice, "dave"), true
		}},
		{"deleted and registered again within one millisecond", func(t *testing.T, w *genWorld, alice gateway.Principal) (gateway.Principal, string, bool) {
			w.set(at.Add(-time.Hour))
			w.register(t, "dave")
			w.set(at.Add(200 * time.Microsecond))
			id := w.send(t, alice, "dave")
			w.set(at.Add(400 * time.Microsecond))
			require.NoError(t, w.svc.DeleteAgent(context.Background(), admin, "dave"))
			w.set(at.Add(700 * time.Microsecond))
			return w.register(t, "dave"), id, false
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newGenWorld(t)
			w.set(at.Add(-2 * time.Hour))
			alice := w.register(t, "alice")
			dave, id, visible := tc.run(t, w, alice)
			ids := w.inboxIDs(t, dave)
			_, err := w.svc.Status(context.Background(), dave, id)
			if !visible {
				assert.Empty(t, ids)
				requireCode(t, err, amtp.CodeNotFound)
				list, _, err := w.svc.ListMessages(context.Background(), dave, gateway.MessageQuery{})
				require.NoError(t, err)
				assert.Empty(t, list)
				return
			}
			assert.Equal(t, []string{id}, ids)
			assert.NoError(t, err, "the recipient reads the status")
			_, err = w.svc.Status(context.Background(), alice, id)
			assert.NoError(t, err, "the sender reads the status")
			// And dave's own mail, accepted by a clock behind his
			// registration, is his to follow.
			mine := w.send(t, dave, "alice")
			_, err = w.svc.Status(context.Background(), dave, mine)
			assert.NoError(t, err, "the sender reads the status of its own mail")
		})
	}
}

// TestReservedAddressesCannotBeRegistered: the names the gateway itself
// sends as (its reports come from postmaster) are never an agent's, in any
// case or spelling of the address.
func TestReservedAddressesCannotBeRegistered(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	for _, addr := range []string{"postmaster", "PostMaster", "postmaster@example.org", "POSTMASTER@Example.ORG", " postmaster ", "mailer-daemon", "Mailer-Daemon@example.org", "amtp-bridge"} {
		t.Run(addr, func(t *testing.T) {
			_, err := w.svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: addr, DeliveryMode: gateway.ModePull})
			requireCode(t, err, amtp.CodeInvalidMessageFormat)
			e, _ := amtp.AsError(err)
			assert.Equal(t, "address", e.Details["field"])
			assert.Contains(t, e.Message, "reserved")
		})
	}
	for _, addr := range []string{"postmaster2", "post.master", "my-postmaster", "bridge"} {
		_, err := w.svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: addr, DeliveryMode: gateway.ModePull})
		assert.NoError(t, err, "%s is no reserved name", addr)
	}
}

// TestReservedAgentFromBeforeCannotAuthenticate: an agent registered under
// a reserved name before names were reserved keeps its record, so that the
// admin sees and deletes it, but its key no longer authenticates: its
// holder cannot send mail that looks like the gateway's own.
func TestReservedAgentFromBeforeCannotAuthenticate(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	require.NoError(t, w.db.PutAgent(ctx, &gateway.Agent{Address: "PostMaster@example.org", DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("key-postmaster")}))
	_, err := w.svc.Authenticate(ctx, "key-postmaster")
	requireCode(t, err, amtp.CodeAuthenticationRequired)
	_, unknown := w.svc.Authenticate(ctx, "key-nobody")
	assert.Equal(t, unknown.Error(), err.Error(), "refused like a key nobody has")
	assert.Contains(t, w.logs.String(), "reserved")
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "postmaster"), "the admin deletes it")
}

// TestMessageIDInUse: a message_id another acceptance holds is refused
// with the same answer whoever holds it, naming no other message, key or
// sender; reusing one's own idempotency key keeps its usual answers.
func TestMessageIDInUse(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	alice, mallory := w.register(t, "alice"), w.register(t, "mallory")
	w.register(t, "bob")
	const id = "0195f2a4-1111-7000-8000-000000000001"
	submit := func(p gateway.Principal, key string, n int) (*gateway.AcceptResult, error) {
		body, err := json.Marshal(map[string]any{"version": "1.0", "message_id": id, "idempotency_key": key, "sender": p.Agent.Address,
			"recipients": []string{"bob@example.org"}, "payload": map[string]any{"n": n}})
		require.NoError(t, err)
		return w.svc.Accept(ctx, p, body)
	}
	first, err := submit(alice, "alice-key", 1)
	require.NoError(t, err)
	require.Equal(t, id, first.MessageID)

	_, foreign := submit(mallory, "mallory-key", 1)
	_, own := submit(alice, "another-alice-key", 1)
	for name, err := range map[string]error{"another sender's id": foreign, "own id under another key": own} {
		requireCode(t, err, amtp.CodeIdempotencyConflict)
		e, _ := amtp.AsError(err)
		assert.Equal(t, "message_id", e.Details["field"], name)
		assert.NotContains(t, e.Message, "idempotency key", name)
		assert.NotContains(t, e.Message, "alice", name)
		assert.Len(t, e.Details, 1, "%s: no detail beyond the field", name)
	}
	assert.Equal(t, own, foreign, "the same answer whoever holds the id")
	_, err = w.svc.GetMessage(ctx, mallory, id)
	requireCode(t, err, amtp.CodeNotFound)

	again, err := submit(alice, "alice-key", 1)
	require.NoError(t, err, "the same key and content: the original answer")
	assert.True(t, again.Duplicate)
	assert.Equal(t, id, again.MessageID)
	_, err = submit(alice, "alice-key", 2)
	requireCode(t, err, amtp.CodeIdempotencyConflict)
	assert.Contains(t, err.Error(), `idempotency key "alice-key"`, "the same key with other content: the usual conflict")
}

// TestWorkflowParticipantReplacedMeanwhile: a workflow asks its
// participants one after the other; one deleted and registered again
// before its turn is not the participant the workflow was started with:
// the new agent's inbox gets nothing, and the participant fails as unknown.
func TestWorkflowParticipantReplacedMeanwhile(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	t0 := w.clock()
	boss, a := w.register(t, "boss"), w.register(t, "a")
	w.register(t, "b")
	w.set(t0.Add(time.Second))
	res, err := w.svc.Accept(ctx, boss, []byte(`{"version":"1.0","sender":"boss@example.org","recipients":["a@example.org","b@example.org"],`+
		`"coordination":{"type":"sequential","sequence":["a@example.org","b@example.org"],"timeout":600},"payload":{"q":1}}`))
	require.NoError(t, err)
	id := res.MessageID
	_, err = w.svc.HandleWorkflowTask(ctx, gateway.Task{ID: id + "|start", MessageID: id, Kind: gateway.TaskWorkflowStart})
	require.NoError(t, err)
	require.Equal(t, []string{id}, w.inboxIDs(t, a))

	w.set(t0.Add(2 * time.Second))
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "b"))
	w.set(t0.Add(3 * time.Second))
	w.register(t, "b")
	_, err = w.svc.Accept(ctx, a, []byte(`{"version":"1.0","sender":"a@example.org","recipients":["boss@example.org"],"in_reply_to":"`+id+`",`+
		`"response_type":"workflow_response","payload":{"ok":true}}`))
	require.NoError(t, err)

	entries, _, err := w.db.ListInbox(ctx, "b@example.org", 10, "")
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing is filed for the new b")
	st, err := w.db.GetStatuses(ctx, id)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, gateway.StateFailed, st[1].Status)
	assert.Equal(t, string(amtp.CodeAgentUnknown), st[1].ErrorCode)
	wf, err := w.db.GetWorkflow(ctx, id)
	require.NoError(t, err)
	require.Len(t, wf.Participants, 2)
	assert.Equal(t, workflow.ParticipantFailed, wf.Participants[1].Status)
}

// TestReregisteredAgentCannotReplayOldKeys: an idempotency key the old
// agent used does not replay the old agent's submission to the new agent
// at its address (which would show it the old message's id and statuses);
// the new agent's own keys replay as usual, also when it sends from a host
// whose clock is behind the one that registered it.
func TestReregisteredAgentCannotReplayOldKeys(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	t0 := w.clock()
	w.register(t, "alice")
	dave := w.register(t, "dave")
	submit := func(p gateway.Principal, key string, n int) (*gateway.AcceptResult, error) {
		body, err := json.Marshal(map[string]any{"version": "1.0", "idempotency_key": key, "sender": "dave@example.org",
			"recipients": []string{"alice@example.org"}, "payload": map[string]any{"n": n}})
		require.NoError(t, err)
		return w.svc.Accept(ctx, p, body)
	}
	w.set(t0.Add(time.Second))
	old, err := submit(dave, "order-7", 1)
	require.NoError(t, err)
	w.set(t0.Add(2 * time.Second))
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "dave"))
	w.set(t0.Add(3 * time.Second))
	dave2 := w.register(t, "dave")

	for _, n := range []int{1, 2} { // the old content, and other content
		_, err := submit(dave2, "order-7", n)
		requireCode(t, err, amtp.CodeIdempotencyConflict)
		assert.NotContains(t, err.Error(), old.MessageID, "content %d", n)
		e, _ := amtp.AsError(err)
		assert.Equal(t, map[string]any{"field": "idempotency_key"}, e.Details, "content %d", n)
	}

	// Registered by a host whose clock is ahead, sending from one behind.
	w.set(t0.Add(4*time.Second + 5*time.Millisecond))
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "dave"))
	dave3 := w.register(t, "dave")
	w.set(t0.Add(4 * time.Second))
	first, err := submit(dave3, "order-8", 1)
	require.NoError(t, err)
	again, err := submit(dave3, "order-8", 1)
	require.NoError(t, err, "the agent's own key replays")
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.MessageID, again.MessageID)
}

// TestReregisteredInitiatorCannotViewOldWorkflow: the workflow a deleted
// agent started is not shown to the agent registered at its address since.
func TestReregisteredInitiatorCannotViewOldWorkflow(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	t0 := w.clock()
	boss := w.register(t, "boss")
	w.register(t, "a")
	w.set(t0.Add(time.Second))
	res, err := w.svc.Accept(ctx, boss, []byte(`{"version":"1.0","sender":"boss@example.org","recipients":["a@example.org"],`+
		`"coordination":{"type":"parallel","timeout":600},"payload":{"q":1}}`))
	require.NoError(t, err)
	_, err = w.svc.WorkflowView(ctx, boss, res.MessageID)
	require.NoError(t, err, "the initiator views its workflow")

	w.set(t0.Add(2 * time.Second))
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "boss"))
	boss2 := w.register(t, "boss")
	_, err = w.svc.WorkflowView(ctx, boss2, res.MessageID)
	requireCode(t, err, amtp.CodeNotFound)
	_, err = w.svc.WorkflowView(ctx, admin, res.MessageID)
	assert.NoError(t, err, "the admin still does")
}

// TestReplacedParticipantCannotAnswer: an agent registered at a
// participant's address after the workflow began does not answer for the
// participant the workflow asked.
func TestReplacedParticipantCannotAnswer(t *testing.T) {
	ctx := context.Background()
	w := newGenWorld(t)
	t0 := w.clock()
	boss := w.register(t, "boss")
	w.register(t, "a")
	w.register(t, "b")
	w.set(t0.Add(time.Second))
	res, err := w.svc.Accept(ctx, boss, []byte(`{"version":"1.0","sender":"boss@example.org","recipients":["a@example.org","b@example.org"],`+
		`"coordination":{"type":"parallel","timeout":600},"payload":{"q":1}}`))
	require.NoError(t, err)
	id := res.MessageID
	_, err = w.svc.HandleWorkflowTask(ctx, gateway.Task{ID: id + "|start", MessageID: id, Kind: gateway.TaskWorkflowStart})
	require.NoError(t, err)

	w.set(t0.Add(2 * time.Second))
	require.NoError(t, w.svc.DeleteAgent(ctx, admin, "b"))
	b2 := w.register(t, "b")
	_, err = w.svc.Accept(ctx, b2, []byte(`{"version":"1.0","sender":"b@example.org","recipients":["boss@example.org"],"in_reply_to":"`+id+`",`+
		`"response_type":"workflow_response","payload":{"ok":true}}`))
	require.NoError(t, err, "the message itself is mail like any other")
	wf, err := w.db.GetWorkflow(ctx, id)
	require.NoError(t, err)
	require.Len(t, wf.Participants, 2)
	assert.NotEqual(t, workflow.ParticipantCompleted, wf.Participants[1].Status, "the new b's answer does not count")
	assert.Equal(t, workflow.StatusInProgress, wf.Status)
}
