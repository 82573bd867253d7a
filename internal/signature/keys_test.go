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

	"github.com/agentry/agentry/internal/signature"
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

			s, err := signature.NewSigner("Example.COM", "Sel-1", back)
			require.NoError(t, err)
			assert.Equal(t, "example.com:sel-1", s.KeyID())
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
	good := readVector(t, "eddsa.key.pem")

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
	der, err := x509.MarshalPKIXPublicKey(vectorKey(t, signature.EdDSA).Public())
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestNewSignerRejects(t *testing.T) {
	ed := vectorKey(t, signature.EdDSA)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)

	tests := map[string]struct {
		domain, selector string
		key              crypto.Signer
	}{
		"RSA 1024":          {"example.com", "s", small},
		"P-384":             {"example.com", "s", p384},
		"no key":            {"example.com", "s", nil},
		"empty domain":      {"", "s", ed},
		"IP domain":         {"192.0.2.1", "s", ed},
		"U-label domain":    {"exämple.com", "s", ed},
		"empty selector":    {"example.com", "", ed},
		"dotted selector":   {"example.com", "a.b", ed},
		"colon in selector": {"example.com", "a:b", ed},
		"hyphen edge":       {"example.com", "-a", ed},
		"long selector":     {"example.com", strings.Repeat("a", 64), ed},
	}
	for name, tc := range tests {
		_, err := signature.NewSigner(tc.domain, tc.selector, tc.key)
		assert.Error(t, err, name)
	}
	_, err = new(signature.Signer).Sign([]byte(`{"sender":"a@example.com"}`))
	assert.Error(t, err, "zero Signer")
}

func TestParseKeyID(t *testing.T) {
	d, s, err := signature.ParseKeyID("Mail.Example.COM:K2025-a")
	require.NoError(t, err)
	assert.Equal(t, "mail.example.com", d)
	assert.Equal(t, "k2025-a", s)

	for _, bad := range []string{"", ":", "example.com", "example.com:", ":sel", "a:b:c", "example.com:s el",
		"exa mple.com:s", "example.com:_s", "example.com:s.t", "[127.0.0.1]:s", "example.com:" + strings.Repeat("s", 64),
		strings.Repeat("a.", 130) + "com:s"} {
		_, _, err := signature.ParseKeyID(bad)
		assert.ErrorIs(t, err, signature.ErrMalformed, bad)
	}
}

func TestParsePublicKey(t *testing.T) {
	for _, alg := range algorithms {
		spki, err := x509.MarshalPKIXPublicKey(vectorKey(t, alg).Public())
		require.NoError(t, err)
		pub, err := signature.ParsePublicKey(alg.KeyType(), spki)
		require.NoError(t, err)
		assert.True(t, pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(vectorKey(t, alg).Public()))

		pub, err = signature.ParsePublicKey(strings.ToUpper(alg.KeyType()), spki)
		require.NoError(t, err, "k= is case-insensitive")
		assert.NotNil(t, pub)

		for _, other := range algorithms {
			if other != alg {
				_, err := signature.ParsePublicKey(other.KeyType(), spki)
				assert.ErrorIs(t, err, signature.ErrUnknownKey, "%s record holding a %s key", other.KeyType(), alg)
			}
		}
		_, err = signature.ParsePublicKey(alg.KeyType(), append(spki, 0))
		assert.ErrorIs(t, err, signature.ErrUnknownKey, "trailing data")
		_, err = signature.ParsePublicKey(alg.KeyType(), spki[:len(spki)-1])
		assert.ErrorIs(t, err, signature.ErrUnknownKey, "truncated")
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&small.PublicKey)
	require.NoError(t, err)
	_, err = signature.ParsePublicKey("rsa", spki)
	assert.ErrorIs(t, err, signature.ErrUnknownKey, "RSA 1024")

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	spki, err = x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err)
	_, err = signature.ParsePublicKey("ec", spki)
	assert.ErrorIs(t, err, signature.ErrUnknownKey, "P-384")

	_, err = signature.ParsePublicKey("ed25519", nil)
	assert.ErrorIs(t, err, signature.ErrUnknownKey, "empty")
}

func TestPublicKeyTXT(t *testing.T) {
	txt, err := signature.PublicKeyTXT(vectorKey(t, signature.EdDSA).Public())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(txt, "v=amtp1;k=ed25519;p=MCowBQYDK2VwAyEA"), txt)

	_, err = signature.PublicKeyTXT(ed25519.PublicKey(make([]byte, 5)))
	assert.ErrorIs(t, err, signature.ErrUnknownKey)
	_, err = signature.PublicKeyTXT("not a key")
	assert.ErrorIs(t, err, signature.ErrUnknownKey)
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
