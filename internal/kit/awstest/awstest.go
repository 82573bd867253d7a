// Package awstest gives tests a real AWS API to talk to: moto's server on
// loopback, reached through the real aws-sdk-go-v2 clients. It uses the
// emulator named by AGENTRY_TEST_AWS_ENDPOINT (for instance one started by
// `make emulators-up`) or starts a private moto for the test binary, which
// dies with it (so `make test` needs no manual step).
// When neither is possible the test FAILS with the reason: an integration
// test that cannot find its backend must not pass by skipping.
package awstest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// EnvEndpoint names an already running emulator to use.
const EnvEndpoint = "AGENTRY_TEST_AWS_ENDPOINT"

// Region is what every test client uses.
const Region = "us-east-1"

var (
	once     sync.Once
	endpoint string
	startErr error
	seq      atomic.Int64
)

// TB is the part of testing.TB these helpers use, so that a program that
// is not a test (the bench tool) can use them too.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

var _ TB = testing.TB(nil)

// RepoRoot finds the repository root from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Endpoint returns the emulator URL, starting moto on first use.
func Endpoint(t TB) string {
	t.Helper()
	once.Do(func() {
		if v := os.Getenv(EnvEndpoint); v != "" {
			endpoint = strings.TrimRight(v, "/")
			startErr = waitUp(endpoint, 10*time.Second)
			return
		}
		endpoint, startErr = startMoto()
	})
	if startErr != nil {
		t.Fatalf("awstest: no AWS emulator: %v\n(moto must be importable by python3; see shared/LOCAL-AWS.md and localstack/README.md)", startErr)
	}
	return endpoint
}

// motoPID is the pid of the moto process this process started, 0 when
// none runs (not started yet, or an external emulator).
var motoPID atomic.Int64

// EmulatorPID returns the pid of the moto process that Endpoint started,
// or 0 when it started none (AGENTRY_AWS_ENDPOINT names an external one).
// The bench counts its CPU time as part of the run.
func EmulatorPID() int { return int(motoPID.Load()) }

// startMoto runs the launcher and ties moto's life to this process: the
// child gets SIGKILL when the thread that started it dies, and that thread
// is parked forever, so it dies only with the test binary.
func startMoto() (string, error) {
	launcher := filepath.Join(RepoRoot(), "localstack", "moto_launcher.py")
	dir, err := os.MkdirTemp("", "agentry-moto-")
	if err != nil {
		return "", err
	}
	portFile := filepath.Join(dir, "port")
	started := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		runtime.LockOSThread() // never unlocked: keeps Pdeathsig's thread alive
		cmd := exec.Command("python3", launcher, "--host", "127.0.0.1", "--port", "0", "--port-file", portFile,
			// Step Functions executes the state machines (the coordination
			// machine of the template) instead of faking their history.
			"--sfn-execute")
		cmd.Stdout = nil
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		motoPID.Store(int64(cmd.Process.Pid))
		started <- nil
		_ = cmd.Wait()
		motoPID.Store(0)
		select {} // park this thread for the life of the process
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("start %s: %w", launcher, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(portFile); err == nil && len(b) > 0 {
			ep := "http://127.0.0.1:" + strings.TrimSpace(string(b))
			return ep, waitUp(ep, 10*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("moto did not start within 60s: %s", strings.TrimSpace(stderr.String()))
}

func waitUp(ep string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(ep + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		// LocalStack has no /moto-api; any HTTP answer means it is up.
		if resp, err2 := http.Get(ep + "/_localstack/health"); err2 == nil {
			resp.Body.Close()
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("emulator at %s not reachable: %w", ep, last)
}

// Config returns an SDK configuration pointed at the emulator with dummy
// credentials.
func Config(t TB) aws.Config {
	t.Helper()
	ep := Endpoint(t)
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(ep),
	}
}

// Env returns the standard variables that point an SDK (or a child
// process, such as a Lambda bootstrap) at the emulator.
func Env(t TB) []string {
	t.Helper()
	ep := Endpoint(t)
	return []string{
		"AWS_ENDPOINT_URL=" + ep, "AWS_REGION=" + Region, "AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
	}
}

// SnapshotPath is the dev stack as `cdk synth` writes it, committed in
// infra/testdata (`make snapshot` refreshes it; an infra test fails when
// it is stale).
func SnapshotPath() string {
	return filepath.Join(RepoRoot(), "infra", "testdata", "agentry-dev.template.json")
}

var (
	snapOnce sync.Once
	snap     *cfntemplate.Template
	snapErr  error
)

// Resources creates a fresh, uniquely named set of Agentry's resources for
// one test and returns their names and endpoints. They come from the
// synthesized CDK template itself, so tests run against the key schemas,
// GSIs, TTL, redrive policy and bucket settings that are deployed, not
// against a copy of them: the emulator's own CloudFormation creates the
// table, queues and bucket as a stack named after the test's prefix, and
// internal/kit/cfntemplate completes what moto's CloudFormation cannot (see
// its package doc).
func Resources(t TB) (awsres.Names, awsres.Endpoints) {
	t.Helper()
	snapOnce.Do(func() { snap, snapErr = cfntemplate.Load(SnapshotPath()) })
	if snapErr != nil {
		t.Fatalf("awstest: %v", snapErr)
	}
	d := Deploy(t, snap)
	return d.Names(), d.Endpoints()
}

// Deploy creates the resources of a template under a fresh prefix: the
// emulator's CloudFormation creates what it can as a stack named after
// the prefix, and cfntemplate.Complete the rest.
func Deploy(t TB, tmpl *cfntemplate.Template) *cfntemplate.Deployment {
	t.Helper()
	cfg := Config(t)
	prefix := fmt.Sprintf("t%d-%d", os.Getpid()%100000, seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	body, err := cfntemplate.StackTemplate(tmpl, prefix)
	if err != nil {
		t.Fatalf("awstest: %v", err)
	}
	stack, err := createStack(ctx, cfg, tmpl, prefix, body)
	if err != nil {
		t.Fatalf("awstest: %v", err)
	}
	d, err := cfntemplate.Complete(ctx, cfg, tmpl, cfntemplate.Options{Prefix: prefix}, stack)
	if err != nil {
		t.Fatalf("awstest: complete stack %s: %v", prefix, err)
	}
	return d
}
