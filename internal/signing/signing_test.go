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
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/amtp"
	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/gateway"
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
		name       string
		policy     string
		keys       signature.KeyResolver
		body       []byte
		result     gateway.VerificationResult
		wantStatus int    // 0: accepted
		wantCode   string // when refused
	}{
		{"verified", config.SignatureReject, published, signed, gateway.VerifiedSignature, 0, ""},
		{"unsigned, flag", config.SignatureFlag, published, raw, gateway.Unsigned, 0, ""},
		{"unsigned, accept", config.SignatureAccept, published, raw, gateway.Unsigned, 0, ""},
		{"unsigned, reject", config.SignatureReject, published, raw, gateway.Unsigned, http.StatusForbidden, "SIGNATURE_REQUIRED"},
		{"forged, flag", config.SignatureFlag, published, forged, gateway.InvalidSignature, 0, ""},
		{"forged, default policy is flag", "", published, forged, gateway.InvalidSignature, 0, ""},
		{"forged, reject", config.SignatureReject, published, forged, gateway.InvalidSignature, http.StatusForbidden, "SIGNATURE_INVALID"},
		{"no key record, flag", config.SignatureFlag, absent, signed, gateway.KeyUnavailable, 0, ""},
		{"no key record, reject", config.SignatureReject, absent, signed, gateway.KeyUnavailable, http.StatusServiceUnavailable, "SIGNATURE_KEY_UNAVAILABLE"},
		{"DNS down, reject", config.SignatureReject, dnsDown, signed, gateway.KeyUnavailable, http.StatusServiceUnavailable, "SIGNATURE_KEY_UNAVAILABLE"},
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
			if tc.wantStatus == 0 {
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
			assert.Equal(t, tc.wantStatus, ae.HTTPStatus())
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
