package coverbin_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/coverbin"
)

func TestBuildFlags(t *testing.T) {
	mode := testing.CoverMode()
	if mode == "" {
		mode = "set"
	}
	for _, tc := range []struct {
		name, dir string
		want      []string
	}{
		{"not measuring: a plain build", "", nil},
		{"measuring: instrument every package of the module", t.TempDir(),
			[]string{"-cover", "-covermode=" + mode, "-coverpkg=github.com/agentry/agentry/..."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(coverbin.DirEnv, tc.dir)
			assert.Equal(t, tc.want, coverbin.BuildFlags())
		})
	}
}

func TestEnv(t *testing.T) {
	t.Run("not measuring: nothing added", func(t *testing.T) {
		t.Setenv(coverbin.DirEnv, "")
		assert.Nil(t, coverbin.Env(t, "e2e"))
	})
	t.Run("measuring: GOCOVERDIR is a created subdirectory", func(t *testing.T) {
		root := t.TempDir()
		t.Setenv(coverbin.DirEnv, root)
		want := filepath.Join(root, "e2e")
		assert.Equal(t, []string{"GOCOVERDIR=" + want}, coverbin.Env(t, "e2e"))
		assert.DirExists(t, want)
	})
}

// startSleeper runs a process that ends on SIGTERM, as the binaries do.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd
}

func TestDrain(t *testing.T) {
	t.Run("not measuring: the process is not asked to end", func(t *testing.T) {
		t.Setenv(coverbin.DirEnv, "")
		cmd := startSleeper(t)
		asked := false
		assert.False(t, coverbin.Drain(cmd.Process, func() error { asked = true; return nil }, time.Minute))
		assert.False(t, asked)
		require.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "the process is still running")
	})
	t.Run("measuring: asked to end and waited for", func(t *testing.T) {
		t.Setenv(coverbin.DirEnv, t.TempDir())
		cmd := startSleeper(t)
		assert.True(t, coverbin.Drain(cmd.Process, func() error { return cmd.Process.Signal(os.Interrupt) }, time.Minute))
		assert.ErrorIs(t, cmd.Process.Signal(os.Interrupt), os.ErrProcessDone)
	})
	t.Run("measuring: a process that cannot be asked is not waited for", func(t *testing.T) {
		t.Setenv(coverbin.DirEnv, t.TempDir())
		cmd := startSleeper(t)
		assert.False(t, coverbin.Drain(cmd.Process, func() error { return errors.New("gone") }, time.Minute))
		require.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "the process is still running")
	})
}
