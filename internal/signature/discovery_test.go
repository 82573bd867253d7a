package signature_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/discovery"
	"github.com/agentry/agentry/internal/discovery/dnstest"
	"github.com/agentry/agentry/internal/signature"
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
			assert.Equal(t, alg.KeyType(), kr.Algorithm)
			got, err := signature.ParsePublicKey(kr.Algorithm, kr.PublicKey)
			require.NoError(t, err)
			assert.Equal(t, pub, got)
		})
	}
}

// discoveryKeys is the wiring RecordLookup documents.
func discoveryKeys(r *discovery.Resolver) signature.KeyResolver {
	return signature.RecordLookup(func(ctx context.Context, domain, selector string) (string, []byte, error) {
		kr, err := r.LookupKey(ctx, domain, selector)
		if err != nil && !discovery.IsTransient(err) {
			err = fmt.Errorf("%w: %w", signature.ErrUnknownKey, err)
		}
		return kr.Algorithm, kr.PublicKey, err
	})
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
	srv.SetTXT("revoked._amtpkey."+testDomain, 300, "v=amtp1;k=ed25519;p=")
	srv.SetTXT("mismatch._amtpkey."+testDomain, 300, "v=amtp1;k=rsa;p="+spkiBase64(t, signature.EdDSA))
	res, err := discovery.New(discovery.Config{Server: srv.Addr(), Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	v := &signature.Verifier{Keys: discoveryKeys(res)}

	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			got, err := v.Verify(context.Background(), readVector(t, selectorFor(alg)+".signed.json"))
			require.NoError(t, err)
			assert.Equal(t, alg, got.Algorithm)
		})
	}

	edSigned := sign(t, signature.EdDSA, baseMessage)
	for sel, want := range map[string]error{
		"absent":   signature.ErrUnknownKey,
		"revoked":  signature.ErrUnknownKey,
		"mismatch": signature.ErrUnknownKey,
	} {
		raw := []byte(withSignature(sigJSON("EdDSA", testDomain+":"+sel, signatureValueOf(t, edSigned))))
		_, err := v.Verify(context.Background(), raw)
		assert.ErrorIs(t, err, want, sel)
		assert.False(t, signature.Temporary(err), sel)
	}

	srv.SetRcode(selectorFor(signature.EdDSA)+"._amtpkey.example.org", dns.RcodeServerFailure)
	other, err := signature.NewSigner("example.org", selectorFor(signature.EdDSA), vectorKey(t, signature.EdDSA))
	require.NoError(t, err)
	signedOrg, err := other.Sign([]byte(`{"sender":"a@example.org"}`))
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), signedOrg)
	assert.ErrorIs(t, err, signature.ErrKeyUnavailable)
	assert.True(t, signature.Temporary(err))
}

func spkiBase64(t testing.TB, alg signature.Algorithm) string {
	t.Helper()
	txt, err := signature.PublicKeyTXT(vectorKey(t, alg).Public())
	require.NoError(t, err)
	_, p, ok := strings.Cut(txt, ";p=")
	require.True(t, ok, txt)
	return p
}
