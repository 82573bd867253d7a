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

// TestScanObjectMisuse: the member scanner trusts its input to be valid
// JSON (the canonicaliser checked it), but given anything else it says so
// with an error, never an index out of range.
func TestScanObjectMisuse(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", ``, "not an object"},
		{"array", `[1]`, "not an object"},
		{"comma before the end", `{"a":1,}`, "expected a member name"},
		{"name not a string", `{a:1}`, "expected a member name"},
		{"name not terminated", `{"a`, "unterminated string"},
		{"name without colon", `{"a" 1}`, "expected ':'"},
		{"no value", `{"a":`, "missing value"},
		{"number runs to the end", `{"a":12`, "unterminated object"},
		{"garbage after a value", `{"a":1 x}`, "expected ',' or '}'"},
		{"bad escape in a name", `{"\u12":1}`, "decoding member name"},
		{"string inside a value not terminated", `{"a":{"b":"c}`, "unterminated string"},
		{"array not closed", `{"a":[1,2`, "unterminated value"},
		{"string not terminated", `{"a":"b`, "unterminated string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scanObject([]byte(tc.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	// What it finds in valid input, escaped names and nesting included.
	lay, err := scanObject([]byte(` { "x" : [ "}" , { "y" : "]" } ] , "sign\u0061ture" : { } , "sender" : "a@b.test" } `))
	require.NoError(t, err)
	require.True(t, lay.signature.found, "an escaped name is decoded")
	require.True(t, lay.sender.found)
}

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
