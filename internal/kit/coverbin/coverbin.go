// Package coverbin is the test kit that lets `make cover` count the
// statements run by the binaries tests build and start as subprocesses
// (cmd/agentry in internal/kit/e2e, the Lambda bootstraps in functions/): Go's
// integration coverage. A test builds with BuildFlags, adds Env to the
// child's environment and stops it through Drain; all three do nothing
// unless DirEnv is set, so `make test` builds and runs exactly as before.
package coverbin

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// DirEnv names the directory (absolute) under which instrumented binaries
// write their coverage data; only `make cover` sets it.
const DirEnv = "AGENTRY_COVER_DIR"

// Enabled reports whether this test run measures the binaries' coverage.
func Enabled() bool { return os.Getenv(DirEnv) != "" }

// BuildFlags are the `go build` flags that instrument every package of the
// module, in the mode of the running test binary so that the profiles
// merge; nil when not measuring.
func BuildFlags() []string {
	if !Enabled() {
		return nil
	}
	mode := testing.CoverMode()
	if mode == "" {
		mode = "set" // go test's default without -race
	}
	return []string{"-cover", "-covermode=" + mode, "-coverpkg=github.com/agentry/agentry/..."}
}

// Env is the child's GOCOVERDIR, the subdirectory sub of DirEnv (created),
// to append last to its environment: it must override the GOCOVERDIR that
// go test gives the test binary, whose data go test reads and discards
// unless it comes from the test binary itself. Nil when not measuring.
func Env(t testing.TB, sub string) []string {
	t.Helper()
	if !Enabled() {
		return nil
	}
	dir := filepath.Join(os.Getenv(DirEnv), sub)
	require.NoError(t, os.MkdirAll(dir, 0o755), "coverage data directory")
	return []string{"GOCOVERDIR=" + dir}
}

// Drain, when measuring, asks p to end with ask and waits up to within for
// it to exit, because an instrumented binary writes its counters when it
// exits and a killed one writes none. It reports whether p ended; the
// caller then kills p as it always does, which ends one that did not.
// When not measuring it does nothing.
func Drain(p *os.Process, ask func() error, within time.Duration) bool {
	if !Enabled() || ask() != nil {
		return false
	}
	exited := make(chan struct{})
	go func() {
		_, _ = p.Wait()
		close(exited)
	}()
	select {
	case <-exited:
		return true
	case <-time.After(within):
		return false
	}
}
