package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := FromEnv(env(nil))
	require.NoError(t, err)
	assert.Equal(t, "localhost", c.Domain)
	assert.Equal(t, "127.0.0.1:8080", c.Addr)
	assert.Equal(t, "./.agentry", c.DataDir)
	assert.Equal(t, int64(10<<20), c.MaxMessageBytes)
	assert.Equal(t, 100, c.MaxRecipients)
	assert.False(t, c.AllowInsecure)
	assert.Equal(t, "http://127.0.0.1:8080", c.PublicURL)
	assert.Equal(t, time.Second, c.RetryBase)
	assert.Equal(t, time.Hour, c.RetryMax)
	assert.Equal(t, 168*time.Hour, c.RetryWindow)
}

func TestValues(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"AGENTRY_DOMAIN": "Example.COM", "AGENTRY_ALLOW_INSECURE": "1", "AGENTRY_MAX_MESSAGE_BYTES": "2048",
		"AGENTRY_TLS_CERT": "c", "AGENTRY_TLS_KEY": "k", "AGENTRY_ADDR": "0.0.0.0:443",
	}))
	require.NoError(t, err)
	assert.Equal(t, "example.com", c.Domain)
	assert.True(t, c.AllowInsecure)
	assert.Equal(t, int64(2048), c.MaxMessageBytes)
	assert.Equal(t, "https://0.0.0.0:443", c.PublicURL)
}

func TestInvalidValuesAreReportedTogether(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // each must be in the one error
	}{
		{name: "values", env: map[string]string{
			"AGENTRY_DOMAIN": "bad domain", "AGENTRY_ALLOW_INSECURE": "maybe", "AGENTRY_MAX_MESSAGE_BYTES": "-1",
			"AGENTRY_TLS_CERT": "only-cert", "AGENTRY_RETRY_BASE": "soon", "AGENTRY_LOG_LEVEL": "loud",
			"AGENTRY_MAX_INFLIGHT_BYTES": "1024", "AGENTRY_MAX_RECIPIENTS": "0", "AGENTRY_WORKERS": "many",
			"AGENTRY_AWS_BOOTSTRAP": "perhaps", "AGENTRY_SCHEMA_VALIDATION": "strict", "AGENTRY_VERIFY_ATTACHMENTS": "2",
			"AGENTRY_ATTACHMENT_MAX_BYTES": "0", "AGENTRY_SIGNING_SELECTOR": "not_a_label", "AGENTRY_REQUIRE_PEER_MTLS": "sometimes",
			"AGENTRY_TLS_CLIENT_CERT": "only-cert",
		}, want: []string{
			"AGENTRY_DOMAIN", "AGENTRY_ALLOW_INSECURE", "AGENTRY_MAX_MESSAGE_BYTES", "AGENTRY_TLS_KEY", "AGENTRY_RETRY_BASE", "AGENTRY_LOG_LEVEL",
			"AGENTRY_MAX_INFLIGHT_BYTES", "AGENTRY_MAX_RECIPIENTS", "AGENTRY_WORKERS", "AGENTRY_AWS_BOOTSTRAP", "AGENTRY_SCHEMA_VALIDATION",
			"AGENTRY_VERIFY_ATTACHMENTS", "AGENTRY_ATTACHMENT_MAX_BYTES", `AGENTRY_SIGNING_SELECTOR "not_a_label"`, "AGENTRY_REQUIRE_PEER_MTLS",
			"AGENTRY_TLS_CLIENT_CERT and AGENTRY_TLS_CLIENT_KEY must be set together",
		}},
		{name: "OAuth issuer without an audience, client CA without TLS", env: map[string]string{
			"AGENTRY_OAUTH_ISSUER": "https://id.example.com", "AGENTRY_TLS_CLIENT_CA": "ca.pem",
		}, want: []string{"AGENTRY_OAUTH_AUDIENCE is required", "AGENTRY_TLS_CLIENT_CA needs AGENTRY_TLS_CERT"}},
		{name: "OAuth audience and JWKS without an issuer", env: map[string]string{
			"AGENTRY_OAUTH_AUDIENCE": "https://a.test/amtp", "AGENTRY_OAUTH_JWKS_URL": "https://id.example.com/jwks",
		}, want: []string{"need AGENTRY_OAUTH_ISSUER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(env(tc.env))
			require.Error(t, err)
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// A client CA asks for client certificates, so peers must present one
// unless the operator says otherwise.
func TestRequirePeerMTLSDefault(t *testing.T) {
	tls := map[string]string{"AGENTRY_TLS_CERT": "c", "AGENTRY_TLS_KEY": "k"}
	c, err := FromEnv(env(tls))
	require.NoError(t, err)
	assert.False(t, c.RequirePeerMTLS, "no client CA: not required")

	tls["AGENTRY_TLS_CLIENT_CA"] = "ca.pem"
	c, err = FromEnv(env(tls))
	require.NoError(t, err)
	assert.True(t, c.RequirePeerMTLS, "a client CA: required by default")

	tls["AGENTRY_REQUIRE_PEER_MTLS"] = "0"
	c, err = FromEnv(env(tls))
	require.NoError(t, err)
	assert.False(t, c.RequirePeerMTLS, "the operator's word wins")
}

func TestAWSSettings(t *testing.T) {
	c, err := FromEnv(env(map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_BACKEND": "aws", "AGENTRY_AWS_BOOTSTRAP": "1"}))
	require.NoError(t, err)
	assert.Equal(t, "aws", c.Backend)
	assert.True(t, c.AWSBootstrap)
	assert.Equal(t, "agentry-a-test", c.ResourcePrefix)
	assert.Equal(t, "agentry-a-test-main", c.Table)
	assert.Equal(t, "agentry-a-test-bodies", c.Bucket)
	_, err = FromEnv(env(map[string]string{"AGENTRY_BACKEND": "mainframe"}))
	assert.ErrorContains(t, err, "AGENTRY_BACKEND")
	_, err = FromEnv(env(map[string]string{"AGENTRY_RESOURCE_PREFIX": "Bad_Prefix"}))
	assert.ErrorContains(t, err, "AGENTRY_RESOURCE_PREFIX")
}

// TestStoreEngine: pebble is the one engine; a configuration still naming
// the removed bbolt engine is refused with the way on.
func TestStoreEngine(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{value: "", want: ""},
		{value: "pebble", want: ""},
		{value: "bbolt", want: "unset the variable"},
		{value: "sqlite", want: "must be pebble"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			c, err := FromEnv(env(map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_STORE_ENGINE": tc.value}))
			if tc.want != "" {
				assert.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.value, c.StoreEngine)
		})
	}
}

func TestPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	good := "default_policy: deny\nrules:\n  - action: allow\n    senders: [\"*@a.test\"]\n    rate_limit: 10/minute\n"
	bad := "default_policy: deny\nrules:\n  - action: maybe\n"

	c, err := FromEnv(env(nil))
	require.NoError(t, err)
	assert.Nil(t, c.Policy, "no policy configured")

	for name, vars := range map[string]map[string]string{
		"file":   {"AGENTRY_POLICY_FILE": write("good.yaml", good)},
		"inline": {"AGENTRY_POLICY": good},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := FromEnv(env(vars))
			require.NoError(t, err)
			require.NotNil(t, c.Policy)
			assert.Equal(t, 1, c.Policy.Rules())
		})
	}

	for name, tc := range map[string]struct {
		vars map[string]string
		want []string
	}{
		"bad file":    {map[string]string{"AGENTRY_POLICY_FILE": write("bad.yaml", bad)}, []string{"AGENTRY_POLICY_FILE", "bad.yaml", "line 3", "action"}},
		"bad inline":  {map[string]string{"AGENTRY_POLICY": bad}, []string{"AGENTRY_POLICY", "line 3"}},
		"missing":     {map[string]string{"AGENTRY_POLICY_FILE": filepath.Join(dir, "nope.yaml")}, []string{"AGENTRY_POLICY_FILE", "no such file"}},
		"both":        {map[string]string{"AGENTRY_POLICY_FILE": write("g2.yaml", good), "AGENTRY_POLICY": good}, []string{"only one of"}},
		"too large":   {map[string]string{"AGENTRY_POLICY_FILE": write("big.yaml", strings.Repeat("#", maxPolicyBytes+1))}, []string{"larger than"}},
		"a directory": {map[string]string{"AGENTRY_POLICY_FILE": dir}, []string{"AGENTRY_POLICY_FILE", "is a directory"}},
		"empty rules": {map[string]string{"AGENTRY_POLICY": "rules: []\n"}, []string{"default_policy"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEnv(env(tc.vars))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSignaturePolicy(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		want       string
		deprecated bool
		wantErr    string
	}{
		{name: "default is the draft's flag", env: nil, want: SignatureFlag},
		{name: "accept", env: map[string]string{"AGENTRY_SIGNATURE_POLICY": "accept"}, want: SignatureAccept},
		{name: "reject, any case", env: map[string]string{"AGENTRY_SIGNATURE_POLICY": "Reject"}, want: SignatureReject},
		{name: "unknown", env: map[string]string{"AGENTRY_SIGNATURE_POLICY": "strict"}, wantErr: "AGENTRY_SIGNATURE_POLICY"},
		{name: "old 1 is reject", env: map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "1"}, want: SignatureReject, deprecated: true},
		{name: "old 0 is accept", env: map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "0"}, want: SignatureAccept, deprecated: true},
		{name: "both agreeing", env: map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "1", "AGENTRY_SIGNATURE_POLICY": "reject"}, want: SignatureReject},
		{name: "both disagreeing", env: map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "1", "AGENTRY_SIGNATURE_POLICY": "flag"}, wantErr: "unset AGENTRY_REQUIRE_SIGNATURES"},
		{name: "old not a bool", env: map[string]string{"AGENTRY_REQUIRE_SIGNATURES": "maybe"}, wantErr: "AGENTRY_REQUIRE_SIGNATURES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.SignaturePolicy)
			if tc.deprecated {
				require.Len(t, c.Deprecations, 1)
				assert.Contains(t, c.Deprecations[0], "AGENTRY_SIGNATURE_POLICY="+tc.want)
			} else {
				assert.Empty(t, c.Deprecations)
			}
			assert.Equal(t, "k1", c.SigningSelector)
		})
	}
}

// Without a lookup function the process environment is read.
func TestFromProcessEnvironment(t *testing.T) {
	t.Setenv("AGENTRY_DOMAIN", "Env.Test")
	t.Setenv("AGENTRY_OAUTH_ISSUER", "https://id.env.test")
	t.Setenv("AGENTRY_OAUTH_AUDIENCE", "https://env.test/amtp")
	c, err := FromEnv(nil)
	require.NoError(t, err)
	assert.Equal(t, "env.test", c.Domain)
	assert.True(t, c.OAuth(), "an issuer turns OAuth on")

	c, err = FromEnv(env(nil))
	require.NoError(t, err)
	assert.False(t, c.OAuth(), "a lookup function is read instead of the environment")
}

// One source of the signing key: which key signs is never a matter of
// precedence.
func TestSigningKeySources(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"key and file":   {"AGENTRY_SIGNING_KEY": "pem", "AGENTRY_SIGNING_KEY_FILE": "key.pem"},
		"file and ARN":   {"AGENTRY_SIGNING_KEY_FILE": "key.pem", "AGENTRY_SIGNING_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:k"},
		"all three":      {"AGENTRY_SIGNING_KEY": "pem", "AGENTRY_SIGNING_KEY_FILE": "key.pem", "AGENTRY_SIGNING_KEY_SECRET_ARN": "arn"},
		"key and secret": {"AGENTRY_SIGNING_KEY": "pem", "AGENTRY_SIGNING_KEY_SECRET_ARN": "arn"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEnv(env(vars))
			assert.ErrorContains(t, err, "set only one of AGENTRY_SIGNING_KEY, AGENTRY_SIGNING_KEY_FILE and AGENTRY_SIGNING_KEY_SECRET_ARN")
		})
	}
	c, err := FromEnv(env(map[string]string{"AGENTRY_SIGNING_KEY": "\n  pem text\n"}))
	require.NoError(t, err)
	assert.Equal(t, "pem text", c.SigningKey, "surrounding blanks go")
}
