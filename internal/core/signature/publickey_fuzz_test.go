package signature_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery"
	"github.com/agentry/agentry/internal/core/signature"
)

// FuzzParsePublicKey feeds arbitrary alg= values and p= bytes to
// ParsePublicKey. A refusal is ErrKeyRecord with no key. An accepted key is
// usable: it is of the declared algorithm, publishes as a record that reads
// back to the same key, and verifies the committed vectors exactly when it
// is the key that signed them.
func FuzzParsePublicKey(f *testing.F) {
	for _, alg := range algorithms {
		spki := marshalSPKI(f, vectorKey(f, alg).Public())
		f.Add(string(alg), spki)
		f.Add(string(otherAlgorithm(alg)), spki)
		f.Add(string(alg), spki[:len(spki)/2])
		f.Add(string(alg), append(spki, 0))
	}
	vectorRSA := vectorKey(f, signature.RS256).Public().(*rsa.PublicKey)
	weakRSA := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 1023), big.NewInt(1))
	scalar := make([]byte, 48) // a fixed P-384 key: seeds must not vary between fuzz workers
	scalar[47] = 1
	p384, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), scalar)
	require.NoError(f, err)
	for _, pub := range []crypto.PublicKey{
		&rsa.PublicKey{N: vectorRSA.N, E: 4},
		&rsa.PublicKey{N: vectorRSA.N, E: 1},
		&rsa.PublicKey{N: weakRSA, E: 65537},
		&p384.PublicKey,
		ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public(),
	} {
		f.Add("RS256", marshalSPKI(f, pub))
		f.Add("ES256", marshalSPKI(f, pub))
	}
	f.Add("", []byte{})
	f.Add("es256", []byte{0x30, 0x00})
	f.Add("EdDSA", []byte("\u00e9\x00\xff"))
	f.Add("ES256", make([]byte, 1<<16))

	verifiers := vectorsSignedWith(f)
	f.Fuzz(func(t *testing.T, alg string, spki []byte) {
		pub, err := signature.ParsePublicKey(alg, spki)
		if err != nil {
			require.ErrorIs(t, err, signature.ErrKeyRecord)
			require.Nil(t, pub)
			return
		}
		got, err := signature.AlgorithmFor(pub)
		require.NoError(t, err)
		require.Equal(t, alg, string(got))
		requireUsable(t, pub)

		txt, err := signature.PublicKeyTXT(pub)
		require.NoError(t, err)
		kr, err := discovery.ParseKeyTXT(txt)
		require.NoError(t, err, "published record %q", txt)
		again, err := signature.ParsePublicKey(kr.Algorithm, kr.PublicKey)
		require.NoError(t, err)
		require.True(t, again.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub))

		for _, v := range verifiers {
			_, err := v.verifier(pub).Verify(context.Background(), v.signed)
			switch {
			case v.alg != got:
				require.ErrorIs(t, err, signature.ErrAlgorithmMismatch)
			case vectorKey(t, v.alg).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub):
				require.NoError(t, err)
			default:
				require.ErrorIs(t, err, signature.ErrBadSignature)
			}
		}
	})
}

// requireUsable checks what a verifier needs of a public key beyond
// parsing: crypto/rsa refuses to verify with an even modulus or an even,
// tiny or over 31-bit exponent, so such a key could never verify anything.
func requireUsable(t *testing.T, pub crypto.PublicKey) {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		require.Equal(t, uint(1), k.N.Bit(0), "RSA modulus is even")
		require.GreaterOrEqual(t, k.E, 3, "RSA exponent")
		require.LessOrEqual(t, k.E, 1<<31-1, "RSA exponent")
		require.Equal(t, 1, k.E%2, "RSA exponent %d is even", k.E)
	case *ecdsa.PublicKey:
		_, err := k.Bytes()
		require.NoError(t, err, "ECDSA point is not on the curve")
	default:
		t.Fatalf("key of type %T", pub)
	}
}

type signedVector struct {
	alg      signature.Algorithm
	signed   []byte
	verifier func(crypto.PublicKey) *signature.Verifier
}

// vectorsSignedWith returns the committed signed vectors, each with a
// verifier that resolves its selector to the key under test.
func vectorsSignedWith(t testing.TB) []signedVector {
	var out []signedVector
	for _, alg := range algorithms {
		base := vectorVerifier(t)
		out = append(out, signedVector{
			alg:    alg,
			signed: readVector(t, selectorFor(alg)+".signed.json"),
			verifier: func(pub crypto.PublicKey) *signature.Verifier {
				v := *base
				v.Keys = keyMap{keyName(testDomain, selectorFor(alg)): pub}
				return &v
			},
		})
	}
	return out
}

func otherAlgorithm(alg signature.Algorithm) signature.Algorithm {
	if alg == signature.ES256 {
		return signature.RS256
	}
	return signature.ES256
}

func marshalSPKI(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return spki
}
