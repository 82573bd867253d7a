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
	_, err := FromEnv(env(map[string]string{
		"AGENTRY_DOMAIN": "bad domain", "AGENTRY_ALLOW_INSECURE": "maybe", "AGENTRY_MAX_MESSAGE_BYTES": "-1",
		"AGENTRY_TLS_CERT": "only-cert", "AGENTRY_RETRY_BASE": "soon", "AGENTRY_LOG_LEVEL": "loud",
	}))
	require.Error(t, err)
	for _, name := range []string{"AGENTRY_DOMAIN", "AGENTRY_ALLOW_INSECURE", "AGENTRY_MAX_MESSAGE_BYTES", "AGENTRY_TLS_KEY", "AGENTRY_RETRY_BASE", "AGENTRY_LOG_LEVEL"} {
		assert.Contains(t, err.Error(), name)
	}
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
