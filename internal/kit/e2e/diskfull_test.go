package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// A full disk is a real one, produced without root: a small tmpfs mounted
// over the gateway's data directory in a user and mount namespace of its
// own. This test binary runs again as a supervisor in that namespace
// (diskFullRoleEnv): it mounts the tmpfs, fills part of it with a
// ballast file, and runs the local gateway as its own child — the same
// binary once more — on the data directory. The parent drives the
// supervisor through its stdin: "free" deletes the ballast (what an
// operator freeing space does, without the gateway having any hook for
// it), "kill" kills the gateway with SIGKILL, "start" starts it again on
// the same file system, which lives as long as the supervisor. Only the
// local gateway has a disk; on AWS the tables and queues are the storage,
// so this test has no AWS counterpart.
const diskFullRoleEnv = "AGENTRY_TEST_DISKFULL_ROLE"

const (
	// fsSize is the tmpfs; ballastSize of it is taken before the gateway
	// starts, so that the store (which refuses writes with less than
	// 64 MiB free) fills after a few dozen 1 MiB messages.
	fsSize      = 192 << 20
	ballastSize = 96 << 20
	// bigPayload is the size of each message that fills the disk.
	bigPayload = 1 << 20
	// maxFillMessages bounds the filling: far more than the room left.
	maxFillMessages = 96
)

func TestDiskFullRecovers(t *testing.T) {
	switch os.Getenv(diskFullRoleEnv) {
	case "supervisor":
		superviseFullDisk(t)
		return
	case "gateway":
		runDiskFullGateway(t)
		return
	}
	dns := dnstest.Start(t)
	addr := freePort(t)
	sup := startDiskFullSupervisor(t, diskFullConfig(t, dns, addr))
	sup.waitReady(t)
	x := &gw{t: t, domain: "a.test", url: sup.url}
	alice, _ := x.register("alice", "pull", "")
	x.register("bob", "pull", "")
	var accepted []string
	send := func() (int, map[string]any) {
		// Incompressible: the store compresses what it can.
		big := make([]byte, bigPayload*3/4)
		_, _ = rand.Read(big)
		status, out := x.send(alice, msg("alice@a.test", []string{"bob@a.test"}, map[string]any{"fill": base64.StdEncoding.EncodeToString(big)}))
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
	assert.NotContains(t, str(errBody["message"]), "store", "no file names")
	assert.NotContains(t, str(errBody["message"]), "bytes free", "no internals")
	assert.Equal(t, http.StatusServiceUnavailable, probe(t, x.url+"/readyz"), "not ready while full")
	assert.Equal(t, http.StatusOK, probe(t, x.url+"/healthz"), "alive: it recovers by itself")

	// Space returns: the next calls succeed, without a restart.
	sup.do(t, "free")
	assert.Equal(t, http.StatusOK, probe(t, x.url+"/readyz"), "ready again")
	for range 3 {
		status, out = send()
		require.Equal(t, http.StatusAccepted, status, "after space returned: %v", out)
	}

	// Nothing answered 202, before or after the full disk, is lost by a
	// crash.
	sup.do(t, "kill")
	sup.do(t, "start")
	sup.waitReady(t)
	for _, id := range accepted {
		status, out := call(t, "GET", x.url+"/v1/messages/"+id, alice, nil)
		assert.Equal(t, http.StatusOK, status, "message %s: %v", id, out)
	}
}

// diskFullConfig is the gateway's environment.
func diskFullConfig(t *testing.T, dns *dnstest.Server, addr string) []string {
	t.Helper()
	key, _ := publishKey(t, dns, "a.test")
	return []string{
		"AGENTRY_DOMAIN=a.test", "AGENTRY_ADDR=" + addr, "AGENTRY_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"AGENTRY_ADMIN_KEY=" + adminKey, "AGENTRY_SIGNING_KEY=" + key,
		"AGENTRY_DNS_SERVER=" + dns.Addr(), "AGENTRY_ALLOW_INSECURE=1",
		"AGENTRY_PUBLIC_URL=http://" + addr, "AGENTRY_LOG_LEVEL=warn",
	}
}

// supervisor is the parent's handle on the supervising child.
type supervisor struct {
	cmd   *exec.Cmd
	url   string
	in    io.WriteCloser
	lines *bufio.Scanner
}

// startDiskFullSupervisor starts the supervisor in a user and mount
// namespace of its own. It stops, with its gateway, when its stdin closes.
func startDiskFullSupervisor(t *testing.T, env []string) *supervisor {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullRecovers$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), env...), diskFullRoleEnv+"=supervisor")
	cmd.Stderr = testWriter{t}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "this test needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) to mount a small tmpfs")
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	s := &supervisor{cmd: cmd, in: in, lines: bufio.NewScanner(out)}
	for _, kv := range env {
		if addr, ok := strings.CutPrefix(kv, "AGENTRY_ADDR="); ok {
			s.url = "http://" + addr
		}
	}
	s.expect(t, "started")
	return s
}

// do sends a command and waits for its "ok".
func (s *supervisor) do(t *testing.T, cmd string) {
	t.Helper()
	_, err := fmt.Fprintln(s.in, cmd)
	require.NoError(t, err)
	s.expect(t, "ok")
}

func (s *supervisor) expect(t *testing.T, want string) {
	t.Helper()
	require.True(t, s.lines.Scan(), "the supervisor ended before %q: %v", want, s.lines.Err())
	require.Equal(t, want, s.lines.Text())
}

func (s *supervisor) waitReady(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "gateway on the small file system did not become ready")
}

// superviseFullDisk is the supervisor: it mounts the tmpfs over the data
// directory, writes the ballast, starts the gateway and obeys the parent.
func superviseFullDisk(t *testing.T) {
	cfg, err := config.FromEnv(os.Getenv)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(cfg.DataDir, 0o700))
	require.NoError(t, syscall.Mount("tmpfs", cfg.DataDir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", fsSize)),
		"mount a tmpfs in the test's own namespace")
	ballast := filepath.Join(cfg.DataDir, "ballast")
	require.NoError(t, os.WriteFile(ballast, make([]byte, ballastSize), 0o600))
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullRecovers$", "-test.count=1")
		cmd.Env = append(os.Environ(), diskFullRoleEnv+"=gateway")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		_, err := cmd.StdinPipe() // closed when this process ends
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		return cmd
	}
	gateway := start()
	defer func() {
		_ = gateway.Process.Kill()
		_ = gateway.Wait()
	}()
	fmt.Println("started")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "free":
			require.NoError(t, os.Remove(ballast))
		case "kill":
			require.NoError(t, gateway.Process.Signal(syscall.SIGKILL))
			_ = gateway.Wait()
		case "start":
			gateway = start()
		default:
			t.Fatalf("unknown command %q", in.Text())
		}
		fmt.Println("ok")
	}
}

// runDiskFullGateway serves the local gateway until its stdin closes.
func runDiskFullGateway(t *testing.T) {
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

// probe answers the status of a GET.
func probe(t *testing.T, url string) int {
	t.Helper()
	status, _ := callRaw(t, "GET", url, "", nil)
	return status
}
