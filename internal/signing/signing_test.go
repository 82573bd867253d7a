package signing_test

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/amtp"
	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/signature"
	"github.com/agentry/agentry/internal/signing"
)

func testConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	base := map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_DATA_DIR": t.TempDir()}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.FromEnv(func(k string) string { return base[k] })
	require.NoError(t, err)
	return cfg
}

func TestLoadLocalGeneratesOnceAndReuses(t *testing.T) {
	cfg := testConfig(t, nil)
	s1, generated, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.True(t, generated)
	assert.Equal(t, "a.test:agentry", s1.KeyID())
	assert.Equal(t, signature.EdDSA, s1.Algorithm())
	st, err := os.Stat(filepath.Join(cfg.DataDir, signing.KeyFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	s2, generated, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.False(t, generated, "the stored key is reused")
	assert.Equal(t, s1.Public(), s2.Public())
}

func TestConfiguredKeyWins(t *testing.T) {
	key, err := signature.GenerateKey(signature.ES256)
	require.NoError(t, err)
	pemData, err := signature.EncodePrivateKeyPEM(key)
	require.NoError(t, err)
	cfg := testConfig(t, map[string]string{"AGENTRY_SIGNING_KEY": string(pemData), "AGENTRY_SIGNING_SELECTOR": "k2"})
	s, generated, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.False(t, generated)
	assert.Equal(t, "a.test:k2", s.KeyID())
	assert.Equal(t, key.Public(), s.Public())
	_, err = os.Stat(filepath.Join(cfg.DataDir, signing.KeyFileName))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing generated when a key is configured")

	_, err = config.FromEnv(func(k string) string {
		return map[string]string{"AGENTRY_SIGNING_KEY": "x", "AGENTRY_SIGNING_KEY_FILE": "y"}[k]
	})
	assert.ErrorContains(t, err, "only one of")
}

// keysFunc is a KeyResolver from a function.
type keysFunc func(domain, selector string) (crypto.PublicKey, error)

func (f keysFunc) PublicKey(_ context.Context, d, s string) (crypto.PublicKey, error) { return f(d, s) }

func TestInboundMapsErrors(t *testing.T) {
	key, err := signature.GenerateKey(signature.EdDSA)
	require.NoError(t, err)
	signer, err := signature.NewSigner("a.test", "agentry", key)
	require.NoError(t, err)
	raw := []byte(`{"version":"1.0","sender":"alice@a.test","recipients":["bob@b.test"],"payload":{}}`)
	signed, err := signer.Sign(raw)
	require.NoError(t, err)

	published := keysFunc(func(string, string) (crypto.PublicKey, error) { return key.Public(), nil })
	dnsDown := keysFunc(func(string, string) (crypto.PublicKey, error) { return nil, errors.New("i/o timeout") })
	status := func(err error) int {
		var ae *amtp.Error
		require.ErrorAs(t, err, &ae)
		return ae.HTTPStatus()
	}

	in := &signing.Inbound{Verifier: &signature.Verifier{Keys: published}, Require: true}
	assert.NoError(t, in.VerifyInbound(context.Background(), signed))
	err = in.VerifyInbound(context.Background(), raw)
	assert.Equal(t, http.StatusUnauthorized, status(err))
	assert.ErrorContains(t, err, "must be signed")
	err = in.VerifyInbound(context.Background(), append(signed[:len(signed)-1:len(signed)-1], []byte(`,"x":1}`)...))
	assert.Equal(t, http.StatusUnauthorized, status(err))

	in.Require = false
	assert.NoError(t, in.VerifyInbound(context.Background(), raw), "unsigned accepted when not required")

	in.Verifier.Keys = dnsDown
	err = in.VerifyInbound(context.Background(), signed)
	assert.Equal(t, http.StatusServiceUnavailable, status(err))
	assert.NotContains(t, err.Error(), "i/o timeout", "DNS details stay in the log")
}

func TestZoneTXTSplitsLongRecords(t *testing.T) {
	assert.Equal(t, `"abc"`, signing.ZoneTXT("abc"))
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	assert.Equal(t, `"`+string(long[:255])+`" "`+string(long[255:])+`"`, signing.ZoneTXT(string(long)))
}
