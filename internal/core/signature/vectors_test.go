package signature_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"math/big"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/signature"
)

var update = flag.Bool("update", false, "regenerate the test vectors in testdata (keys are kept if present)")

// The vector files, per algorithm <alg> (rs256, es256):
//
//	message.json            hand-written unsigned message, deliberately not canonical
//	message.canonical.json  CanonicalInput(message.json), no trailing newline
//	<alg>.key.pem           PKCS#8 private key
//	<alg>.txt               its key record (PublicKeyTXT)
//	<alg>.signed.json       Sign(message.json) under keyid <alg>
func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	msg := readVector(t, "message.json")
	wantCanon := readVector(t, "message.canonical.json")

	canon, err := signature.CanonicalInput(msg)
	require.NoError(t, err)
	assert.Equal(t, string(wantCanon), string(canon))

	// The vector is meant to be a message the gateway would accept, so the
	// normalisation amtp.Parse applies is really what it would apply.
	m, err := amtp.Parse(msg, amtp.Limits{})
	require.NoError(t, err)
	reMarshalled, err := signature.CanonicalInput(m.AppendJSON(nil))
	require.NoError(t, err)
	assert.NotEqual(t, string(canon), string(reMarshalled), "parsing must normalise the vector, or it does not test verifying as received")

	v := vectorVerifier(t)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			key := vectorKey(t, alg)
			txt, err := signature.PublicKeyTXT(key.Public())
			require.NoError(t, err)
			assert.Equal(t, string(readVector(t, selectorFor(alg)+".txt")), txt)

			signed := readVector(t, selectorFor(alg)+".signed.json")
			got, err := v.Verify(context.Background(), signed)
			require.NoError(t, err)
			assert.Equal(t, signature.Verified{Domain: testDomain, Selector: selectorFor(alg), Algorithm: alg}, got)

			// Independently of Verify: the committed value verifies over the
			// committed canonical bytes with the bare primitive.
			value := signatureValue(t, signed)
			verifyPrimitive(t, alg, key.Public(), wantCanon, value)

			fresh, err := vectorSigner(t, alg).Sign(msg)
			require.NoError(t, err)
			if alg == signature.ES256 {
				// Randomised: only the bytes around the value are fixed.
				_, err := v.Verify(context.Background(), fresh)
				require.NoError(t, err)
				assert.NotEqual(t, string(signed), string(fresh))
				return
			}
			assert.Equal(t, string(signed), string(fresh), "deterministic algorithm must reproduce the vector")
		})
	}
}

func signatureValue(t testing.TB, signed []byte) []byte {
	t.Helper()
	var m struct {
		Signature amtp.Signature `json:"signature"`
	}
	require.NoError(t, json.Unmarshal(signed, &m))
	value, err := base64.RawURLEncoding.DecodeString(m.Signature.Value)
	require.NoError(t, err)
	return value
}

func verifyPrimitive(t testing.TB, alg signature.Algorithm, pub crypto.PublicKey, msg, sig []byte) {
	t.Helper()
	digest := sha256.Sum256(msg)
	switch alg {
	case signature.ES256:
		require.Len(t, sig, 64)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		assert.True(t, ecdsa.Verify(pub.(*ecdsa.PublicKey), digest[:], r, s))
	case signature.RS256:
		assert.NoError(t, rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig))
	}
}

func writeVectors(t *testing.T) {
	msg := readVector(t, "message.json")
	canon, err := signature.CanonicalInput(msg)
	require.NoError(t, err)
	write(t, "message.canonical.json", canon)
	for _, alg := range algorithms {
		keyFile := selectorFor(alg) + ".key.pem"
		if _, err := os.Stat(vectorPath(keyFile)); errors.Is(err, fs.ErrNotExist) {
			k, err := signature.GenerateKey(alg)
			require.NoError(t, err)
			pemBytes, err := signature.EncodePrivateKeyPEM(k)
			require.NoError(t, err)
			write(t, keyFile, pemBytes)
		}
		key := vectorKey(t, alg)
		txt, err := signature.PublicKeyTXT(key.Public())
		require.NoError(t, err)
		write(t, selectorFor(alg)+".txt", []byte(txt))
		signed, err := vectorSigner(t, alg).Sign(msg)
		require.NoError(t, err)
		write(t, selectorFor(alg)+".signed.json", signed)
	}
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(vectorPath(name), data, 0o644))
}
