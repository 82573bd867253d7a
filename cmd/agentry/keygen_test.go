package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery"
	"github.com/agentry/agentry/internal/core/signature"
)

// txtOf joins the quoted strings of a printed zone line back into the
// record text, as a resolver does.
func txtOf(t *testing.T, line string) string {
	t.Helper()
	_, quoted, ok := strings.Cut(line, " IN TXT ")
	require.True(t, ok, line)
	var b strings.Builder
	for _, part := range strings.Fields(quoted) {
		require.True(t, len(part) >= 2 && part[0] == '"' && part[len(part)-1] == '"', "part %q", part)
		require.LessOrEqual(t, len(part)-2, 255, "a TXT string holds at most 255 bytes")
		b.WriteString(part[1 : len(part)-1])
	}
	return b.String()
}

func TestKeygenWritesKeyAndPrintsRecord(t *testing.T) {
	t.Setenv("AGENTRY_DOMAIN", "example.com")
	t.Setenv("AGENTRY_DATA_DIR", t.TempDir())
	for _, c := range []struct {
		alg string
	}{{"ES256"}, {"RS256"}} {
		t.Run(c.alg, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "key.pem")
			code, stdout, stderr := runCLI(t, "keygen", "-alg", c.alg, "-selector", "s1", "-out", out)
			require.Equal(t, 0, code, stderr)
			line := strings.TrimSpace(stdout)
			assert.True(t, strings.HasPrefix(line, "s1._amtpkey.example.com. 300 IN TXT \"v=amtpkey1;alg="+c.alg+";p="), line)

			st, err := os.Stat(out)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
			data, err := os.ReadFile(out)
			require.NoError(t, err)
			key, err := signature.ParsePrivateKeyPEM(data)
			require.NoError(t, err)
			// The printed record is the key's public half, readable by discovery.
			kr, err := discovery.ParseKeyTXT(txtOf(t, line))
			require.NoError(t, err)
			pub, err := signature.ParsePublicKey(kr.Algorithm, kr.PublicKey)
			require.NoError(t, err)
			assert.Equal(t, key.Public(), pub)

			// Never over an existing key.
			code, _, stderr = runCLI(t, "keygen", "-alg", c.alg, "-out", out)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, "exists")

			// dns-record prints the key record of the configured key.
			t.Setenv("AGENTRY_SIGNING_KEY_FILE", out)
			t.Setenv("AGENTRY_SIGNING_SELECTOR", "s1")
			code, stdout, stderr = runCLI(t, "dns-record")
			require.Equal(t, 0, code, stderr)
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			require.Len(t, lines, 2)
			assert.Equal(t, line, lines[1])
		})
	}
	for _, alg := range []string{"HS256", "EdDSA"} {
		code, _, stderr := runCLI(t, "keygen", "-alg", alg, "-out", filepath.Join(t.TempDir(), "k"))
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, "unsupported algorithm")
	}
}

// keygen's defaults are the draft's: ES256 under selector k1.
func TestKeygenDefaults(t *testing.T) {
	t.Setenv("AGENTRY_DOMAIN", "example.com")
	out := filepath.Join(t.TempDir(), "key.pem")
	code, stdout, stderr := runCLI(t, "keygen", "-out", out)
	require.Equal(t, 0, code, stderr)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(stdout), `k1._amtpkey.example.com. 300 IN TXT "v=amtpkey1;alg=ES256;p=`), stdout)
}
