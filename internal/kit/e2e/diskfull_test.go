package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// A full disk is produced without root through RLIMIT_FSIZE: the local
// gateway runs in a child process (this test binary again, see
// runLimitedGateway) whose soft file-size limit is lowered before it opens
// its store, so that every write or truncate that would take one of its
// files past the limit fails with EFBIG (Go ignores the SIGXFSZ that comes
// with it), exactly where a write to a full disk fails with ENOSPC. The
// parent then raises the child's soft limit with prlimit(2) — what an
// operator freeing space does — without the gateway having any hook for it.
// Only the local gateway has a disk; on AWS the tables and queues are the
// storage, so this test has no AWS counterpart.

// limitedGatewayEnv, when set, turns TestDiskFullRecovers into the child:
// its value is the soft file-size limit in bytes.
const limitedGatewayEnv = "AGENTRY_TEST_FSIZE_LIMIT"

const (
	// fileSizeLimit leaves room for the database file as it is created
	// (bbolt grows it in 16 MiB steps) and refuses its next growth, which
	// a few dozen 1 MiB messages need.
	fileSizeLimit = 24 << 20
	// bigPayload is the size of each message that fills the disk.
	bigPayload = 1 << 20
	// maxFillMessages bounds the filling: far more than fileSizeLimit
	// holds.
	maxFillMessages = 64
)

func TestDiskFullRecovers(t *testing.T) {
	if limit := os.Getenv(limitedGatewayEnv); limit != "" {
		runLimitedGateway(t, limit)
		return
	}
	dns := dnstest.Start(t)
	addr := freePort(t)
	env := limitedGatewayConfig(t, dns, addr)
	child := startLimitedGateway(t, env, fileSizeLimit)
	x := &gw{t: t, domain: "a.test", url: "http://" + addr}
	alice, _ := x.register("alice", "pull", "")
	x.register("bob", "pull", "")
	big := strings.Repeat("x", bigPayload)

	var accepted []string
	send := func() (int, map[string]any) {
		status, out := x.send(alice, msg("alice@a.test", []string{"bob@a.test"}, map[string]any{"fill": big}))
		if status == http.StatusAccepted {
			accepted = append(accepted, out["message_id"].(string))
		}
		return status, out
	}
	status := http.StatusAccepted
	for i := 0; i < maxFillMessages && status == http.StatusAccepted; i++ {
		status, _ = send()
	}
	require.Equal(t, http.StatusServiceUnavailable, status, "the disk never filled")
	require.NotEmpty(t, accepted)

	// While full: every write is refused with a retryable error that
	// names nothing inside, the gateway is not ready, but alive — a
	// restart would not free any space.
	status, out := send()
	require.Equal(t, http.StatusServiceUnavailable, status, "%v", out)
	errBody, _ := out["error"].(map[string]any)
	assert.Equal(t, "TEMPORARY_FAILURE", errBody["code"])
	assert.NotContains(t, str(errBody["message"]), "agentry.", "no file names")
	assert.NotContains(t, str(errBody["message"]), "too large", "no system errors")
	assert.Equal(t, http.StatusServiceUnavailable, probe(t, x.url+"/readyz"), "not ready while full")
	assert.Equal(t, http.StatusOK, probe(t, x.url+"/healthz"), "alive: it recovers by itself")

	// Space returns: the next calls succeed, without a restart.
	raiseFileSizeLimit(t, child.cmd.Process.Pid)
	assert.Equal(t, http.StatusOK, probe(t, x.url+"/readyz"), "ready again")
	for range 3 {
		status, out = send()
		require.Equal(t, http.StatusAccepted, status, "after space returned: %v", out)
	}

	// Nothing answered 202, before or after the full disk, is lost by a
	// crash: recovery does not stop at what the failed writes left.
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = child.cmd.Process.Wait()
	startLimitedGateway(t, env, 0)
	for _, id := range accepted {
		status, out := call(t, "GET", x.url+"/v1/messages/"+id, alice, nil)
		assert.Equal(t, http.StatusOK, status, "message %s: %v", id, out)
	}
}

// limitedGatewayConfig is the child gateway's environment.
func limitedGatewayConfig(t *testing.T, dns *dnstest.Server, addr string) []string {
	t.Helper()
	key, _ := publishKey(t, dns, "a.test")
	return []string{
		"AGENTRY_DOMAIN=a.test", "AGENTRY_ADDR=" + addr, "AGENTRY_DATA_DIR=" + t.TempDir(),
		"AGENTRY_ADMIN_KEY=" + adminKey, "AGENTRY_SIGNING_KEY=" + key,
		"AGENTRY_DNS_SERVER=" + dns.Addr(), "AGENTRY_ALLOW_INSECURE=1",
		"AGENTRY_PUBLIC_URL=http://" + addr, "AGENTRY_LOG_LEVEL=warn",
	}
}

// startLimitedGateway runs the gateway in a child process with a soft
// file-size limit (0: none) and waits until it is ready. The child stops
// when its stdin closes, so that it never outlives this test.
func startLimitedGateway(t *testing.T, env []string, limit int) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullRecovers$")
	cmd.Env = append(append(os.Environ(), env...), limitedGatewayEnv+"="+strconv.Itoa(limit))
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	var p *proc
	for _, kv := range env {
		if addr, ok := strings.CutPrefix(kv, "AGENTRY_ADDR="); ok {
			p = &proc{cmd: cmd, url: "http://" + addr}
		}
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "limited gateway did not become ready")
	return p
}

// runLimitedGateway is the child: it lowers its own soft file-size limit
// (the hard one stays, so that the parent can raise the soft one again)
// and serves the local gateway until its stdin closes.
func runLimitedGateway(t *testing.T, limit string) {
	n, err := strconv.ParseUint(limit, 10, 64)
	require.NoError(t, err)
	if n > 0 {
		var lim syscall.Rlimit
		require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim))
		lim.Cur = n
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	}
	cfg, err := config.FromEnv(os.Getenv)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := localgw.New(cfg, localgw.Options{Logger: log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	require.NoError(t, g.Serve(ctx))
}

// raiseFileSizeLimit lifts the child's soft file-size limit to its hard
// one: the disk has room again.
func raiseFileSizeLimit(t *testing.T, pid int) {
	t.Helper()
	var lim unix.Rlimit
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &lim))
	lim.Cur = lim.Max
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil))
}

// probe answers the status of a GET.
func probe(t *testing.T, url string) int {
	t.Helper()
	status, _ := callRaw(t, "GET", url, "", nil)
	return status
}
