package localgw

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/runtime/config"
)

// testConfig is a valid configuration on a fresh data dir, with env on top.
func testConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	vars := map[string]string{
		"AGENTRY_DOMAIN": "local.test", "AGENTRY_ADDR": "127.0.0.1:0",
		"AGENTRY_DATA_DIR": filepath.Join(t.TempDir(), "data"), "AGENTRY_DNS_SERVER": "127.0.0.1:1",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	return cfg
}

// requireStoreReleased fails unless the data dir's store can be opened,
// i.e. nothing in this process still holds it.
func requireStoreReleased(t *testing.T, dir string) {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: dir})
	require.NoError(t, err, "the store is released")
	require.NoError(t, db.Close())
}

// TestNewFailures: a configuration that cannot be started is refused by
// New with the reason, and a store New opened on the way is closed again.
func TestNewFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		prepare func(t *testing.T, cfg *config.Config)
		want    string
		opened  bool // the store was opened before the failure
	}{
		{name: "signing key file missing", env: map[string]string{"AGENTRY_SIGNING_KEY_FILE": "/nonexistent/signing.pem"},
			want: "AGENTRY_SIGNING_KEY_FILE"},
		{name: "data dir cannot be created", want: "create data dir",
			prepare: func(t *testing.T, cfg *config.Config) {
				// A link to a volume that is not mounted.
				link := filepath.Join(t.TempDir(), "data")
				require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "unmounted", "data"), link))
				cfg.DataDir = link
			}},
		{name: "admin key unreadable", want: "admin.key",
			prepare: func(t *testing.T, cfg *config.Config) {
				require.NoError(t, os.MkdirAll(filepath.Join(cfg.DataDir, "admin.key"), 0o700))
			}},
		{name: "admin key cannot be stored", want: "store admin key",
			prepare: func(t *testing.T, cfg *config.Config) {
				require.NoError(t, os.MkdirAll(cfg.DataDir, 0o700))
				require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "gone", "admin.key"), filepath.Join(cfg.DataDir, "admin.key")))
			}},
		{name: "store cannot be opened", want: "open data dir",
			prepare: func(t *testing.T, cfg *config.Config) {
				// A file where the store's directory goes.
				require.NoError(t, os.MkdirAll(cfg.DataDir, 0o700))
				require.NoError(t, os.WriteFile(filepath.Join(cfg.DataDir, pebblestore.StoreDir), nil, 0o600))
			}},
		{name: "DNS server without a port", env: map[string]string{"AGENTRY_DNS_SERVER": "127.0.0.1"},
			want: "dns resolver", opened: true},
		{name: "client certificate missing", env: map[string]string{"AGENTRY_TLS_CLIENT_CERT": "/nonexistent/c.pem", "AGENTRY_TLS_CLIENT_KEY": "/nonexistent/k.pem"},
			want: "AGENTRY_TLS_CLIENT_CERT", opened: true},
		{name: "OAuth issuer not a URL", env: map[string]string{"AGENTRY_OAUTH_ISSUER": "id.example.com", "AGENTRY_OAUTH_AUDIENCE": "https://local.test/amtp"},
			want: "oauth", opened: true},
		{name: "domain not a DNS name", want: "domain",
			prepare: func(t *testing.T, cfg *config.Config) { cfg.Domain = "not a domain" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.env)
			if tc.prepare != nil {
				tc.prepare(t, &cfg)
			}
			g, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
			require.Error(t, err)
			assert.Nil(t, g)
			assert.Contains(t, err.Error(), tc.want)
			if tc.opened {
				requireStoreReleased(t, cfg.DataDir)
			}
		})
	}
}

// A configured admin key is used as it is: none is generated or stored.
func TestConfiguredAdminKey(t *testing.T) {
	const key = "configured-admin-key-0123456789"
	cfg := testConfig(t, map[string]string{"AGENTRY_ADMIN_KEY": key})
	g, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	assert.False(t, g.AdminKeyGenerated)
	assert.Equal(t, key, g.Config.AdminKey)
	_, err = os.Stat(filepath.Join(cfg.DataDir, "admin.key"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the configured key is not written to disk")
}

// Deprecated settings still work, and each start says what replaces them.
func TestNewWarnsOfDeprecations(t *testing.T) {
	cfg := testConfig(t, map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "1"})
	require.NotEmpty(t, cfg.Deprecations)
	var logs bytes.Buffer
	g, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "AGENTRY_SIGNATURE_POLICY=reject")
}

// schemas is nil itself when validation is off: a nil *schema.Registry in
// the interface would look like a registry to the core.
func TestSchemasOffIsNil(t *testing.T) {
	cfg := testConfig(t, map[string]string{"AGENTRY_SCHEMA_VALIDATION": "0"})
	assert.True(t, schemas(cfg, nil) == nil, "a nil interface, not a typed nil")
	cfg.SchemaValidation = true
	assert.NotNil(t, schemas(cfg, nil))
}

// TestListenAndServeFailures: an address in use is reported by Listen and
// by Serve, and Serve releases the store however it ends.
func TestListenAndServeFailures(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = taken.Close() })

	cfg := testConfig(t, map[string]string{"AGENTRY_ADDR": taken.Addr().String()})
	g, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	assert.Equal(t, taken.Addr().String(), g.Addr(), "before Listen: the configured address")
	err = g.Listen()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen on "+taken.Addr().String())

	err = g.Serve(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen on")
	requireStoreReleased(t, cfg.DataDir)
}

// TestRunServerFailures: a certificate that cannot be loaded stops
// RunServer before it serves; a listener that fails stops it too, and its
// background loops are stopped and waited for before it returns.
func TestRunServerFailures(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("certificate", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		cfg := testConfig(t, nil)
		cfg.TLSCert, cfg.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem"
		ran := false
		err = RunServer(context.Background(), cfg, l, http.NotFoundHandler(), log, func(context.Context) { ran = true })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "TLS certificate")
		assert.False(t, ran, "nothing runs without the listener")
	})
	t.Run("listener", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		require.NoError(t, l.Close())
		var stopped atomic.Bool
		started := make(chan struct{})
		err = RunServer(context.Background(), testConfig(t, nil), l, http.NotFoundHandler(), log, func(ctx context.Context) {
			close(started)
			<-ctx.Done()
			stopped.Store(true)
		})
		require.Error(t, err)
		assert.True(t, errors.Is(err, net.ErrClosed), "%v", err)
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the background loop never ran")
		}
		assert.True(t, stopped.Load(), "the loop was stopped and waited for")
	})
}
