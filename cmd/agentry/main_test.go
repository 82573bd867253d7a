package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

const testAdmin = "cli-test-admin-key-0123"

func startLocal(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	env := map[string]string{"AGENTRY_DOMAIN": "cli.test", "AGENTRY_DATA_DIR": t.TempDir(), "AGENTRY_ADMIN_KEY": testAdmin, "AGENTRY_DNS_SERVER": "127.0.0.1:1",
		// The push agents of the CLI tests are httptest servers on loopback.
		"AGENTRY_ALLOW_INSECURE": "1"}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	g, err := localgw.New(cfg, localgw.Options{Listener: l})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "the gateway's Serve")
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return "http://" + l.Addr().String()
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLISendStatusInboxAck(t *testing.T) {
	url := startLocal(t)
	t.Setenv("AGENTRY_URL", url)
	// Register through the API as the admin.
	req, _ := http.NewRequest("POST", url+"/v1/admin/agents", strings.NewReader(`{"address":"ann","delivery_mode":"pull"}`))
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var reg map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&reg))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	t.Setenv("AGENTRY_API_KEY", reg["api_key"].(string))

	code, out, errs := runCLI(t, "send", "-from", "ann@cli.test", "-to", "ann@cli.test", "-subject", "hi", "-payload", `{"n":1}`, "--json")
	require.Equal(t, 0, code, errs)
	var sent map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &sent), out)
	id := sent["message_id"].(string)

	require.Eventually(t, func() bool {
		code, out, _ := runCLI(t, "status", id, "--json")
		return code == 0 && strings.Contains(out, `"delivered"`)
	}, 5*time.Second, 20*time.Millisecond)
	runSteps(t, []step{
		{args: []string{"status", id}, stdout: []string{"message_id:", id, "RECIPIENT", "ann@cli.test", "delivered"}},
		{args: []string{"send", "-from", "ann@cli.test", "-to", "ann@cli.test", "-idempotency-key", "k1"}, stdout: []string{"message_id:", "RECIPIENT", "ann@cli.test"}},
		{args: []string{"inbox", "ann", "-limit", "1"}, stdout: []string{"MESSAGE", "FROM", id, "hi"}, stderr: []string{"more: agentry inbox ann -cursor "}},
		{args: []string{"inbox", "ann", "--json"}, jsonKey: "messages"},
	})

	code, out, errs = runCLI(t, "inbox", "ann", "-ack")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, id)
	assert.Contains(t, out, "acknowledged "+id)
	code, _, errs = runCLI(t, "ack", "ann", id)
	assert.Equal(t, 1, code, "a second ack is an error (404)")
	assert.Contains(t, errs, "NOT_FOUND")

	code, _, errs = runCLI(t, "send", "-from", "ann@cli.test", "-to", "ann@cli.test", "-payload", `{bad`)
	assert.Equal(t, 2, code, "a bad command line is a usage error")
	assert.Contains(t, errs, "not valid JSON")
	code, _, _ = runCLI(t, "status", "0190f5d2-0000-7000-8000-000000000000")
	assert.Equal(t, 1, code)
}

func TestCLIDNSRecordAndUsage(t *testing.T) {
	t.Setenv("AGENTRY_DOMAIN", "example.com")
	t.Setenv("AGENTRY_PUBLIC_URL", "https://amtp.example.com")
	code, out, _ := runCLI(t, "dns-record")
	require.Equal(t, 0, code)
	assert.Equal(t, `_amtp.example.com. 300 IN TXT "v=amtp1;gateway=https://amtp.example.com;auth=apikey;max-size=10485760"`+"\n", out)
	code, _, errs := runCLI(t, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "unknown command")
	code, _, _ = runCLI(t)
	assert.Equal(t, 2, code)
}
