package signature_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery"
	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/adapter/signing"
	"github.com/agentry/agentry/internal/core/signature"
)

// The records PublicKeyTXT writes must be what the discovery side reads.
func TestPublicKeyTXTParsesWithDiscovery(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			pub := vectorKey(t, alg).Public()
			txt, err := signature.PublicKeyTXT(pub)
			require.NoError(t, err)
			kr, err := discovery.ParseKeyTXT(txt)
			require.NoError(t, err)
			assert.Equal(t, string(alg), kr.Algorithm)
			got, err := signature.ParsePublicKey(kr.Algorithm, kr.PublicKey)
			require.NoError(t, err)
			assert.Equal(t, pub, got)
		})
	}
}

// End to end over DNS: the RSA record is longer than one TXT string, and
// missing, revoked and unreachable keys map to the right errors.
func TestVerifyWithDNSKeys(t *testing.T) {
	srv := dnstest.Start(t)
	for _, alg := range algorithms {
		txt, err := signature.PublicKeyTXT(vectorKey(t, alg).Public())
		require.NoError(t, err)
		srv.SetTXT(selectorFor(alg)+"._amtpkey."+testDomain, 300, txt)
	}
	srv.SetTXT("revoked._amtpkey."+testDomain, 300, "v=amtpkey1;alg=ES256;p=")
	srv.SetTXT("mismatch._amtpkey."+testDomain, 300, "v=amtpkey1;alg=RS256;p="+spkiBase64(t, signature.ES256))
	srv.SetTXT("twice._amtpkey."+testDomain, 300, "v=amtpkey1;alg=ES256;p="+spkiBase64(t, signature.ES256))
	srv.SetTXT("twice._amtpkey."+testDomain, 300, "v=amtpkey1;alg=ES256;p="+spkiBase64(t, signature.ES256)+";x=1")
	res, err := discovery.New(discovery.Config{Server: srv.Addr(), Timeout: 10 * time.Second})
	require.NoError(t, err)
	v := &signature.Verifier{Keys: signing.Keys(res), Now: func() time.Time { return vectorTime }}

	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			got, err := v.Verify(context.Background(), readVector(t, selectorFor(alg)+".signed.json"))
			require.NoError(t, err)
			assert.Equal(t, alg, got.Algorithm)
			assert.Equal(t, selectorFor(alg), got.Selector)
			assert.Equal(t, testDomain, got.Domain)
		})
	}

	esSigned := sign(t, signature.ES256, baseMessage)
	for sel, want := range map[string]signature.Kind{
		"absent":   signature.KindKeyUnavailable,
		"revoked":  signature.KindKeyUnavailable,
		"mismatch": signature.KindInvalid,
		"twice":    signature.KindInvalid,
	} {
		raw := []byte(withSignature(sigJSON("ES256", sel, signatureValueOf(t, esSigned))))
		_, err := v.Verify(context.Background(), raw)
		require.Error(t, err, sel)
		assert.Equal(t, want, signature.KindOf(err), "%s: %v", sel, err)
	}

	srv.SetRcode(selectorFor(signature.ES256)+"._amtpkey.example.org", dns.RcodeServerFailure)
	other, err := signature.NewSigner("example.org", selectorFor(signature.ES256), vectorKey(t, signature.ES256))
	require.NoError(t, err)
	signedOrg, err := other.Sign([]byte(strings.Replace(baseMessage, "@example.com", "@example.org", 1)))
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), signedOrg)
	assert.ErrorIs(t, err, signature.ErrKeyUnavailable)
	assert.True(t, signature.Temporary(err))
	assert.Equal(t, signature.KindKeyUnavailable, signature.KindOf(err))
}

func spkiBase64(t testing.TB, alg signature.Algorithm) string {
	t.Helper()
	txt, err := signature.PublicKeyTXT(vectorKey(t, alg).Public())
	require.NoError(t, err)
	_, p, ok := strings.Cut(txt, ";p=")
	require.True(t, ok, txt)
	return p
}
