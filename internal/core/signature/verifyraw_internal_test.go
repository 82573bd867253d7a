package signature

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerifyRawMismatches: verifyRaw reports a key of the wrong kind, a
// signature of the wrong size or an algorithm it does not know, rather than
// panicking on a type assertion or a slice bound.
func TestVerifyRawMismatches(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	msg := []byte(`{}`)
	for _, tc := range []struct {
		name string
		alg  Algorithm
		pub  any
		sig  []byte
		want error
	}{
		{"ES256 with an RSA key", ES256, &rs.PublicKey, make([]byte, 64), ErrAlgorithmMismatch},
		{"ES256 with an Ed25519 key", ES256, edPub, make([]byte, 64), ErrAlgorithmMismatch},
		{"ES256 signature of 63 bytes", ES256, &ec.PublicKey, make([]byte, 63), ErrBadSignature},
		{"ES256 zero signature", ES256, &ec.PublicKey, make([]byte, 64), ErrBadSignature},
		{"RS256 with an EC key", RS256, &ec.PublicKey, make([]byte, 256), ErrAlgorithmMismatch},
		{"RS256 signature of 255 bytes", RS256, &rs.PublicKey, make([]byte, 255), ErrBadSignature},
		{"RS256 zero signature", RS256, &rs.PublicKey, make([]byte, 256), ErrBadSignature},
		{"EdDSA", "EdDSA", edPub, make([]byte, 64), ErrUnsupportedAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, verifyRaw(tc.alg, tc.pub, msg, tc.sig), tc.want)
		})
	}
}
