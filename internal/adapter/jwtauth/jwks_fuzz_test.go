package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/stretchr/testify/require"
)

// FuzzParseJWKS feeds arbitrary documents to parseJWKS: our envelope and
// limits, jwkset's reading of each key and our policy on what it returns.
// A document that is not a JWK Set is an error with no keys; in a set,
// every key either holds a public key or says why it cannot, never both.
// A key that is kept as usable can verify (crypto refuses to verify with
// some keys that parse), fits its own algorithm unless its use or alg say
// otherwise, and reads back the same from the JWK jwkset writes for it.
func FuzzParseJWKS(f *testing.F) {
	b64 := base64.RawURLEncoding.EncodeToString
	// Fixed keys: seeds must not vary between fuzz worker processes.
	modulus := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 2047), big.NewInt(1))
	scalar := make([]byte, 32)
	scalar[31] = 1
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
	require.NoError(f, err)
	point, err := ec.PublicKey.Bytes()
	require.NoError(f, err)
	ed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	rsaJWK := `{"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","n":"` + b64(modulus.Bytes()) + `","e":"AQAB"}`
	ecJWK := `{"kty":"EC","kid":"e1","crv":"P-256","x":"` + b64(point[1:33]) + `","y":"` + b64(point[33:]) + `"}`
	edJWK := `{"kty":"OKP","kid":"o1","crv":"Ed25519","x":"` + b64(ed) + `","key_ops":["verify"]}`
	for _, s := range []string{
		`{"keys":[` + rsaJWK + `,` + ecJWK + `,` + edJWK + `]}`,
		`{"keys":[` + strings.Replace(rsaJWK, b64(modulus.Bytes()), b64(new(big.Int).Add(modulus, big.NewInt(1)).Bytes()), 1) + `]}`, // even modulus
		`{"keys":[` + strings.Replace(rsaJWK, `"AQAB"`, `"AAE"`, 1) + `]}`,
		`{"keys":[` + strings.Replace(rsaJWK, `"AQAB"`, `"AQAC"`, 1) + `]}`,
		`{"keys":[` + strings.Replace(ecJWK, `"x":"`, `"x":"A`, 1) + `]}`,
		`{"keys":[` + strings.Replace(edJWK, `"verify"`, `"sign"`, 1) + `]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"RSA","kid":7}]}`,
		`{"keys":[` + ecJWK + `],"keys":[]}`,
		`{"keys":[{"kty":"EC","kty":"RSA","crv":"P-256"}]}`,
		`{"keys":[null]}`,
		`{"keys":null}`,
		`{"KEYS":[]}`,
		`{"keys":[` + strings.Repeat(edJWK+`,`, maxJWKSKeys) + edJWK + `]}`,
		`{"keys":[{"kty":"EC","kid":"ü✓","crv":"P-256","x":"` + b64(point[1:33]) + `"`,
		``,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			require.Nil(t, keys)
			return
		}
		require.LessOrEqual(t, len(keys), maxJWKSKeys)
		for _, k := range keys {
			require.True(t, (k.pub == nil) != (k.err == nil), "key %q: public key %v and error %v", k.kid, k.pub, k.err)
			if k.err != nil {
				continue
			}
			alg := requireUsableJWK(t, k)
			if (k.use == "" || k.use == "sig") && (k.alg == "" || k.alg == alg) {
				require.NoError(t, k.fits(alg))
			}

			doc, err := json.Marshal(map[string]any{"keys": []any{jwkJSON(t, k)}})
			require.NoError(t, err)
			back, err := parseJWKS(doc)
			require.NoError(t, err)
			require.Len(t, back, 1)
			require.NoError(t, back[0].err, "%s", doc)
			require.True(t, back[0].pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.pub), "%s", doc)
			require.Equal(t, []string{k.kid, k.kty, k.use}, []string{back[0].kid, back[0].kty, back[0].use})
			// jwkset names the algorithm of an Ed25519 key it writes.
			if k.alg != "" {
				require.Equal(t, k.alg, back[0].alg)
			}
		}
	})
}

// requireUsableJWK checks that a key parseJWKS kept could verify, and
// returns the algorithm it verifies.
func requireUsableJWK(t *testing.T, k *jwk) string {
	t.Helper()
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		require.Equal(t, "RSA", k.kty)
		require.Equal(t, uint(1), pub.N.Bit(0), "RSA modulus is even: crypto/rsa verifies nothing with it")
		require.GreaterOrEqual(t, pub.E, 3)
		require.Equal(t, 1, pub.E%2)
		require.LessOrEqual(t, pub.E, 1<<31-1)
		require.True(t, pub.N.BitLen() >= minRSABits && pub.N.BitLen() <= maxRSABits)
		return RS256
	case *ecdsa.PublicKey:
		require.Equal(t, "EC", k.kty)
		require.Equal(t, elliptic.P256(), pub.Curve)
		_, err := pub.Bytes()
		require.NoError(t, err, "ECDSA point is not on the curve")
		return ES256
	case ed25519.PublicKey:
		require.Equal(t, "OKP", k.kty)
		require.Len(t, pub, ed25519.PublicKeySize)
		return EdDSA
	}
	t.Fatalf("key %q of type %T", k.kid, k.pub)
	return ""
}

// jwkJSON writes k as the JWK an issuer would publish for it, with jwkset
// (the same library that read it).
func jwkJSON(t *testing.T, k *jwk) jwkset.JWKMarshal {
	t.Helper()
	meta := jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.USE(k.use)}
	j, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: meta})
	require.NoError(t, err)
	return j.Marshal()
}
