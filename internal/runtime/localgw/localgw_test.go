package localgw

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/runtime/config"
)

// selfSigned writes a throwaway certificate for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agentry test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServesTLS13OnlyAndStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	env := map[string]string{
		"AGENTRY_DOMAIN": "tls.test", "AGENTRY_ADDR": "127.0.0.1:0", "AGENTRY_DATA_DIR": filepath.Join(dir, "data"),
		"AGENTRY_TLS_CERT": certFile, "AGENTRY_TLS_KEY": keyFile, "AGENTRY_DNS_SERVER": "127.0.0.1:1",
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(cfg.PublicURL, "https://"))
	g, err := New(cfg, Options{})
	require.NoError(t, err)
	require.True(t, g.AdminKeyGenerated, "no AGENTRY_ADMIN_KEY: one is generated")
	stored, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin.key"))
	require.NoError(t, err)
	assert.Equal(t, g.Config.AdminKey, strings.TrimSpace(string(stored)))
	fi, err := os.Stat(filepath.Join(cfg.DataDir, "admin.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, g.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	url := "https://" + g.Addr() + "/healthz"

	tls13 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	require.Eventually(t, func() bool {
		resp, err := tls13.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)

	// The generated admin key is the one the admin API accepts.
	req, err := http.NewRequest("GET", "https://"+g.Addr()+"/v1/admin/agents", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(stored)))
	resp, err := tls13.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the generated admin key authenticates")
	tls12 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}}}
	resp12, err := tls12.Get(url)
	if !assert.Error(t, err, "TLS 1.2 is refused") {
		_ = resp12.Body.Close()
	}

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("no graceful stop")
	}

	// The generated key is reused on the next start, not regenerated.
	g2, err := New(cfg, Options{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, g2.Close()) }()
	assert.False(t, g2.AdminKeyGenerated)
	assert.Equal(t, g.Config.AdminKey, g2.Config.AdminKey)
}

func TestShortAdminKeyRefused(t *testing.T) {
	cfg, err := config.FromEnv(func(k string) string {
		return map[string]string{"AGENTRY_DATA_DIR": t.TempDir(), "AGENTRY_ADMIN_KEY": "short"}[k]
	})
	require.NoError(t, err)
	_, err = New(cfg, Options{})
	assert.Error(t, err)
}
