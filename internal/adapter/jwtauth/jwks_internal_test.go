package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJWKFits covers the key checks the end-to-end tests cannot reach with
// the well-formed keys jwttest publishes: jwkset's refusals of malformed
// keys, and our policy on top of them (RSA size and exponent, curves, use,
// alg, key_ops).
func TestJWKFits(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	rsaJWK := map[string]any{"kty": "RSA", "n": b64(rsaKey.N.Bytes()), "e": "AQAB"}
	point, err := ecKey.PublicKey.Bytes()
	require.NoError(t, err)
	ecJWK := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])}
	edJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(edPub)}
	with := func(base map[string]any, kv ...any) map[string]any {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	offCurve := make([]byte, 32)
	offCurve[31] = 1
	p384Point, err := p384.PublicKey.Bytes()
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		key  map[string]any
		alg  string
		want string // "" = fits
	}{
		{"RSA for RS256", rsaJWK, RS256, ""},
		{"EC for ES256", ecJWK, ES256, ""},
		{"Ed25519 for EdDSA", edJWK, EdDSA, ""},
		{"alg and use that agree", with(rsaJWK, "alg", "RS256", "use", "sig", "key_ops", []string{"verify"}), RS256, ""},
		{"RSA for ES256", rsaJWK, ES256, "key type is RSA"},
		{"RSA for EdDSA", rsaJWK, EdDSA, "key type is RSA"},
		{"EC for RS256", ecJWK, RS256, "key type is EC"},
		{"Ed25519 for ES256", edJWK, ES256, "key type is OKP"},
		{"alg member differs", with(rsaJWK, "alg", "PS256"), RS256, "key is for PS256"},
		{"encryption key", with(ecJWK, "use", "enc"), ES256, `key use is "enc"`},
		{"key_ops without verify", with(edJWK, "key_ops", []string{"encrypt"}), EdDSA, "key_ops"},
		{"symmetric key", map[string]any{"kty": "oct", "k": b64([]byte("secret"))}, RS256, `key type "oct" is not supported`},
		{"no kty", map[string]any{"n": "x"}, RS256, `key type "" is not supported`},
		{"RSA 1024", with(rsaJWK, "n", b64(weakRSA.N.Bytes())), RS256, "RSA key of 1024 bits"},
		{"RSA even exponent", with(rsaJWK, "e", b64([]byte{1, 0, 0})), RS256, "exponent"},
		{"RSA exponent 1", with(rsaJWK, "e", "AQ"), RS256, `"e" is out of range`},
		{"RSA huge exponent", with(rsaJWK, "e", b64(big.NewInt(1<<40+1).Bytes())), RS256, `"e" is out of range`},
		{"RSA no modulus", with(rsaJWK, "n", nil), RS256, `requires parameters "n" and "e"`},
		// jwkset reads values with trailing padding, which some issuers send.
		{"RSA padded base64", with(rsaJWK, "e", "AQAB=="), RS256, ""},
		{"RSA not base64url", with(rsaJWK, "e", "AQ*B"), RS256, `"e"`},
		{"P-384", with(ecJWK, "crv", "P-384", "x", b64(p384Point[1:49]), "y", b64(p384Point[49:])), ES256, "EC curve P-384 is not supported"},
		{"EC short coordinate", with(ecJWK, "x", b64(point[2:33])), ES256, "not on the specified curve"},
		{"EC point off the curve", with(ecJWK, "x", b64(offCurve), "y", b64(offCurve)), ES256, "not on the specified curve"},
		{"Ed448", with(edJWK, "crv", "Ed448"), EdDSA, `unsupported curve type "Ed448"`},
		{"Ed25519 short", with(edJWK, "x", b64(edPub[:31])), EdDSA, "should be 32 bytes"},
		{"kid not a string", with(edJWK, "kid", 7), EdDSA, "JWKMarshal.kid of type string"},
		{"RSA modulus not a string", with(rsaJWK, "n", 7), RS256, "JWKMarshal.n of type string"},
		{"EC curve not a string", with(ecJWK, "crv", 256), ES256, "JWKMarshal.crv"},
		{"EC no x", with(ecJWK, "x", nil), ES256, `requires parameters "crv", "x", and "y"`},
		{"EC no y", with(ecJWK, "y", nil), ES256, `requires parameters "crv", "x", and "y"`},
		{"OKP curve not a string", with(edJWK, "crv", true), EdDSA, "JWKMarshal.crv"},
		{"OKP no x", with(edJWK, "x", nil), EdDSA, `requires parameters "crv" and "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(map[string]any{"keys": []any{tc.key}})
			require.NoError(t, err)
			keys, err := parseJWKS(raw)
			require.NoError(t, err, "an unusable key does not spoil the set")
			require.Len(t, keys, 1)
			err = keys[0].fits(tc.alg)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
