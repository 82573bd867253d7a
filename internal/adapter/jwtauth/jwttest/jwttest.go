// Package jwttest runs a fake OAuth 2.0 authorization server for tests: it
// publishes an OpenID configuration and a JWKS, and mints tokens with its
// key. It is for tests only; keys are generated per Issuer and never saved.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Issuer is a running fake authorization server.
type Issuer struct {
	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	signer      *key
	extra       []*key // published but never used by Mint
	override    http.Handler
	serial      int
	fetches     int
	discoveries int
}

type key struct {
	alg  string
	kid  string
	priv crypto.Signer
}

// NewIssuer starts an issuer on an httptest TLS server, with a fresh key for
// alg (RS256, ES256 or EdDSA). It is closed when the test ends.
func NewIssuer(t testing.TB, alg string) *Issuer {
	t.Helper()
	return start(t, alg, httptest.NewTLSServer)
}

// NewHTTPIssuer is NewIssuer on plain http. The netguard client builds its
// own transport and cannot be told to trust the test certificate, so code
// under test that makes its own netguard client (with AllowInsecure) needs
// an issuer it can reach without TLS.
func NewHTTPIssuer(t testing.TB, alg string) *Issuer {
	t.Helper()
	return start(t, alg, httptest.NewServer)
}

func start(t testing.TB, alg string, newServer func(http.Handler) *httptest.Server) *Issuer {
	t.Helper()
	iss := &Issuer{t: t}
	iss.signer = iss.newKey(alg)
	iss.srv = newServer(http.HandlerFunc(iss.serve))
	t.Cleanup(iss.srv.Close)
	return iss
}

func (iss *Issuer) newKey(alg string) *key {
	iss.t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		iss.t.Fatalf("jwttest: unsupported algorithm %q", alg)
	}
	if err != nil {
		iss.t.Fatalf("jwttest: generating %s key: %v", alg, err)
	}
	iss.serial++
	return &key{alg: alg, kid: fmt.Sprintf("key-%d-%s", iss.serial, alg), priv: priv}
}

func (iss *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	iss.mu.Lock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		iss.discoveries++
		iss.mu.Unlock()
		writeJSON(w, map[string]any{"issuer": iss.URL(), "jwks_uri": iss.JWKSURL()})
	case "/jwks.json":
		iss.fetches++
		if h := iss.override; h != nil {
			iss.mu.Unlock()
			h.ServeHTTP(w, r)
			return
		}
		set := iss.jwksLocked()
		iss.mu.Unlock()
		writeJSON(w, set)
	default:
		iss.mu.Unlock()
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// URL is the issuer identifier, the `iss` Mint writes.
func (iss *Issuer) URL() string { return iss.srv.URL }

// JWKSURL is where the key set is served.
func (iss *Issuer) JWKSURL() string { return iss.srv.URL + "/jwks.json" }

// Client returns an http.Client that trusts the server's certificate.
func (iss *Issuer) Client() *http.Client { return iss.srv.Client() }

// Alg is the algorithm Mint signs with.
func (iss *Issuer) Alg() string { return iss.current().alg }

// Kid is the kid of the key Mint signs with.
func (iss *Issuer) Kid() string { return iss.current().kid }

// PublicKey is the public half of the key Mint signs with.
func (iss *Issuer) PublicKey() crypto.PublicKey { return iss.current().priv.Public() }

func (iss *Issuer) current() *key {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.signer
}

// Mint signs claims with the current key, with a header of alg, kid and
// typ "at+jwt". Unless claims say otherwise it adds iss (URL), iat (now)
// and exp (an hour from now); a claim set to nil is left out, which is how
// to mint a token without exp. Mint adds no aud.
func (iss *Issuer) Mint(claims map[string]any) string {
	k := iss.current()
	return iss.MintWith(map[string]any{"alg": k.alg, "kid": k.kid, "typ": "at+jwt"}, claims)
}

// MintWith is Mint with the header exactly as given: it is for tokens that
// lie about their algorithm or key. The signature is always made with the
// current key, by its own algorithm, whatever the header says.
func (iss *Issuer) MintWith(header, claims map[string]any) string {
	iss.t.Helper()
	k := iss.current()
	now := time.Now()
	full := map[string]any{"iss": iss.URL(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	maps.Copy(full, claims)
	maps.DeleteFunc(full, func(_ string, v any) bool { return v == nil })
	input := segment(iss.t, header) + "." + segment(iss.t, full)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(iss.t, k, input))
}

func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("jwttest: encoding token part: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sign(t testing.TB, k *key, input string) []byte {
	t.Helper()
	digest := sha256.Sum256([]byte(input))
	var (
		sig []byte
		err error
	)
	switch priv := k.priv.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, priv, digest[:]); err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, []byte(input))
	}
	if err != nil {
		t.Fatalf("jwttest: signing: %v", err)
	}
	return sig
}

// Rotate replaces the signing key with a new one of the same algorithm and
// a new kid; the old key is no longer published.
func (iss *Issuer) Rotate() {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.signer = iss.newKey(iss.signer.alg)
}

// AddKey publishes another key of alg, which Mint never uses, and returns
// its kid. It is for key sets with more than one key.
func (iss *Issuer) AddKey(alg string) string {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	k := iss.newKey(alg)
	iss.extra = append(iss.extra, k)
	return k.kid
}

// SetJWKSHandler makes h answer JWKS requests (which are still counted),
// to simulate an issuer that is down or misbehaving; nil restores the
// real key set.
func (iss *Issuer) SetJWKSHandler(h http.Handler) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.override = h
}

// Fetches is the number of JWKS requests served so far.
func (iss *Issuer) Fetches() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.fetches
}

// Discoveries is the number of OpenID configuration requests served so far.
func (iss *Issuer) Discoveries() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.discoveries
}

// jwksLocked is the key set as served; iss.mu must be held.
func (iss *Issuer) jwksLocked() map[string]any {
	keys := []any{publicJWK(iss.signer)}
	for _, k := range iss.extra {
		keys = append(keys, publicJWK(k))
	}
	return map[string]any{"keys": keys}
}

// publicJWK is the RFC 7517 form of k's public half.
func publicJWK(k *key) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": k.kid, "alg": k.alg, "use": "sig"}
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(pub.N.Bytes())
		m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		point, _ := pub.Bytes() // 0x04 || x || y, 32 bytes each on P-256
		m["kty"], m["crv"] = "EC", "P-256"
		m["x"], m["y"] = b64(point[1:33]), b64(point[33:])
	case ed25519.PublicKey:
		m["kty"], m["crv"] = "OKP", "Ed25519"
		m["x"] = b64(pub)
	}
	return m
}
