package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/boltimport"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// storeEnv is the configuration of the gateways of the store tests, set in
// the environment so that `agentry store …` reads the same data dir.
func storeEnv(t *testing.T, dataDir string) {
	t.Setenv("AGENTRY_DOMAIN", "cli.test")
	t.Setenv("AGENTRY_DATA_DIR", dataDir)
	t.Setenv("AGENTRY_ADMIN_KEY", testAdmin)
	t.Setenv("AGENTRY_DNS_SERVER", "127.0.0.1:1")
	t.Setenv("AGENTRY_STORE_ENGINE", localgw.EnginePebble)
}

// serveOn runs a gateway on the environment's data dir until stop.
func serveOn(t *testing.T) (url string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg, err := config.FromEnv(nil)
	require.NoError(t, err)
	g, err := localgw.New(cfg, localgw.Options{Listener: l})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
		}
	}
	t.Cleanup(stop)
	require.Eventually(t, func() bool { return localgw.Running(t.Context(), cfg.DataDir) }, 10*time.Second, 10*time.Millisecond)
	return "http://" + l.Addr().String(), stop
}

func apiCall(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestStoreBackupOfARunningGatewayRestores: `agentry store backup` copies
// the store of a gateway while it serves; `agentry store restore` puts the
// copy under another data dir, whose gateway then has every message.
func TestStoreBackupOfARunningGatewayRestores(t *testing.T) {
	original := t.TempDir()
	storeEnv(t, original)
	url, stop := serveOn(t)
	status, reg := apiCall(t, "POST", url+"/v1/admin/agents", testAdmin, `{"address":"ann","delivery_mode":"pull"}`)
	require.Equal(t, http.StatusCreated, status, "%v", reg)
	key := reg["api_key"].(string)
	var ids []string
	for i := range 30 {
		status, out := apiCall(t, "POST", url+"/v1/messages", key,
			fmt.Sprintf(`{"sender":"ann@cli.test","recipients":["ann@cli.test"],"subject":"s","payload":{"n":%d}}`, i))
		require.Equal(t, http.StatusAccepted, status, "%v", out)
		ids = append(ids, out["message_id"].(string))
	}

	code, _, errs := runCLI(t, "store", "check")
	assert.Equal(t, 1, code, "no check under a running gateway")
	assert.Contains(t, errs, "stop it first")
	backup := filepath.Join(t.TempDir(), "backup")
	code, out, errs := runCLI(t, "store", "backup", backup)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "backup written to "+backup)
	stop()

	restored := t.TempDir()
	storeEnv(t, restored)
	code, out, errs = runCLI(t, "store", "restore", backup)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "store restored")
	code, out, errs = runCLI(t, "store", "check")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "no damage found")

	url, _ = serveOn(t)
	for _, id := range ids {
		status, out := apiCall(t, "GET", url+"/v1/messages/"+id, key, "")
		assert.Equal(t, http.StatusOK, status, "message %s: %v", id, out)
	}
}

// TestStoreCommandsLeaveABboltDataDirAlone: the store commands refuse a
// data directory of the earlier bbolt engine that no gateway has imported
// yet, instead of importing it (possibly under an earlier gateway still
// running on it).
func TestStoreCommandsLeaveABboltDataDirAlone(t *testing.T) {
	dir := t.TempDir()
	storeEnv(t, dir)
	// A data directory the earlier engine wrote (boltimport's fixture).
	for _, name := range []string{boltimport.FileName, boltimport.WALFileName} {
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "adapter", "boltimport", "testdata", "v1", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	for _, args := range [][]string{{"store", "check"}, {"store", "backup", filepath.Join(t.TempDir(), "b")}} {
		code, _, errs := runCLI(t, args...)
		assert.Equal(t, 1, code, "%v", args)
		assert.Contains(t, errs, "bbolt engine's files, not imported yet", "%v", args)
	}
	assert.FileExists(t, filepath.Join(dir, boltimport.FileName), "left as it was")
	assert.NoDirExists(t, filepath.Join(dir, "store"), "nothing imported")

	// agentry serve imports it, the messages only the redo log held
	// included, and the store commands then work on the Pebble store.
	url, stop := serveOn(t)
	for _, id := range []string{"019ad3c4-5e00-7000-8000-000000000001", "019ad3c4-5e00-7000-8000-000000000013"} {
		status, out := apiCall(t, "GET", url+"/v1/messages/"+id, testAdmin, "")
		assert.Equal(t, http.StatusOK, status, "message %s: %v", id, out)
	}
	stop()
	assert.FileExists(t, filepath.Join(dir, boltimport.FileName+".pre-pebble"), "kept under another name")
	code, out, errs := runCLI(t, "store", "check")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "no damage found")
}
