package signing_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/signing"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/gateway"
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
	s1, notice, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.Contains(t, notice, "generated an ES256 signing key")
	assert.Equal(t, "k1", s1.KeyID(), "the draft's selector-only keyid, default k1")
	assert.Equal(t, signature.ES256, s1.Algorithm(), "ES256 by default")
	st, err := os.Stat(filepath.Join(cfg.DataDir, signing.KeyFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	s2, notice, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.Empty(t, notice, "the stored key is reused")
	assert.Equal(t, s1.Public(), s2.Public())
}

// A data dir from before the profile holds an Ed25519 key: it is never
// used again, a new ES256 key takes its place, and the operator is told
// which record to publish.
func TestLoadLocalReplacesAnEd25519Key(t *testing.T) {
	cfg := testConfig(t, nil)
	_, old, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(old)
	require.NoError(t, err)
	path := filepath.Join(cfg.DataDir, signing.KeyFileName)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))

	s, notice, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.Equal(t, signature.ES256, s.Algorithm())
	assert.Contains(t, notice, "Ed25519")
	assert.Contains(t, notice, "selector k1")
	kept, err := os.ReadFile(path + ".retired")
	require.NoError(t, err, "the old key is kept aside")
	assert.Contains(t, string(kept), "PRIVATE KEY")

	again, notice, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.Empty(t, notice)
	assert.Equal(t, s.Public(), again.Public(), "the replacement is what later starts use")

	// A configured key of the old kind is refused, not silently replaced.
	cfg = testConfig(t, map[string]string{"AGENTRY_SIGNING_KEY": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	_, _, err = signing.LoadLocal(cfg)
	assert.Error(t, err)
}

func TestConfiguredKeyWins(t *testing.T) {
	key, err := signature.GenerateKey(signature.ES256)
	require.NoError(t, err)
	pemData, err := signature.EncodePrivateKeyPEM(key)
	require.NoError(t, err)
	cfg := testConfig(t, map[string]string{"AGENTRY_SIGNING_KEY": string(pemData), "AGENTRY_SIGNING_SELECTOR": "k2"})
	s, notice, err := signing.LoadLocal(cfg)
	require.NoError(t, err)
	assert.Empty(t, notice)
	assert.Equal(t, "k2", s.KeyID())
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

func TestInboundPolicies(t *testing.T) {
	key, err := signature.GenerateKey(signature.ES256)
	require.NoError(t, err)
	signer, err := signature.NewSigner("a.test", "k1", key)
	require.NoError(t, err)
	raw := fmt.Appendf(nil, `{"version":"1.0","message_id":"%s","idempotency_key":"k","timestamp":%q,"sender":"alice@a.test","recipients":["bob@b.test"],"payload":{}}`,
		amtp.NewUUIDv7(), time.Now().UTC().Format(time.RFC3339))
	signed, err := signer.Sign(raw)
	require.NoError(t, err)
	forged := append(signed[:len(signed)-1:len(signed)-1], []byte(`,"x":1}`)...)

	published := keysFunc(func(string, string) (crypto.PublicKey, error) { return key.Public(), nil })
	absent := keysFunc(func(string, string) (crypto.PublicKey, error) { return nil, signature.ErrKeyNotFound })
	dnsDown := keysFunc(func(string, string) (crypto.PublicKey, error) { return nil, errors.New("i/o timeout") })

	tests := []struct {
		name     string
		policy   string
		keys     signature.KeyResolver
		body     []byte
		result   gateway.VerificationResult
		wantCode string // "": accepted
	}{
		{"verified", config.SignatureReject, published, signed, gateway.VerifiedSignature, ""},
		{"unsigned, flag", config.SignatureFlag, published, raw, gateway.Unsigned, ""},
		{"unsigned, accept", config.SignatureAccept, published, raw, gateway.Unsigned, ""},
		{"unsigned, reject", config.SignatureReject, published, raw, gateway.Unsigned, "SIGNATURE_REQUIRED"},
		{"forged, flag", config.SignatureFlag, published, forged, gateway.InvalidSignature, ""},
		{"forged, default policy is flag", "", published, forged, gateway.InvalidSignature, ""},
		{"forged, reject", config.SignatureReject, published, forged, gateway.InvalidSignature, "SIGNATURE_INVALID"},
		{"no key record, flag", config.SignatureFlag, absent, signed, gateway.KeyUnavailable, ""},
		{"no key record, reject", config.SignatureReject, absent, signed, gateway.KeyUnavailable, "SIGNATURE_KEY_UNAVAILABLE"},
		{"DNS down, reject", config.SignatureReject, dnsDown, signed, gateway.KeyUnavailable, "SIGNATURE_KEY_UNAVAILABLE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var flagged []gateway.VerificationResult
			in := &signing.Inbound{Verifier: &signature.Verifier{Keys: tc.keys}, Policy: tc.policy,
				Flagged: func(_ context.Context, r gateway.VerificationResult) { flagged = append(flagged, r) }}
			sv, err := in.VerifyInbound(context.Background(), tc.body)
			assert.Equal(t, tc.result, sv.Result)
			assert.Equal(t, "a.test", sv.Domain)
			if tc.result != gateway.Unsigned {
				assert.Equal(t, "k1", sv.KeyID)
				assert.Equal(t, "ES256", sv.Algorithm)
				assert.Equal(t, gateway.MethodDomainSignature, sv.Method)
			}
			if tc.wantCode == "" {
				require.NoError(t, err)
				if tc.result != gateway.VerifiedSignature && (tc.policy == config.SignatureFlag || tc.policy == "") {
					assert.Equal(t, []gateway.VerificationResult{tc.result}, flagged, "flag counts what it lets through")
				} else {
					assert.Empty(t, flagged)
				}
				return
			}
			var ae *amtp.Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.wantCode, string(ae.Code))
			assert.Equal(t, string(tc.result), ae.Details["result"])
			assert.NotContains(t, err.Error(), "i/o timeout", "DNS details stay in the log")
		})
	}
}

func TestZoneTXTSplitsLongRecords(t *testing.T) {
	assert.Equal(t, `"abc"`, signing.ZoneTXT("abc"))
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	assert.Equal(t, `"`+string(long[:255])+`" "`+string(long[255:])+`"`, signing.ZoneTXT(string(long)))
}

// TestLoadLocalFailures: a key LoadLocal cannot read, parse or store is an
// error naming what went wrong, and what is on disk is never overwritten
// or replaced by a new key behind the operator's back.
func TestLoadLocalFailures(t *testing.T) {
	ed25519PEM := func(t *testing.T) []byte {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name string
		// prepare sets up the data dir (cfg.DataDir exists) and may adjust
		// the configuration.
		prepare func(t *testing.T, cfg *config.Config, keyPath string)
		want    string
		// kept is what must still be at keyPath afterwards (nil: not checked).
		kept []byte
	}{
		{name: "configured key file missing", want: "read AGENTRY_SIGNING_KEY_FILE",
			prepare: func(t *testing.T, cfg *config.Config, _ string) {
				cfg.SigningKeyFile = filepath.Join(cfg.DataDir, "absent.pem")
			}},
		{name: "stored key is not PEM", want: "signing key ", kept: []byte("not a key\n"),
			prepare: func(t *testing.T, _ *config.Config, keyPath string) {
				require.NoError(t, os.WriteFile(keyPath, []byte("not a key\n"), 0o600))
			}},
		{name: "stored key is a PEM block of garbage", want: "signing key ",
			kept: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}),
			prepare: func(t *testing.T, _ *config.Config, keyPath string) {
				require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}), 0o600))
			}},
		{name: "stored key unreadable", want: "read signing key",
			prepare: func(t *testing.T, _ *config.Config, keyPath string) {
				require.NoError(t, os.Mkdir(keyPath, 0o700))
			}},
		// The data dir is a link to a volume that is not there.
		{name: "data dir cannot be created", want: "create data dir",
			prepare: func(t *testing.T, cfg *config.Config, _ string) {
				link := filepath.Join(cfg.DataDir, "data")
				require.NoError(t, os.Symlink(filepath.Join(cfg.DataDir, "unmounted", "data"), link))
				cfg.DataDir = link
			}},
		// A dangling symlink is not followed: the key is created where the
		// operator sees it, or not at all.
		{name: "key path is a dangling symlink", want: "store signing key",
			prepare: func(t *testing.T, cfg *config.Config, keyPath string) {
				require.NoError(t, os.Symlink(filepath.Join(cfg.DataDir, "elsewhere.pem"), keyPath))
				t.Cleanup(func() {
					_, err := os.Lstat(filepath.Join(cfg.DataDir, "elsewhere.pem"))
					assert.ErrorIs(t, err, os.ErrNotExist, "nothing written through the link")
				})
			}},
		{name: "Ed25519 key that cannot be retired", want: "retire signing key",
			prepare: func(t *testing.T, _ *config.Config, keyPath string) {
				data := ed25519PEM(t)
				require.NoError(t, os.WriteFile(keyPath, data, 0o600))
				// A non-empty directory where the retired key would go.
				require.NoError(t, os.MkdirAll(filepath.Join(keyPath+".retired", "x"), 0o700))
			}},
		{name: "configured key with a selector that is not a DNS label", want: "signing key",
			prepare: func(t *testing.T, cfg *config.Config, _ string) {
				key, err := signature.GenerateKey(signature.ES256)
				require.NoError(t, err)
				pemData, err := signature.EncodePrivateKeyPEM(key)
				require.NoError(t, err)
				cfg.SigningKey, cfg.SigningSelector = string(pemData), "Not_A_Label"
			}},
		{name: "replacement for an Ed25519 key with a selector that is not a DNS label", want: "signing key",
			prepare: func(t *testing.T, cfg *config.Config, keyPath string) {
				require.NoError(t, os.WriteFile(keyPath, ed25519PEM(t), 0o600))
				cfg.SigningSelector = "Not_A_Label"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, nil)
			keyPath := filepath.Join(cfg.DataDir, signing.KeyFileName)
			tc.prepare(t, &cfg, keyPath)
			s, notice, err := signing.LoadLocal(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, s)
			assert.Empty(t, notice)
			if tc.kept != nil {
				data, err := os.ReadFile(keyPath)
				require.NoError(t, err)
				assert.Equal(t, tc.kept, data, "the stored key is left as it was")
			}
		})
	}
}

// A key file named by AGENTRY_SIGNING_KEY_FILE is used as it is.
func TestConfiguredKeyFile(t *testing.T) {
	key, err := signature.GenerateKey(signature.RS256)
	require.NoError(t, err)
	pemData, err := signature.EncodePrivateKeyPEM(key)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(file, pemData, 0o600))
	cfg := testConfig(t, map[string]string{"AGENTRY_SIGNING_KEY_FILE": file})
	s, err := signing.Configured(cfg)
	require.NoError(t, err)
	assert.Equal(t, key.Public(), s.Public())
	assert.Equal(t, signature.RS256, s.Algorithm())
	assert.Equal(t, cfg.MaxMessageBytes, s.MaxBytes, "whole messages up to the accepted size are signed")
	txt, err := signature.PublicKeyTXT(key.Public())
	require.NoError(t, err)
	rec, err := signing.KeyRecord(s)
	require.NoError(t, err)
	assert.Equal(t, "k1._amtpkey.a.test. 300 IN TXT "+signing.ZoneTXT(txt), rec)
	assert.Contains(t, rec, `" "`, "an RSA record is split into 255-byte strings")

	none, err := signing.Configured(testConfig(t, nil))
	require.NoError(t, err)
	assert.Nil(t, none, "no key configured: none, and none generated")
}

// TestMessageSigners: the fixed and the lazily loaded signer sign what the
// worker forwards; a lazy key that fails to load fails the signature and
// is loaded again at the next one, and once loaded it is kept.
func TestMessageSigners(t *testing.T) {
	key, err := signature.GenerateKey(signature.ES256)
	require.NoError(t, err)
	s, err := signature.NewSigner("a.test", "k1", key)
	require.NoError(t, err)
	raw := fmt.Appendf(nil, `{"version":"1.0","message_id":"%s","idempotency_key":"k","timestamp":%q,"sender":"alice@a.test","recipients":["bob@b.test"],"payload":{}}`,
		amtp.NewUUIDv7(), time.Now().UTC().Format(time.RFC3339))
	v := &signature.Verifier{Keys: keysFunc(func(d, sel string) (crypto.PublicKey, error) {
		if d != "a.test" || sel != "k1" {
			return nil, signature.ErrKeyNotFound
		}
		return key.Public(), nil
	})}
	ctx := context.Background()

	signed, err := signing.Signer{S: s}.SignMessage(ctx, raw)
	require.NoError(t, err)
	_, err = v.Verify(ctx, signed)
	require.NoError(t, err, "the fixed signer's signature verifies")

	loads := 0
	lazy := &signing.Lazy{Load: func(context.Context) (*signature.Signer, error) {
		loads++
		if loads == 1 {
			return nil, errors.New("secrets manager unreachable")
		}
		return s, nil
	}}
	_, err = lazy.SignMessage(ctx, raw)
	require.ErrorContains(t, err, "load signing key")
	assert.ErrorContains(t, err, "secrets manager unreachable")
	for range 2 {
		signed, err = lazy.SignMessage(ctx, raw)
		require.NoError(t, err)
		_, err = v.Verify(ctx, signed)
		require.NoError(t, err)
	}
	assert.Equal(t, 2, loads, "a failed load is retried; a loaded key is kept")

	_, err = lazy.SignMessage(ctx, []byte(`{"sender":"mallory@elsewhere.test"}`))
	assert.ErrorIs(t, err, signature.ErrKeyDomain, "the loaded signer's own checks apply")
}
