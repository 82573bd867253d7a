package signature_test

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/signature"
)

// testDomain and the selectors are the ones the vectors are signed under.
const testDomain = "example.com"

var algorithms = []signature.Algorithm{signature.RS256, signature.ES256}

func selectorFor(alg signature.Algorithm) string { return strings.ToLower(string(alg)) }

func vectorPath(name string) string { return filepath.Join("testdata", name) }

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(vectorPath(name))
	require.NoError(t, err, "missing test vector; run go test ./internal/core/signature -run TestVectors -update")
	return b
}

// vectorKeys caches the committed keys: RSA parsing is slow enough to
// matter in the fuzz targets.
var vectorKeys sync.Map

func vectorKey(t testing.TB, alg signature.Algorithm) crypto.Signer {
	t.Helper()
	if k, ok := vectorKeys.Load(alg); ok {
		return k.(crypto.Signer)
	}
	k, err := signature.ParsePrivateKeyPEM(readVector(t, selectorFor(alg)+".key.pem"))
	require.NoError(t, err)
	vectorKeys.Store(alg, k)
	return k
}

func vectorSigner(t testing.TB, alg signature.Algorithm) *signature.Signer {
	t.Helper()
	s, err := signature.NewSigner(testDomain, selectorFor(alg), vectorKey(t, alg))
	require.NoError(t, err)
	return s
}

// keyMap is a KeyResolver over fixed keys, indexed by "<domain>:<selector>".
type keyMap map[string]crypto.PublicKey

func keyName(domain, selector string) string { return domain + ":" + selector }

func (m keyMap) PublicKey(_ context.Context, domain, selector string) (crypto.PublicKey, error) {
	if k, ok := m[keyName(domain, selector)]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: no key %s:%s", signature.ErrKeyNotFound, domain, selector)
}

// vectorTime is inside the freshness window of the vectors' timestamp.
var vectorTime = time.Date(2025, 8, 14, 11, 0, 0, 0, time.UTC)

// vectorVerifier knows the public halves of all vector keys.
func vectorVerifier(t testing.TB) *signature.Verifier {
	t.Helper()
	keys := keyMap{}
	for _, alg := range algorithms {
		keys[keyName(testDomain, selectorFor(alg))] = vectorKey(t, alg).Public()
	}
	return &signature.Verifier{Keys: keys, Now: func() time.Time { return vectorTime }}
}
