package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/coverbin"
)

// buildAgentry compiles the real binary once per test run.
func buildAgentry(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	bin := filepath.Join(t.TempDir(), "agentry")
	args := append(append([]string{"build"}, coverbin.BuildFlags()...), "-o", bin, "./cmd/agentry")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// freePort reserves a loopback port and releases it for a later listener.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

type proc struct {
	cmd *exec.Cmd
	url string
}

func startBinary(t *testing.T, bin string, env []string, addr string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "AGENTRY_ADDR="+addr)
	cmd.Env = append(cmd.Env, coverbin.Env(t, "e2e")...)
	cmd.Stdout = testWriter{t}
	cmd.Stderr = testWriter{t}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, url: "http://" + addr}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			coverbin.Drain(cmd.Process, func() error { return cmd.Process.Signal(syscall.SIGTERM) }, settleWithin)
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, settleWithin, 50*time.Millisecond, "gateway binary did not become ready")
	return p
}

func TestKillDashNineAfterAcceptLosesNothing(t *testing.T) {
	bin := buildAgentry(t)
	dns := dnstest.Start(t)
	dataDir := t.TempDir()
	aAddr := freePort(t)
	bAddr := freePort(t)
	// b.test is published but not running yet: the first delivery attempts fail.
	dns.SetTXT("_amtp.b.test", 60, "v=amtp1;gateway=http://"+bAddr)
	aKey, _ := publishKey(t, dns, "a.test")
	env := []string{
		"AGENTRY_SIGNING_KEY=" + aKey,
		"AGENTRY_DOMAIN=a.test", "AGENTRY_DATA_DIR=" + dataDir, "AGENTRY_ADMIN_KEY=" + adminKey,
		"AGENTRY_DNS_SERVER=" + dns.Addr(), "AGENTRY_ALLOW_INSECURE=1",
		"AGENTRY_RETRY_BASE=200ms", "AGENTRY_RETRY_MAX=500ms", "AGENTRY_LOG_LEVEL=warn",
	}
	a := startBinary(t, bin, env, aAddr)
	status, out := call(t, "POST", a.url+"/v1/admin/agents", adminKey, map[string]any{"address": "alice", "delivery_mode": "pull"})
	require.Equal(t, http.StatusCreated, status, "%v", out)
	alice := out["api_key"].(string)

	status, out = call(t, "POST", a.url+"/v1/messages", alice, msg("alice@a.test", []string{"bob@b.test"}, map[string]any{"survive": "kill -9"}))
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := out["message_id"].(string)
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = a.cmd.Process.Wait()

	// Now b.test comes up, and a.test restarts on the same data.
	l, err := net.Listen("tcp", bAddr)
	require.NoError(t, err, "reserved port for b.test was taken")
	b := startGateway(t, dns, "b.test", gwOpts{listener: l})
	bob, _ := b.register("bob", "pull", "")
	a2 := startBinary(t, bin, env, aAddr)

	x := &gw{t: t, domain: "a.test", url: a2.url}
	rs := x.waitStatus(alice, id, "bob@b.test", "delivered", settleWithin)
	assert.GreaterOrEqual(t, rs["attempts"], float64(1))
	b.waitInbox(bob, "bob@b.test", 1, settleWithin)
	time.Sleep(500 * time.Millisecond)
	got := b.inbox(bob, "bob@b.test")
	require.Len(t, got, 1)
	assert.Equal(t, id, got[0]["message_id"])

	// Graceful stop on SIGTERM.
	require.NoError(t, a2.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- a2.cmd.Wait() }()
	select {
	case err := <-done:
		assert.NoError(t, err, "SIGTERM exits cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop on SIGTERM")
	}
	assert.False(t, strings.Contains(rs["status"].(string), "fail"))
}
