package signature_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/signature"
)

func TestGenerateAndPEMRoundTrip(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			k, err := signature.GenerateKey(alg)
			require.NoError(t, err)
			got, err := signature.AlgorithmFor(k.Public())
			require.NoError(t, err)
			assert.Equal(t, alg, got)

			pemBytes, err := signature.EncodePrivateKeyPEM(k)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----\n"))
			back, err := signature.ParsePrivateKeyPEM(pemBytes)
			require.NoError(t, err)
			assert.True(t, back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()))

			s, err := signature.NewSigner("Example.COM", "sel-1", back)
			require.NoError(t, err)
			assert.Equal(t, "sel-1", s.KeyID(), "the keyid is the selector alone")
			assert.Equal(t, "sel-1._amtpkey.example.com", s.KeyName())
			assert.Equal(t, alg, s.Algorithm())
			assert.Equal(t, "example.com", s.Domain())
			assert.Equal(t, "sel-1", s.Selector())
		})
	}
	_, err := signature.GenerateKey("HS256")
	assert.ErrorIs(t, err, signature.ErrUnsupportedAlgorithm)
}

func TestParsePrivateKeyPEMRejects(t *testing.T) {
	rsaKey := vectorKey(t, signature.RS256).(*rsa.PrivateKey)
	ecKey := vectorKey(t, signature.ES256).(*ecdsa.PrivateKey)
	good := readVector(t, "es256.key.pem")
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	edDER, err := x509.MarshalPKCS8PrivateKey(ed)
	require.NoError(t, err)

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384DER, err := x509.MarshalPKCS8PrivateKey(p384)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	x25519DER, err := x509.MarshalPKCS8PrivateKey(x25519)
	require.NoError(t, err)
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	require.NoError(t, err)

	block := func(typ string, der []byte, headers map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers})
	}
	tests := map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("MC4CAQAwBQYDK2VwBCIEI"),
		"PKCS#1":         block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), nil),
		"SEC 1":          block("EC PRIVATE KEY", ecDER, nil),
		"public key":     readVectorPublicPEM(t),
		"encrypted":      block("PRIVATE KEY", []byte{1, 2, 3}, map[string]string{"Proc-Type": "4,ENCRYPTED"}),
		"garbage DER":    block("PRIVATE KEY", []byte{1, 2, 3}, nil),
		"P-384":          block("PRIVATE KEY", p384DER, nil),
		"X25519":         block("PRIVATE KEY", x25519DER, nil),
		"Ed25519":        block("PRIVATE KEY", edDER, nil),
		"two keys":       append(append([]byte{}, good...), good...),
		"trailing bytes": append(append([]byte{}, good...), "junk"...),
	}
	for name, data := range tests {
		_, err := signature.ParsePrivateKeyPEM(data)
		assert.Error(t, err, name)
	}
	_, err = signature.ParsePrivateKeyPEM(append(append([]byte("\n"), good...), "\n\n"...))
	assert.NoError(t, err, "surrounding blank lines are fine")
}

func readVectorPublicPEM(t testing.TB) []byte {
	der, err := x509.MarshalPKIXPublicKey(vectorKey(t, signature.ES256).Public())
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestNewSignerRejects(t *testing.T) {
	ec := vectorKey(t, signature.ES256)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)

	tests := map[string]struct {
		domain, selector string
		key              crypto.Signer
	}{
		"RSA 1024":            {"example.com", "s", small},
		"Ed25519":             {"example.com", "s", edKey},
		"upper-case selector": {"example.com", "K1", ec},
		"P-384":               {"example.com", "s", p384},
		"no key":              {"example.com", "s", nil},
		"empty domain":        {"", "s", ec},
		"IP domain":           {"192.0.2.1", "s", ec},
		"U-label domain":      {"exämple.com", "s", ec},
		"empty selector":      {"example.com", "", ec},
		"dotted selector":     {"example.com", "a.b", ec},
		"colon in selector":   {"example.com", "a:b", ec},
		"hyphen edge":         {"example.com", "-a", ec},
		"long selector":       {"example.com", strings.Repeat("a", 64), ec},
	}
	for name, tc := range tests {
		_, err := signature.NewSigner(tc.domain, tc.selector, tc.key)
		assert.Error(t, err, name)
	}
	_, err = new(signature.Signer).Sign([]byte(`{"sender":"a@example.com"}`))
	assert.Error(t, err, "zero Signer")
}

func TestParseSelector(t *testing.T) {
	for _, good := range []string{"k1", "k2025-a", "a", strings.Repeat("s", 63), "0"} {
		got, err := signature.ParseSelector(good)
		require.NoError(t, err, good)
		assert.Equal(t, good, got)
	}
	// The old "<domain>:<selector>" keyid, several labels and upper case
	// are refused: the keyid names one DNS label under the sender's own
	// domain and nothing else.
	for _, bad := range []string{"", "example.com:k1", "k1.example.com", "a.b", "K1", "s el", "_s", "-a", "a-",
		strings.Repeat("s", 64), "k1\x00"} {
		_, err := signature.ParseSelector(bad)
		assert.ErrorIs(t, err, signature.ErrMalformed, bad)
	}
	// The keyid is the sender's text: an error quotes only its start.
	_, err := signature.ParseSelector(strings.Repeat("X", 1000))
	require.Error(t, err)
	assert.Contains(t, err.Error(), strings.Repeat("X", 64)+"...")
	assert.NotContains(t, err.Error(), strings.Repeat("X", 65))
}

func TestParsePublicKey(t *testing.T) {
	for _, alg := range algorithms {
		spki, err := x509.MarshalPKIXPublicKey(vectorKey(t, alg).Public())
		require.NoError(t, err)
		pub, err := signature.ParsePublicKey(string(alg), spki)
		require.NoError(t, err)
		assert.True(t, pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(vectorKey(t, alg).Public()))

		for _, other := range algorithms {
			if other != alg {
				_, err := signature.ParsePublicKey(string(other), spki)
				assert.ErrorIs(t, err, signature.ErrKeyRecord, "alg=%s record holding a %s key", other, alg)
			}
		}
		_, err = signature.ParsePublicKey(string(alg), append(spki, 0))
		assert.ErrorIs(t, err, signature.ErrKeyRecord, "trailing data")
		_, err = signature.ParsePublicKey(string(alg), spki[:len(spki)-1])
		assert.ErrorIs(t, err, signature.ErrKeyRecord, "truncated")
		_, err = signature.ParsePublicKey("EdDSA", spki)
		assert.ErrorIs(t, err, signature.ErrKeyRecord, "alg outside the profile")
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&small.PublicKey)
	require.NoError(t, err)
	_, err = signature.ParsePublicKey("RS256", spki)
	assert.ErrorIs(t, err, signature.ErrKeyRecord, "RSA 1024")

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	spki, err = x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err)
	_, err = signature.ParsePublicKey("ES256", spki)
	assert.ErrorIs(t, err, signature.ErrKeyRecord, "P-384")

	ed, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	spki, err = x509.MarshalPKIXPublicKey(ed)
	require.NoError(t, err)
	_, err = signature.ParsePublicKey("ES256", spki)
	assert.ErrorIs(t, err, signature.ErrKeyRecord, "Ed25519")

	_, err = signature.ParsePublicKey("ES256", nil)
	assert.ErrorIs(t, err, signature.ErrKeyRecord, "empty")
}

func TestPublicKeyTXT(t *testing.T) {
	txt, err := signature.PublicKeyTXT(vectorKey(t, signature.ES256).Public())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(txt, "v=amtpkey1;alg=ES256;p=MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"), txt)
	assert.True(t, strings.HasSuffix(txt, "="), "standard base64 with its padding: %s", txt)
	txt, err = signature.PublicKeyTXT(vectorKey(t, signature.RS256).Public())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(txt, "v=amtpkey1;alg=RS256;p=MIIBIjAN"), txt)

	ed, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, err = signature.PublicKeyTXT(ed)
	assert.ErrorIs(t, err, signature.ErrKeyRecord)
	_, err = signature.PublicKeyTXT("not a key")
	assert.ErrorIs(t, err, signature.ErrKeyRecord)
}

func TestParseAlgorithm(t *testing.T) {
	for _, alg := range algorithms {
		got, err := signature.ParseAlgorithm(string(alg))
		require.NoError(t, err)
		assert.Equal(t, alg, got)
	}
	for _, bad := range []string{"", "rs256", "EDDSA", "Ed25519", "PS256", "HS256", "none", "ES256K"} {
		_, err := signature.ParseAlgorithm(bad)
		assert.ErrorIs(t, err, signature.ErrUnsupportedAlgorithm, bad)
	}
}

// opaqueSigner is a key outside the process (an HSM, a KMS key): it signs
// but its private half cannot be exported.
type opaqueSigner struct{ crypto.Signer }

func TestEncodePrivateKeyPEMRefuses(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		want string
	}{
		{"no key", nil, "no key"},
		{"Ed25519, outside the profile", ed, "unsupported key type"},
		{"a key that cannot be exported", opaqueSigner{vectorKey(t, signature.ES256)}, "encoding private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := signature.EncodePrivateKeyPEM(tc.key)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, data)
		})
	}
}
