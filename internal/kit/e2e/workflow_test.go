package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssfn "github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// Workflow scenarios of issue 5: every participant is a real agent of a
// running gateway (pull agents, so that what each one received can be
// counted), replies go through the normal accept path, and the initiator's
// result arrives as an AMTP message in its inbox.

// party is one pull agent of a gateway.
type party struct {
	g    *gw
	addr string
	key  string
}

func (x *gw) party(name string) party {
	key, _ := x.register(name, "pull", "")
	return party{g: x, addr: name + "@" + x.domain, key: key}
}

// start submits a coordinated message from p and returns the workflow id.
func (p party) start(t *testing.T, to []string, coordination map[string]any, payload any) string {
	t.Helper()
	m := msg(p.addr, to, payload)
	m["coordination"] = coordination
	status, out := p.g.send(p.key, m)
	require.Equal(t, http.StatusAccepted, status, "coordinated message refused: %v", out)
	id := str(out["message_id"])
	require.NotEmpty(t, id)
	return id
}

// reply answers workflow id as p, to initiator; it returns the status code
// and body.
func (p party) reply(t *testing.T, id, initiator, responseType string, payload any) (int, map[string]any) {
	t.Helper()
	m := msg(p.addr, []string{initiator}, payload)
	m["in_reply_to"] = id
	m["response_type"] = responseType
	return p.g.send(p.key, m)
}

func (p party) mustReply(t *testing.T, id, initiator string, payload any) {
	t.Helper()
	status, out := p.reply(t, id, initiator, "workflow_response", payload)
	require.Equal(t, http.StatusAccepted, status, "reply of %s refused: %v", p.addr, out)
}

// waitAsked waits until p has received the workflow's message.
func (p party) waitAsked(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool { return p.holds(id) }, settleWithin, 20*time.Millisecond,
		"%s never received the message of workflow %s", p.addr, id)
}

// holds reports whether p's inbox has message id.
func (p party) holds(id string) bool {
	for _, m := range p.g.inbox(p.key, p.addr) {
		if str(m["message_id"]) == id {
			return true
		}
	}
	return false
}

// waitResult waits for the workflow_result of id in p's inbox.
func (p party) waitResult(t *testing.T, id string, within time.Duration) map[string]any {
	t.Helper()
	var got map[string]any
	require.Eventually(t, func() bool {
		for _, m := range p.g.inbox(p.key, p.addr) {
			if m["response_type"] == "workflow_result" && m["in_reply_to"] == id {
				got = m
				return true
			}
		}
		return false
	}, within, 25*time.Millisecond, "no workflow_result for %s in the inbox of %s", id, p.addr)
	return got
}

// workflow reads GET /v1/workflows/{id} with key.
func (x *gw) workflow(key, id string) (int, map[string]any) {
	return call(x.t, "GET", x.url+"/v1/workflows/"+id, key, nil)
}

// execution is how the workflow's Step Functions execution ended.
type execution struct {
	status sfntypes.ExecutionStatus
	err    string
	states []string // every state entered, in order
}

// checkExecution, on a gateway with the AWS adapters, waits for workflow
// id's execution of the coordination machine to end and checks that it
// ended in wantStatus (with wantError for a FAILED one) and passed through
// each of the states in through. On the embedded runtime there is no
// execution and it does nothing.
func (x *gw) checkExecution(t *testing.T, id string, wantStatus sfntypes.ExecutionStatus, wantError string, through ...string) {
	t.Helper()
	if x.machine == "" {
		return
	}
	c := awssfn.NewFromConfig(awstest.Config(t))
	arn := strings.Replace(x.machine, ":stateMachine:", ":execution:", 1) + ":" + id
	var ex execution
	require.Eventually(t, func() bool {
		out, err := c.DescribeExecution(context.Background(), &awssfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return false
		}
		ex.status, ex.err = out.Status, aws.ToString(out.Error)
		return out.Status != sfntypes.ExecutionStatusRunning
	}, settleWithin, 50*time.Millisecond, "execution %s never ended", arn)
	h, err := c.GetExecutionHistory(context.Background(), &awssfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 1000})
	require.NoError(t, err)
	for _, e := range h.Events {
		if e.StateEnteredEventDetails != nil {
			ex.states = append(ex.states, aws.ToString(e.StateEnteredEventDetails.Name))
		}
	}
	assert.Equal(t, wantStatus, ex.status, "execution of %s (states %v)", id, ex.states)
	assert.Equal(t, wantError, ex.err)
	for _, s := range through {
		assert.Contains(t, ex.states, s, "the execution of %s never entered %s", id, s)
	}
}

// participants indexes a workflow view's participants by address.
func participants(t *testing.T, view map[string]any) map[string]map[string]any {
	t.Helper()
	list, ok := view["participants"].([]any)
	require.True(t, ok, "participants missing in %v", view)
	out := map[string]map[string]any{}
	for _, p := range list {
		pm := p.(map[string]any)
		out[str(pm["address"])] = pm
	}
	return out
}

func TestWorkflowParallelRequiredAndOptional(t *testing.T) {
	bothRuntimes(t, testWorkflowParallelRequiredAndOptional)
}

func testWorkflowParallelRequiredAndOptional(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	boss, r1, r2, opt := a.party("boss"), a.party("reviewer1"), a.party("reviewer2"), a.party("optional")
	stranger := a.party("stranger")

	id := boss.start(t, []string{r1.addr, r2.addr, opt.addr}, map[string]any{
		"type": "parallel", "timeout": unhurried,
		"required_responses": []string{r1.addr, r2.addr}, "optional_responses": []string{opt.addr},
	}, map[string]any{"document": "Q3 plan"})

	// Everyone is asked at once.
	for _, p := range []party{r1, r2, opt} {
		p.waitAsked(t, id)
	}
	code, view := a.workflow(boss.key, id)
	require.Equal(t, http.StatusOK, code, "%v", view)
	assert.Equal(t, "in_progress", view["status"])
	assert.Equal(t, "parallel", view["type"])

	// Only the initiator (and the admin) may read the workflow.
	code, _ = a.workflow(r1.key, id)
	assert.Equal(t, http.StatusNotFound, code, "a participant does not see the workflow")
	code, _ = a.workflow("", id)
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = a.workflow(adminKey, id)
	assert.Equal(t, http.StatusOK, code)

	// A stranger's reply is refused and counts for nothing.
	status, out := stranger.reply(t, id, boss.addr, "workflow_response", map[string]any{"approve": true})
	require.Equal(t, http.StatusForbidden, status, "%v", out)
	assert.Equal(t, "FORBIDDEN", out["error"].(map[string]any)["code"])

	r1.mustReply(t, id, boss.addr, map[string]any{"approve": true, "score": 8})
	// A second answer from r1 is accepted as mail and ignored by the workflow.
	r1.mustReply(t, id, boss.addr, map[string]any{"approve": false})
	_, view = a.workflow(boss.key, id)
	assert.Equal(t, "in_progress", view["status"], "one of two required answers is not enough")

	r2.mustReply(t, id, boss.addr, map[string]any{"approve": true, "score": 9})
	res := boss.waitResult(t, id, settleWithin)
	assert.Equal(t, "postmaster@a.test", res["sender"])
	payload := res["payload"].(map[string]any)
	assert.Equal(t, "completed", payload["status"])
	ps := participants(t, payload)
	assert.Equal(t, "completed", ps[r1.addr]["status"])
	assert.Equal(t, map[string]any{"approve": true, "score": float64(8)}, ps[r1.addr]["response"], "the first answer wins")
	assert.Equal(t, "completed", ps[r2.addr]["status"])
	assert.Equal(t, "skipped", ps[opt.addr]["status"], "the optional participant did not hold the workflow up")

	_, view = a.workflow(boss.key, id)
	assert.Equal(t, "completed", view["status"])
	a.checkExecution(t, id, sfntypes.ExecutionStatusSucceeded, "", "Ask", "Participant", "Decided", "Completed")

	// The optional participant's late answer changes nothing, and there is
	// exactly one result.
	opt.mustReply(t, id, boss.addr, map[string]any{"approve": true})
	time.Sleep(300 * time.Millisecond)
	results := 0
	for _, m := range boss.g.inbox(boss.key, boss.addr) {
		if m["response_type"] == "workflow_result" {
			results++
		}
	}
	assert.Equal(t, 1, results)
	_, view = a.workflow(boss.key, id)
	assert.Equal(t, "skipped", participants(t, view)[opt.addr]["status"])
}

func TestWorkflowSequential(t *testing.T) {
	bothRuntimes(t, testWorkflowSequential)
}

func testWorkflowSequential(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	boss, first, second := a.party("boss"), a.party("first"), a.party("second")

	id := boss.start(t, []string{first.addr, second.addr}, map[string]any{
		"type": "sequential", "timeout": unhurried, "sequence": []string{first.addr, second.addr}, "stop_on_failure": true,
	}, map[string]any{"step": "review"})

	first.waitAsked(t, id)
	// The second participant is not asked before the first answered.
	time.Sleep(500 * time.Millisecond)
	assert.False(t, second.holds(id), "the second participant was asked before the first replied")
	status, out := second.reply(t, id, boss.addr, "workflow_response", map[string]any{"ok": true})
	assert.Equal(t, http.StatusForbidden, status, "an answer before being asked is refused: %v", out)

	first.mustReply(t, id, boss.addr, map[string]any{"ok": true})
	second.waitAsked(t, id)
	second.mustReply(t, id, boss.addr, map[string]any{"ok": true, "note": "done"})

	res := boss.waitResult(t, id, settleWithin)
	payload := res["payload"].(map[string]any)
	assert.Equal(t, "completed", payload["status"])
	ps := participants(t, payload)
	assert.Equal(t, "completed", ps[first.addr]["status"])
	assert.Equal(t, "completed", ps[second.addr]["status"])
	a.checkExecution(t, id, sfntypes.ExecutionStatusSucceeded, "", "Completed")
}

func TestWorkflowConditional(t *testing.T) {
	bothRuntimes(t, testWorkflowConditional)
}

func testWorkflowConditional(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	boss, approver, yes, no := a.party("boss"), a.party("approver"), a.party("executor"), a.party("notifier")

	for _, tc := range []struct {
		approve    bool
		taken, not party
		branch     string
	}{
		{approve: true, taken: yes, not: no, branch: "then"},
		{approve: false, taken: no, not: yes, branch: "else"},
	} {
		t.Run(tc.branch, func(t *testing.T) {
			id := boss.start(t, []string{approver.addr, yes.addr, no.addr}, map[string]any{
				"type": "conditional", "timeout": unhurried,
				"conditions": []any{map[string]any{
					"if":   approver.addr + " responds with approve == true",
					"then": []string{yes.addr}, "else": []string{no.addr},
				}},
			}, map[string]any{"request": "deploy"})

			approver.waitAsked(t, id)
			assert.False(t, yes.holds(id) || no.holds(id), "no branch is asked before the condition is decided")
			approver.mustReply(t, id, boss.addr, map[string]any{"approve": tc.approve})
			tc.taken.waitAsked(t, id)
			tc.taken.mustReply(t, id, boss.addr, map[string]any{"done": true})

			res := boss.waitResult(t, id, settleWithin)
			payload := res["payload"].(map[string]any)
			assert.Equal(t, "completed", payload["status"])
			assert.Equal(t, []any{tc.branch}, payload["branches"])
			ps := participants(t, payload)
			assert.Equal(t, "skipped", ps[tc.not.addr]["status"])
			assert.False(t, tc.not.holds(id), "the branch not taken never received the message")
			// The machine routed on the branch the Go core chose.
			a.checkExecution(t, id, sfntypes.ExecutionStatusSucceeded, "", strings.ToUpper(tc.branch[:1])+tc.branch[1:], "Completed")
		})
	}
}

func TestWorkflowTimeout(t *testing.T) {
	bothRuntimes(t, testWorkflowTimeout)
}

func testWorkflowTimeout(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	boss, slow, quick := a.party("boss"), a.party("slow"), a.party("quick")
	// quick's answer must be applied before the deadline, and how long
	// that takes depends on the machine: 2 s on moto when idle, more than
	// 15 s when the CPUs are busy. Rather than one deadline long enough for
	// the slowest machine (which every run would wait out), a round whose
	// answer came too late proves nothing and is run again with twice
	// the deadline.
	var id string
	var started time.Time
	deadline := 4 * time.Second
	for {
		started = time.Now()
		id = boss.start(t, []string{slow.addr, quick.addr}, map[string]any{"type": "parallel", "timeout": int(deadline.Seconds())}, map[string]any{"q": "?"})
		quick.waitAsked(t, id)
		quick.mustReply(t, id, boss.addr, map[string]any{"a": 1})
		if answeredInTime(t, a, boss.key, id, quick.addr, deadline) {
			break
		}
		t.Logf("quick's answer came after the %s deadline; again with twice as long", deadline)
		deadline *= 2
		require.LessOrEqual(t, deadline, 2*time.Minute, "quick's answer never came before the deadline")
	}

	res := boss.waitResult(t, id, deadline+settleWithin)
	assert.GreaterOrEqual(t, time.Since(started), deadline, "no result before the deadline")
	payload := res["payload"].(map[string]any)
	assert.Equal(t, "timed_out", payload["status"])
	ps := participants(t, payload)
	assert.Equal(t, "timed_out", ps[slow.addr]["status"])
	assert.Equal(t, "completed", ps[quick.addr]["status"])
	// On AWS the deadline is the step's TimeoutSeconds: the machine itself
	// noticed it and told the gateway.
	a.checkExecution(t, id, sfntypes.ExecutionStatusFailed, "Workflow.TimedOut", "Overdue", "Expired", "TimedOut")

	// Too late: the answer is accepted as mail, the workflow stays timed out.
	slow.mustReply(t, id, boss.addr, map[string]any{"a": 2})
	_, view := a.workflow(boss.key, id)
	assert.Equal(t, "timed_out", view["status"])
}

func TestWorkflowRemoteParticipant(t *testing.T) {
	bothRuntimes(t, testWorkflowRemoteParticipant)
}

func testWorkflowRemoteParticipant(t *testing.T, onAWS bool) {
	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{aws: onAWS})
	b := startGateway(t, dns, "b.test", gwOpts{})
	boss, local := a.party("boss"), a.party("local")
	remote := b.party("remote")

	id := boss.start(t, []string{local.addr, remote.addr}, map[string]any{
		"type": "sequential", "timeout": unhurried, "sequence": []string{local.addr, remote.addr},
	}, map[string]any{"task": "sign-off"})
	local.waitAsked(t, id)
	local.mustReply(t, id, boss.addr, map[string]any{"signed": true})

	// b.test receives the message like any other and does not run the
	// workflow; its agent's reply travels back signed, through b.test.
	remote.waitAsked(t, id)
	code, _ := b.workflow(adminKey, id)
	assert.Equal(t, http.StatusNotFound, code, "only the initiator's gateway runs the workflow")
	remote.mustReply(t, id, boss.addr, map[string]any{"signed": true, "by": "remote"})

	res := boss.waitResult(t, id, settleWithin)
	payload := res["payload"].(map[string]any)
	assert.Equal(t, "completed", payload["status"])
	ps := participants(t, payload)
	assert.Equal(t, map[string]any{"signed": true, "by": "remote"}, ps[remote.addr]["response"])
	a.checkExecution(t, id, sfntypes.ExecutionStatusSucceeded, "", "Completed")
}

func TestWorkflowRefusedAtSubmission(t *testing.T) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{})
	boss, x := a.party("boss"), a.party("x")
	for _, tc := range []struct {
		name         string
		coordination map[string]any
		field        string
	}{
		{"malformed condition", map[string]any{"type": "conditional", "conditions": []any{map[string]any{
			"if": x.addr + " responds with approve ~ true", "then": []string{x.addr}}}}, "coordination.conditions[0].if"},
		{"unknown type", map[string]any{"type": "round-robin"}, "coordination.type"},
		// A participant need not be listed in recipients (the draft's
		// examples do not), but a recipient the sequence never names
		// would never be asked.
		{"recipient not in the sequence", map[string]any{"type": "sequential", "sequence": []string{"y@a.test"}}, "recipients[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.countMessages()
			m := msg(boss.addr, []string{x.addr}, map[string]any{"n": 1})
			m["coordination"] = tc.coordination
			status, out := a.send(boss.key, m)
			require.Equal(t, http.StatusBadRequest, status, "%v", out)
			e := out["error"].(map[string]any)
			if tc.field != "" {
				assert.Equal(t, tc.field, e["details"].(map[string]any)["field"], "%v", e)
			}
			assert.Equal(t, before, a.countMessages(), "a refused workflow stores nothing")
			assert.False(t, x.holds(str(out["message_id"])))
		})
	}
}

// answeredInTime waits until workflow id has applied participant's
// answer, or has ended without it (the answer came after the deadline).
func answeredInTime(t *testing.T, x *gw, key, id, participant string, deadline time.Duration) bool {
	t.Helper()
	var applied bool
	require.Eventually(t, func() bool {
		code, view := x.workflow(key, id)
		if code != http.StatusOK {
			return false
		}
		applied = participants(t, view)[participant]["status"] == "completed"
		return applied || view["status"] != "in_progress"
	}, deadline+settleWithin, 20*time.Millisecond, "workflow %s neither applied the answer of %s nor ended", id, participant)
	return applied
}

func TestWorkflowUnreachableParticipantFailsIt(t *testing.T) {
	bothRuntimes(t, testWorkflowUnreachableParticipantFailsIt)
}

// A participant that cannot be delivered to (no such agent) is a failure
// of the workflow's step: with stop_on_failure the sequence ends there,
// the participants after it are never asked, and the initiator learns it
// from the result.
func testWorkflowUnreachableParticipantFailsIt(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	boss, first, last := a.party("boss"), a.party("first"), a.party("last")
	ghost := "ghost@a.test" // never registered

	id := boss.start(t, []string{first.addr, ghost, last.addr}, map[string]any{
		"type": "sequential", "timeout": unhurried, "sequence": []string{first.addr, ghost, last.addr}, "stop_on_failure": true,
	}, map[string]any{"step": "chain"})
	first.waitAsked(t, id)
	first.mustReply(t, id, boss.addr, map[string]any{"ok": true})

	res := boss.waitResult(t, id, settleWithin)
	payload := res["payload"].(map[string]any)
	assert.Equal(t, "failed", payload["status"])
	ps := participants(t, payload)
	assert.Equal(t, "completed", ps[first.addr]["status"])
	assert.Equal(t, "failed", ps[ghost]["status"])
	assert.Equal(t, "AGENT_UNKNOWN", ps[ghost]["error"].(map[string]any)["error_code"])
	assert.Equal(t, "skipped", ps[last.addr]["status"])
	assert.False(t, last.holds(id), "nobody after the failure is asked")
	a.checkExecution(t, id, sfntypes.ExecutionStatusFailed, "Workflow.Failed", "Failed")
}

// The local gateway's workflow deadline is a task in its durable queue:
// a gateway stopped before the deadline and started again after it still
// times the workflow out and tells the initiator.
func TestWorkflowTimerSurvivesRestart(t *testing.T) {
	dns := dnstest.Start(t)
	dir := t.TempDir()
	a := startGateway(t, dns, "a.test", gwOpts{dataDir: dir})
	boss, slow := a.party("boss"), a.party("slow")
	id := boss.start(t, []string{slow.addr}, map[string]any{"type": "parallel", "timeout": 2}, map[string]any{"q": "?"})
	slow.waitAsked(t, id)
	a.stop()

	time.Sleep(2500 * time.Millisecond) // the deadline passes while nothing runs
	again := startGateway(t, dns, "a.test", gwOpts{dataDir: dir})
	boss.g, slow.g = again, again
	res := boss.waitResult(t, id, settleWithin)
	assert.Equal(t, "timed_out", res["payload"].(map[string]any)["status"])
	_, view := again.workflow(boss.key, id)
	assert.Equal(t, "timed_out", view["status"])
}
