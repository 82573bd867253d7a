package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step is one command line of a CLI test and what it must do.
type step struct {
	args    []string
	code    int
	stdout  []string // each must be in stdout
	stderr  []string // each must be in stderr
	jsonKey string   // with --json: stdout is a JSON object with this member
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		code, out, errs := runCLI(t, s.args...)
		name := strings.Join(s.args, " ")
		if !assert.Equal(t, s.code, code, "agentry %s\nstdout: %s\nstderr: %s", name, out, errs) {
			continue
		}
		for _, w := range s.stdout {
			assert.Contains(t, out, w, "agentry %s: stdout", name)
		}
		for _, w := range s.stderr {
			assert.Contains(t, errs, w, "agentry %s: stderr", name)
		}
		if s.jsonKey != "" {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &m), "agentry %s: %s", name, out)
			assert.Contains(t, m, s.jsonKey, "agentry %s", name)
		}
	}
}

// adminEnv points the CLI at a new local gateway as its admin.
func adminEnv(t *testing.T) string {
	url := startLocal(t)
	t.Setenv("AGENTRY_URL", url)
	t.Setenv("AGENTRY_ADMIN_KEY", testAdmin)
	t.Setenv("AGENTRY_API_KEY", "")
	t.Setenv("AGENTRY_DATA_DIR", t.TempDir())
	return url
}

func writeFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestCLIAgents: agents add|list|show|rm|rotate-key against a local gateway.
func TestCLIAgents(t *testing.T) {
	adminEnv(t)
	runSteps(t, []step{
		{args: []string{"agents", "add", "ann"}, stdout: []string{"ann@cli.test", "api_key:", "pull"}, stderr: []string{"shown only now"}},
		{args: []string{"agents", "add", "bob", "-mode", "push", "-webhook", "http://127.0.0.1:9/hook", "-header", "X-Token: t"}, stdout: []string{"bob@cli.test", "webhook_secret:"}},
		{args: []string{"agents", "add", "carl", "--json", "-schema", "agntcy:test.order.v1"}, jsonKey: "api_key"},
		{args: []string{"agents", "add", "dan", "-header", "no colon"}, code: exitBadUsage, stderr: []string{"Name: value", "usage: agentry agents add"}},
		{args: []string{"agents", "add"}, code: exitBadUsage, stderr: []string{"missing arguments"}},
		{args: []string{"agents", "list"}, stdout: []string{"ADDRESS", "ann@cli.test", "bob@cli.test", "http://127.0.0.1:9/hook", "agntcy:test.order.v1"}},
		{args: []string{"agents", "list", "--json"}, jsonKey: "agents"},
		{args: []string{"agents", "show", "ann"}, stdout: []string{"address:", "ann@cli.test", "delivery_mode:"}},
		{args: []string{"agents", "show", "ann@cli.test", "--json"}, jsonKey: "delivery_mode"},
		{args: []string{"agents", "show", "nobody"}, code: exitFailed, stderr: []string{"NOT_FOUND", "HTTP 404"}},
		{args: []string{"agents", "rotate-key", "ann"}, stdout: []string{"api_key:", "amtp_"}},
		{args: []string{"agents", "rm", "bob"}, stdout: []string{"deleted"}},
		{args: []string{"agents", "show", "bob"}, code: exitFailed, stderr: []string{"NOT_FOUND"}},
		{args: []string{"agents", "frob"}, code: exitBadUsage, stderr: []string{`unknown command "agents frob"`}},
	})

	t.Run("wrong admin key", func(t *testing.T) {
		t.Setenv("AGENTRY_ADMIN_KEY", "not-the-key")
		runSteps(t, []step{{args: []string{"agents", "list"}, code: exitFailed, stderr: []string{"HTTP 401"}}})
	})
	t.Run("no admin key", func(t *testing.T) {
		t.Setenv("AGENTRY_ADMIN_KEY", "")
		runSteps(t, []step{{args: []string{"agents", "list"}, code: exitFailed, stderr: []string{"set AGENTRY_ADMIN_KEY"}}})
	})
	t.Run("the data dir's admin key", func(t *testing.T) {
		t.Setenv("AGENTRY_ADMIN_KEY", "")
		dir := t.TempDir()
		t.Setenv("AGENTRY_DATA_DIR", dir)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.key"), []byte(testAdmin+"\n"), 0o600))
		runSteps(t, []step{{args: []string{"agents", "list"}, stdout: []string{"ann@cli.test"}}})
	})
}

const orderSchema = `{"type":"object","required":["sku"],"properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1}}}`

// TestCLISchemas: schemas add|list|show|rm|validate against a local gateway.
func TestCLISchemas(t *testing.T) {
	adminEnv(t)
	id := "agntcy:test.order.v1"
	doc := writeFile(t, "order.json", orderSchema)
	good := writeFile(t, "good.json", `{"sku":"A-1","qty":2}`)
	bad := writeFile(t, "bad.json", `{"qty":0}`)
	runSteps(t, []step{
		{args: []string{"schemas", "add", id, doc}, stdout: []string{id, "version:"}},
		{args: []string{"schemas", "add", id, doc, "--json"}, jsonKey: "version"},
		{args: []string{"schemas", "add", id, writeFile(t, "x.json", "{not json")}, code: exitFailed, stderr: []string{"not JSON"}},
		{args: []string{"schemas", "add", "not an id", doc}, code: exitFailed, stderr: []string{"HTTP 400"}},
		{args: []string{"schemas", "list"}, stdout: []string{"ID", id}},
		{args: []string{"schemas", "list", "--json"}, jsonKey: "schemas"},
		{args: []string{"schemas", "show", id}, stdout: []string{`"required"`, `"sku"`}},
		{args: []string{"schemas", "show", id, "--json"}, jsonKey: "schema"},
		{args: []string{"schemas", "validate", id, good}, stdout: []string{"valid"}},
		{args: []string{"schemas", "validate", id, bad}, code: exitFailed, stdout: []string{"invalid:", "sku"}, stderr: []string{"does not match"}},
		{args: []string{"schemas", "validate", id, bad, "--json"}, code: exitFailed, jsonKey: "validation_errors"},
		{args: []string{"schemas", "rm", id}, stdout: []string{"deleted " + id}},
		{args: []string{"schemas", "show", id}, code: exitFailed, stderr: []string{"NOT_FOUND"}},
		{args: []string{"schemas", "validate", id}, code: exitBadUsage, stderr: []string{"usage: agentry schemas validate"}},
	})
}

// TestCLIWorkflows: workflows show, as the admin and as the initiator.
func TestCLIWorkflows(t *testing.T) {
	adminEnv(t)
	keys := map[string]string{}
	for _, name := range []string{"boss", "rita"} {
		code, out, errs := runCLI(t, "agents", "add", name, "--json")
		require.Equal(t, 0, code, errs)
		var reg map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &reg))
		keys[name] = reg["api_key"].(string)
	}
	msg := writeFile(t, "coord.json", `{"version":"1.0","sender":"boss@cli.test","recipients":["rita@cli.test"],"payload":{"q":"?"},
		"coordination":{"type":"parallel","timeout":3600}}`)
	t.Setenv("AGENTRY_API_KEY", keys["boss"])
	code, out, errs := runCLI(t, "send", "-file", msg, "--json")
	require.Equal(t, 0, code, errs)
	var sent map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &sent), out)
	id := sent["message_id"].(string)

	runSteps(t, []step{
		{args: []string{"workflows", "show", id}, stdout: []string{"workflow_id:", id, "parallel", "PARTICIPANT", "rita@cli.test"}},
		{args: []string{"workflows", "show", id, "--json"}, jsonKey: "participants"},
	})
	t.Setenv("AGENTRY_API_KEY", "")
	runSteps(t, []step{
		{args: []string{"workflows", "show", id}, stdout: []string{"rita@cli.test"}},
		{args: []string{"workflows", "show", "019ad3c4-5e00-7000-8000-000000000999"}, code: exitFailed, stderr: []string{"NOT_FOUND"}},
	})
}

// TestCLIDeadLetters: deliveries to a webhook that refuses them for good
// are dead-lettered; list, show, redrive one, redrive the rest in bulk
// (with its progress line), after which the webhook, healthy by then, has
// every message.
func TestCLIDeadLetters(t *testing.T) {
	adminEnv(t)
	var healthy atomic.Bool
	var received atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusGone) // final: no retry
			return
		}
		received.Add(1)
	}))
	t.Cleanup(hook.Close)
	runSteps(t, []step{
		{args: []string{"agents", "add", "pia"}},
		{args: []string{"agents", "add", "hook", "-mode", "push", "-webhook", hook.URL}},
	})
	code, out, errs := runCLI(t, "agents", "rotate-key", "pia", "--json")
	require.Equal(t, 0, code, errs)
	var reg map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &reg))
	t.Setenv("AGENTRY_API_KEY", reg["api_key"].(string))
	// Two recipients each, so that the queue's worker makes every attempt.
	for range 3 {
		code, _, errs := runCLI(t, "send", "-from", "pia@cli.test", "-to", "hook@cli.test", "-to", "pia@cli.test")
		require.Equal(t, 0, code, errs)
	}
	t.Setenv("AGENTRY_API_KEY", "")

	var page struct {
		DeadLetters []struct {
			ID string `json:"id"`
		} `json:"dead_letters"`
	}
	require.Eventually(t, func() bool {
		code, out, _ := runCLI(t, "dead-letters", "list", "--json", "-recipient", "hook")
		return code == 0 && json.Unmarshal([]byte(out), &page) == nil && len(page.DeadLetters) == 3
	}, 10*time.Second, 20*time.Millisecond)
	first := page.DeadLetters[0].ID
	healthy.Store(true)

	runSteps(t, []step{
		{args: []string{"dead-letters", "list"}, stdout: []string{"ID", first, "hook@cli.test"}},
		{args: []string{"dead-letters", "list", "-limit", "1"}, stdout: []string{first}, stderr: []string{"more: agentry dead-letters list -cursor"}},
		{args: []string{"dead-letters", "list", "-code", "SCHEMA_VALIDATION_FAILED"}, stdout: []string{"ID"}},
		{args: []string{"dead-letters", "list", "-since", "yesterday"}, code: exitFailed, stderr: []string{"HTTP 400"}},
		{args: []string{"dead-letters", "show", first}, stdout: []string{"failure_reason:", "original_message:", "hook@cli.test"}},
		{args: []string{"dead-letters", "show", first, "--json"}, jsonKey: "original_message"},
		{args: []string{"dead-letters", "redrive"}, code: exitBadUsage, stderr: []string{"-all"}},
		{args: []string{"dead-letters", "redrive", first, "-all"}, code: exitBadUsage, stderr: []string{"not both"}},
		{args: []string{"dead-letters", "redrive", first}, stdout: []string{"redriven_at:", first}},
		{args: []string{"dead-letters", "redrive", first}, code: exitFailed, stderr: []string{"NOT_FOUND"}},
		{args: []string{"dead-letters", "redrive", "-all", "-limit", "1"}, stdout: []string{"REDRIVEN"}, stderr: []string{"redrive: page 1, 1 redriven so far, going on", "2 redriven, done"}},
		{args: []string{"dead-letters", "list", "--json"}, stdout: []string{`"count": 0`}},
	})
	require.Eventually(t, func() bool { return received.Load() == 3 }, 10*time.Second, 20*time.Millisecond,
		"every redriven message reaches the webhook")
}
