package jwtauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
)

// JWKS limits. Real key sets hold a handful of keys in a few KiB; the
// bounds stop a compromised or confused endpoint from making every
// verifier parse megabytes or try hundreds of keys.
const (
	maxJWKSBytes = 64 << 10
	maxJWKSKeys  = 100
)

// RSA modulus bounds. Below 2048 bits RSA is no longer considered safe;
// above 8192 a key costs every verification real time for no gain.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// minFetchInterval spaces JWKS fetches (see Verifier).
const minFetchInterval = 30 * time.Second

// fetchTimeout bounds one fetch (discovery included). The fetch is shared
// and outlives the caller that started it, so it cannot rely on that
// caller's deadline, nor on Client having a timeout.
const fetchTimeout = 15 * time.Second

// jwk is one key of the set. A key that cannot be used (unsupported type,
// too weak, malformed) is kept with err set rather than dropped, so that a
// token naming it is refused for that reason and does not count as an
// unknown kid that would trigger a refetch.
type jwk struct {
	kid string
	kty string // RSA, EC or OKP
	alg string // optional: the one algorithm the key may be used with
	use string // optional: must be "sig"
	pub crypto.PublicKey
	err error
}

// fits reports why k cannot verify a signature made with alg, if it cannot.
func (k *jwk) fits(alg string) error {
	if k.err != nil {
		return k.err
	}
	var ok bool
	switch alg {
	case RS256:
		_, ok = k.pub.(*rsa.PublicKey)
	case ES256:
		_, ok = k.pub.(*ecdsa.PublicKey) // P-256 is the only curve parsed
	case EdDSA:
		_, ok = k.pub.(ed25519.PublicKey)
	}
	switch {
	case !ok:
		return fmt.Errorf("key type is %s", clip(k.kty))
	case k.use != "" && k.use != "sig":
		return fmt.Errorf("key use is %q", clip(k.use))
	case k.alg != "" && k.alg != alg:
		return fmt.Errorf("key is for %s", clip(k.alg))
	}
	return nil
}

type keySet struct {
	keys    []*jwk
	fetched time.Time // when the fetch that produced the set started
}

func (s *keySet) has(kid string) bool {
	return slices.ContainsFunc(s.keys, func(k *jwk) bool { return k.kid == kid })
}

// candidates returns the keys that may have signed a token with alg and
// kid: those with its kid that fit its alg or, for a token without a kid,
// the only key that fits. A kid missing from the cache triggers a refetch
// (rate limited).
func (v *Verifier) candidates(ctx context.Context, alg, kid string) ([]*jwk, error) {
	set, err := v.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	if kid == "" {
		fit := slices.DeleteFunc(slices.Clone(set.keys), func(k *jwk) bool { return k.fits(alg) != nil })
		if len(fit) != 1 {
			return nil, reject("bearer token has no kid and the issuer has %d keys for %s", len(fit), alg)
		}
		return fit, nil
	}
	if !set.has(kid) {
		if set, err = v.keys(ctx, true); err != nil {
			return nil, err
		}
		if !set.has(kid) {
			return nil, reject("bearer token key %q is not one of the issuer's", clip(kid))
		}
	}
	var fit []*jwk
	var why error
	for _, k := range set.keys {
		if k.kid != kid {
			continue
		}
		if err := k.fits(alg); err != nil {
			why = err
			continue
		}
		fit = append(fit, k)
	}
	if len(fit) == 0 {
		return nil, reject("bearer token key %q cannot verify %s: %v", clip(kid), alg, why)
	}
	return fit, nil
}

// keys returns the key set to verify with, fetching it when the cache is
// empty or expired or, with refresh, when the caller is looking for a kid
// the cache does not have. The rules are on Verifier.
func (v *Verifier) keys(ctx context.Context, refresh bool) (*keySet, error) {
	v.mu.Lock()
	now := v.cfg.Now()
	fresh := v.set != nil && now.Before(v.set.fetched.Add(v.cfg.CacheTTL))
	if fresh && !refresh {
		defer v.mu.Unlock()
		return v.set, nil
	}
	if v.running == nil && v.mayFetch(now, fresh) {
		v.startFetch(ctx, now)
	}
	done := v.running
	if done == nil {
		defer v.mu.Unlock()
		return v.usable(now)
	}
	v.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, context.Cause(ctx))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.usable(v.cfg.Now())
}

// mayFetch applies the spacing rule: no fetch within minFetchInterval of
// the previous one, except the first attempt after the cache has expired,
// so that a CacheTTL shorter than the interval is still honoured.
func (v *Verifier) mayFetch(now time.Time, fresh bool) bool {
	switch {
	case v.lastTry.IsZero(), now.Sub(v.lastTry) >= minFetchInterval:
		return true
	case !fresh && v.set != nil:
		return v.lastTry.Before(v.set.fetched.Add(v.cfg.CacheTTL))
	}
	return false
}

// usable returns the cached set if it is fresh or stale by less than
// CacheTTL, and otherwise why there is none.
func (v *Verifier) usable(now time.Time) (*keySet, error) {
	if v.set != nil && now.Before(v.set.fetched.Add(2*v.cfg.CacheTTL)) {
		return v.set, nil
	}
	err := v.lastErr
	if err == nil {
		err = errors.New("no keys fetched yet")
	}
	return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
}

// startFetch runs a fetch in the background; v.mu must be held. The
// fetch keeps the context's values (tracing) but not its cancellation.
func (v *Verifier) startFetch(ctx context.Context, now time.Time) {
	done := make(chan struct{})
	v.running = done
	v.lastTry = now
	jwksURL := v.jwksURL
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		keys, discovered, err := v.fetch(fctx, jwksURL)

		v.mu.Lock()
		defer v.mu.Unlock()
		if discovered != "" {
			v.jwksURL = discovered
		}
		if err != nil {
			v.lastErr = err
		} else {
			v.set = &keySet{keys: keys, fetched: now}
			v.lastErr = nil
		}
		v.running = nil
		close(done)
	}()
}

// fetch reads the JWKS, discovering its URL first if it is not known yet.
func (v *Verifier) fetch(ctx context.Context, jwksURL string) (keys []*jwk, discovered string, err error) {
	if jwksURL == "" {
		if jwksURL, err = v.discover(ctx); err != nil {
			return nil, "", err
		}
		discovered = jwksURL
	}
	body, err := v.get(ctx, jwksURL)
	if err != nil {
		return nil, discovered, err
	}
	keys, err = parseJWKS(body)
	if err != nil {
		return nil, discovered, fmt.Errorf("JWKS at %s: %w", jwksURL, err)
	}
	return keys, discovered, nil
}

// discover reads jwks_uri from the issuer's OpenID configuration. The
// document must name the same issuer (OpenID Connect Discovery §4.3):
// otherwise one issuer's document could direct us to another's keys.
func (v *Verifier) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	body, err := v.get(ctx, u)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI string  `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery document %s: %w", u, err)
	}
	if doc.Issuer != nil && *doc.Issuer != v.cfg.Issuer {
		return "", fmt.Errorf("discovery document %s names issuer %q", u, clip(*doc.Issuer))
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery document %s: jwks_uri: %w", u, err)
	}
	return doc.JWKSURI, nil
}

// get fetches a small JSON document. The content type is not checked:
// issuers variously send application/json, application/jwk-set+json and
// text/plain, and the body is parsed strictly anyway.
func (v *Verifier) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetching %s: response is larger than %d bytes", u, maxJWKSBytes)
	}
	return body, nil
}

// parseJWKS reads a JWK Set. Keys that cannot be used are kept, marked
// (see jwk); a set that is not a JWK Set at all is an error, so that a
// broken response does not replace good cached keys.
func parseJWKS(body []byte) ([]*jwk, error) {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New("not a JWK Set: no keys member")
	}
	if n := len(*set.Keys); n > maxJWKSKeys {
		return nil, fmt.Errorf("%d keys, more than %d", n, maxJWKSKeys)
	}
	keys := make([]*jwk, 0, len(*set.Keys))
	for _, raw := range *set.Keys {
		if !bytes.HasPrefix(raw, []byte("{")) {
			return nil, errors.New("a key is not a JSON object")
		}
		keys = append(keys, parseJWK(raw))
	}
	return keys, nil
}

// parseJWK reads one key with jwkset, then applies our policy to it.
func parseJWK(raw json.RawMessage) *jwk {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return &jwk{err: fmt.Errorf("key is malformed: %w", err)}
	}
	k := &jwk{kid: m.KID, kty: string(m.KTY), alg: string(m.ALG), use: string(m.USE)}
	switch m.KTY {
	case jwkset.KtyRSA, jwkset.KtyEC, jwkset.KtyOKP:
	default:
		// Symmetric keys above all: an issuer has no business publishing
		// one, and it must never be taken for a verification key.
		k.err = fmt.Errorf("key type %q is not supported", clip(k.kty))
		return k
	}
	if m.KEYOPS != nil && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		k.err = errors.New("key_ops does not allow verify")
		return k
	}
	// A published private part is ignored (Private: false); x5u is never
	// fetched, since jwkset only does so when given a GetX5U.
	parsed, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		k.err = fmt.Errorf("key is not usable: %w", err)
		return k
	}
	k.pub, k.err = strongEnough(parsed.Key())
	return k
}

// strongEnough applies what jwkset leaves to its callers: RSA size and
// exponent bounds, and the one curve each algorithm is used with here.
func strongEnough(key any) (crypto.PublicKey, error) {
	switch pub := key.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, want %d to %d", bits, minRSABits, maxRSABits)
		}
		// An even or tiny exponent is not a real RSA key.
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("RSA exponent %d is not acceptable", pub.E)
		}
		// crypto/rsa verifies nothing with an even modulus: say so here,
		// where the key is marked, rather than fail every token as a bad
		// signature.
		if pub.N.Bit(0) == 0 {
			return nil, errors.New("RSA modulus is even")
		}
		return pub, nil
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC curve %s is not supported", pub.Curve.Params().Name)
		}
		return pub, nil
	case ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("key of type %T is not supported", key)
}
