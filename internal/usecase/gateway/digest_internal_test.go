package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
)

// TestContentDigestDefinition pins the idempotency digest to its
// definition, hex SHA-256 of the canonical content, however it is
// computed (amtp.Message.ContentSHA256 hashes the payload apart) and
// whatever scratch buffer it is given: stored digests must keep matching.
func TestContentDigestDefinition(t *testing.T) {
	for _, body := range []string{
		`{"sender":"a@x.example","recipients":["b@x.example"],"payload":{"z":1,"a":[1E2,"\u00e9"]}}`,
		`{"message_id":"0194f3c8-7a2b-7cde-8f01-23456789abcd","sender":"A@X.example","recipients":["b@x.example","c@y.example"],"subject":"s","headers":{"k":"v"},"payload":"x"}`,
	} {
		m, err := amtp.Parse([]byte(body), amtp.Limits{})
		require.NoError(t, err)
		canon, err := amtp.Canonicalize(m.AppendContentDigestInput(nil))
		require.NoError(t, err)
		sum := sha256.Sum256(canon)
		want := hex.EncodeToString(sum[:])
		for _, scratch := range [][]byte{nil, make([]byte, 0, 8), make([]byte, 100, 4096)} {
			got, _, err := contentDigest(m, scratch)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		}
	}
	m, err := amtp.Parse([]byte(`{"sender":"a@x.example","recipients":["b@x.example"],"payload":{"a":1,"a":2}}`), amtp.Limits{})
	require.NoError(t, err)
	_, _, err = contentDigest(m, nil)
	require.True(t, amtp.IsCode(err, amtp.CodeInvalidMessageFormat), "%v", err)
}

func TestHashAPIKey(t *testing.T) {
	for _, key := range []string{"", "k", "amtp_" + strings.Repeat("x", 43), strings.Repeat("y", 256), strings.Repeat("z", 257), strings.Repeat("w", 5000)} {
		sum := sha256.Sum256([]byte(key))
		assert.Equal(t, hex.EncodeToString(sum[:]), HashAPIKey(key), "key of %d bytes", len(key))
	}
}
