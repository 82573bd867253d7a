// Package jwtauth verifies OAuth 2.0 bearer tokens that are JWTs (RFC 7519,
// RFC 9068) issued by one configured authorization server and signed with a
// key from its published JWKS (RFC 7517).
//
// It is deliberately narrow. The only algorithms are RS256, ES256 and EdDSA
// (Ed25519); "none", the HMAC family and everything else are refused before
// any key is looked at, so a token cannot choose to be checked with a
// shared secret (the classic trick of HMAC-signing with the issuer's public
// key). A key is only used for the algorithm its type fits, and never comes
// from the token itself (jwk, jku, x5u and x5c headers are ignored).
//
// Keys are fetched with the caller's HTTP client, which must be the netguard
// client: the JWKS URL is configuration, but the discovery document that can
// name it is not. See Verifier for how the key cache behaves when the
// issuer rotates keys or is down.
package jwtauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/amtp"
)

// Limits. A bearer token travels in a header, and servers commonly refuse
// headers much larger than 8 KiB anyway; bounding it first means no
// attacker-sized input reaches the base64 and JSON decoders.
const (
	MaxTokenBytes = 8 << 10

	DefaultCacheTTL = 10 * time.Minute
	DefaultLeeway   = 60 * time.Second
)

// The supported algorithms, by their JOSE names.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// ErrKeysUnavailable means the issuer's keys could not be obtained (network
// failure, bad status, unparsable or oversized JWKS) and nothing usable was
// cached. It says nothing about the token, so callers should answer 503,
// not 401: a client told its token is bad would throw away a good one.
var ErrKeysUnavailable = errors.New("jwtauth: issuer keys unavailable")

// Config configures a Verifier.
type Config struct {
	// Issuer is the exact `iss` tokens must carry. It should be an https
	// URL; New cannot tell whether Client would allow anything else.
	Issuer string
	// Audience must be one of the token's `aud` values. Checking it is what
	// stops a token minted for another service of the same issuer from
	// being replayed here.
	Audience string
	// JWKSURL is where the keys are. If empty, it is read once from the
	// jwks_uri of Issuer + "/.well-known/openid-configuration" and kept for
	// the Verifier's lifetime.
	JWKSURL string
	// Client fetches the discovery document and the JWKS. It must be the
	// netguard client, so neither can be pointed at internal addresses.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CacheTTL is how long a fetched JWKS is used before it is fetched
	// again; zero means DefaultCacheTTL. It also sets how long stale keys
	// are kept in use while the issuer is unreachable (see Verifier).
	CacheTTL time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; zero means
	// DefaultLeeway.
	Leeway time.Duration
}

// Claims is what a verified token says. Only the claims the gateway needs
// are lifted out; the rest are in Raw, decoded as encoding/json does into
// an any (numbers are float64).
type Claims struct {
	Subject  string
	Issuer   string
	Audience []string
	// Scopes come from `scope` (RFC 8693/9068, space separated) or, when
	// that is absent, from `scp` (an array, or a space-separated string as
	// some issuers write it).
	Scopes []string
	Expiry time.Time
	Raw    map[string]any
}

// HasScope reports whether the token grants s.
func (c Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

// String returns the string claim name, or "" if it is absent or not a
// string, so callers do not have to type-assert on Raw.
func (c Claims) String(name string) string {
	s, _ := c.Raw[name].(string)
	return s
}

// Verifier checks bearer JWTs. It is safe for concurrent use.
//
// Key cache: the JWKS is fetched on first use and again once it is older
// than CacheTTL. A token whose kid is not in the cached set causes a
// refetch, since the issuer may have rotated its keys, but no fetch starts
// within 30 seconds of the previous one (other than the first after the
// cache expires, for a CacheTTL under 30 seconds), so a flood of tokens
// with made-up kids costs the issuer at most one request per 30 seconds.
// A token with a new kid is therefore refused until 30 seconds after the
// last fetch; issuers publish new keys ahead of using them for this.
// Concurrent callers that need a fetch share one; a caller whose context
// ends stops waiting, but the fetch carries on for the others.
//
// If a refresh fails once the cache has expired, the old keys stay in use
// for up to another CacheTTL: an issuer that is briefly down should not
// lock every client out, and keys it has revoked in the meantime could not
// have been learnt about anyway. A failed fetch is retried no sooner than
// 30 seconds later. Only when there are no keys at all, or the stale ones
// are older than twice CacheTTL, does Verify return ErrKeysUnavailable.
type Verifier struct {
	cfg Config

	mu      sync.Mutex
	jwksURL string        // cfg.JWKSURL, or the discovered jwks_uri once known
	set     *keySet       // the last JWKS fetched successfully
	lastTry time.Time     // when the latest fetch started
	lastErr error         // why the latest fetch failed; nil after a success
	running chan struct{} // closed when the fetch in progress ends
}

// New checks cfg and returns a Verifier. Nothing is fetched until the first
// Verify, so a Verifier can be built while the issuer is unreachable.
func New(cfg Config) (*Verifier, error) {
	if err := checkURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("jwtauth: issuer: %w", err)
	}
	if cfg.Audience == "" {
		return nil, errors.New("jwtauth: audience is required")
	}
	if cfg.Client == nil {
		return nil, errors.New("jwtauth: HTTP client is required")
	}
	if cfg.JWKSURL != "" {
		if err := checkURL(cfg.JWKSURL); err != nil {
			return nil, fmt.Errorf("jwtauth: JWKS URL: %w", err)
		}
	}
	if cfg.CacheTTL < 0 || cfg.Leeway < 0 {
		return nil, errors.New("jwtauth: cache TTL and leeway cannot be negative")
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The netguard client already refuses redirects; a copy makes sure of it
	// whatever client is passed, since a redirect would hand the choice of
	// key source to whoever can answer at the JWKS URL.
	client := *cfg.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.Client = &client
	return &Verifier{cfg: cfg, jwksURL: cfg.JWKSURL}, nil
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// Verify checks token and returns its claims. A token that is not
// acceptable, for whatever reason, gives an *amtp.Error with code
// AUTHENTICATION_REQUIRED; an error wrapping ErrKeysUnavailable means the
// token could not be checked at all.
//
// The checks that need no key come first, so that a token from some other
// issuer, or an expired one, never causes a JWKS fetch.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	tok, err := parse(token)
	if err != nil {
		return Claims{}, err
	}
	claims, err := v.checkClaims(tok.payload)
	if err != nil {
		return Claims{}, err
	}
	if err := tok.checkSignatureLength(); err != nil {
		return Claims{}, err
	}
	keys, err := v.candidates(ctx, tok)
	if err != nil {
		return Claims{}, err
	}
	digest := sha256.Sum256([]byte(tok.signingInput))
	for _, k := range keys {
		if verifySignature(tok.alg, k.pub, tok.signingInput, digest[:], tok.signature) {
			return claims, nil
		}
	}
	return Claims{}, reject("bearer token signature does not verify")
}

// reject builds the error for a token that is not acceptable. The message
// never quotes the token: it may be valid for some other audience.
func reject(format string, args ...any) *amtp.Error {
	return amtp.Errorf(amtp.CodeAuthenticationRequired, format, args...)
}

// token is a JWS compact serialization, split and decoded.
type token struct {
	alg, kid     string
	payload      map[string]any
	signingInput string // the first two segments as received: what was signed
	signature    []byte
}

// strictB64 refuses padding and non-zero trailing bits so that every
// accepted token has exactly one spelling.
var strictB64 = base64.RawURLEncoding.Strict()

func parse(s string) (*token, error) {
	if len(s) > MaxTokenBytes {
		return nil, reject("bearer token is larger than %d bytes", MaxTokenBytes)
	}
	h, p, sig, ok := split(s)
	if !ok {
		return nil, reject("bearer token is not a JWT (three base64url segments)")
	}
	header, err := decodeObject(h)
	if err != nil {
		return nil, reject("bearer token header is malformed: %v", err)
	}
	tok := &token{signingInput: s[:len(h)+1+len(p)]}
	if tok.alg, err = headerString(header, "alg"); err != nil {
		return nil, err
	}
	switch tok.alg {
	case RS256, ES256, EdDSA:
	default:
		return nil, reject("bearer token algorithm %q is not accepted (RS256, ES256 or EdDSA)", clip(tok.alg))
	}
	if tok.kid, err = headerString(header, "kid"); err != nil {
		return nil, err
	}
	// RFC 7515 §4.1.11: an extension the recipient does not understand
	// and is told is critical must make it reject the token. We
	// understand none.
	if _, ok := header["crit"]; ok {
		return nil, reject("bearer token has critical header extensions, none are supported")
	}
	raw, err := strictB64.DecodeString(p)
	if err != nil {
		return nil, reject("bearer token payload is not base64url")
	}
	if err := json.Unmarshal(raw, &tok.payload); err != nil || tok.payload == nil {
		return nil, reject("bearer token payload is not a JSON object")
	}
	if tok.signature, err = strictB64.DecodeString(sig); err != nil {
		return nil, reject("bearer token signature is not base64url")
	}
	return tok, nil
}

// split cuts a compact JWS into its three segments, checking the alphabet
// (the base64 decoder would otherwise skip line breaks). The signature may
// be empty here so that an unsecured token is reported as such by parse.
func split(s string) (header, payload, sig string, ok bool) {
	header, rest, ok1 := strings.Cut(s, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || header == "" || payload == "" || strings.Contains(sig, ".") {
		return "", "", "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isB64URL(c) {
			return "", "", "", false
		}
	}
	return header, payload, sig, true
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// decodeObject decodes a base64url JSON object with its members kept raw,
// so that each one is looked up by its exact name (encoding/json would
// match struct fields case-insensitively).
func decodeObject(seg string) (map[string]json.RawMessage, error) {
	raw, err := strictB64.DecodeString(seg)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func headerString(h map[string]json.RawMessage, name string) (string, error) {
	raw, ok := h[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", reject("bearer token header %q is not a string", name)
	}
	return s, nil
}

// checkSignatureLength refuses signatures no key for alg could have made
// before any key is fetched. RS256 signatures are as long as the modulus,
// which only the key tells, so they are only bounded.
func (t *token) checkSignatureLength() error {
	n := len(t.signature)
	switch t.alg {
	case RS256:
		if n < minRSABits/8 || n > maxRSABits/8 {
			return reject("bearer token signature has the wrong length for %s", t.alg)
		}
	case ES256, EdDSA:
		if n != 64 {
			return reject("bearer token signature has the wrong length for %s", t.alg)
		}
	}
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z. Bounding dates keeps the float
// to integer conversion defined and refuses "never expires" by another name.
const maxNumericDate = 253402300799

func (v *Verifier) checkClaims(p map[string]any) (Claims, error) {
	c := Claims{Raw: p}
	var err error
	if c.Issuer, err = stringClaim(p, "iss"); err != nil {
		return Claims{}, err
	}
	if c.Issuer != v.cfg.Issuer {
		return Claims{}, reject("bearer token issuer %q is not trusted", clip(c.Issuer))
	}
	if c.Audience, err = stringsClaim(p, "aud"); err != nil {
		return Claims{}, err
	}
	if !slices.Contains(c.Audience, v.cfg.Audience) {
		return Claims{}, reject("bearer token is not intended for this audience")
	}
	if c.Subject, err = stringClaim(p, "sub"); err != nil {
		return Claims{}, err
	}

	now, leeway := v.cfg.Now(), v.cfg.Leeway
	exp, ok, err := dateClaim(p, "exp")
	switch {
	case err != nil:
		return Claims{}, err
	case !ok:
		return Claims{}, reject("bearer token has no expiry (exp)")
	case !now.Before(exp.Add(leeway)):
		return Claims{}, reject("bearer token has expired")
	}
	c.Expiry = exp
	nbf, ok, err := dateClaim(p, "nbf")
	if err != nil {
		return Claims{}, err
	}
	if ok && now.Add(leeway).Before(nbf) {
		return Claims{}, reject("bearer token is not valid yet (nbf)")
	}
	iat, ok, err := dateClaim(p, "iat")
	if err != nil {
		return Claims{}, err
	}
	if ok && now.Add(leeway).Before(iat) {
		return Claims{}, reject("bearer token was issued in the future (iat)")
	}

	if _, ok := p["scope"]; ok {
		s, err := stringClaim(p, "scope")
		if err != nil {
			return Claims{}, err
		}
		c.Scopes = strings.Fields(s)
	} else if c.Scopes, err = stringsClaim(p, "scp"); err != nil {
		return Claims{}, err
	} else if len(c.Scopes) == 1 {
		c.Scopes = strings.Fields(c.Scopes[0])
	}
	return c, nil
}

func stringClaim(p map[string]any, name string) (string, error) {
	v, ok := p[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", reject("bearer token claim %q is not a string", name)
	}
	return s, nil
}

// stringsClaim reads a claim that may be one string or an array of them,
// as aud is (RFC 7519 §4.1.3).
func stringsClaim(p map[string]any, name string) ([]string, error) {
	switch v := p[name].(type) {
	case nil:
		if _, present := p[name]; present {
			break
		}
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, reject("bearer token claim %q has a member that is not a string", name)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, reject("bearer token claim %q is neither a string nor an array of strings", name)
}

// dateClaim reads a NumericDate, which may have a fraction.
func dateClaim(p map[string]any, name string) (time.Time, bool, error) {
	v, ok := p[name]
	if !ok {
		return time.Time{}, false, nil
	}
	f, ok := v.(float64)
	if !ok || f < 0 || f > maxNumericDate {
		return time.Time{}, false, reject("bearer token claim %q is not a valid date", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// candidates returns the keys that may have signed tok: those with its kid
// that fit its alg or, for a token without a kid, the only key that fits.
// A kid missing from the cache triggers a refetch (rate limited).
func (v *Verifier) candidates(ctx context.Context, tok *token) ([]*jwk, error) {
	set, err := v.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	if tok.kid == "" {
		var fit []*jwk
		for _, k := range set.keys {
			if k.fits(tok.alg) == nil {
				fit = append(fit, k)
			}
		}
		if len(fit) != 1 {
			return nil, reject("bearer token has no kid and the issuer has %d keys for %s", len(fit), tok.alg)
		}
		return fit, nil
	}
	if !set.has(tok.kid) {
		if set, err = v.keys(ctx, true); err != nil {
			return nil, err
		}
		if !set.has(tok.kid) {
			return nil, reject("bearer token key %q is not one of the issuer's", clip(tok.kid))
		}
	}
	var fit []*jwk
	var why error
	for _, k := range set.keys {
		if k.kid != tok.kid {
			continue
		}
		if err := k.fits(tok.alg); err != nil {
			why = err
			continue
		}
		fit = append(fit, k)
	}
	if len(fit) == 0 {
		return nil, reject("bearer token key %q cannot verify %s: %v", clip(tok.kid), tok.alg, why)
	}
	return fit, nil
}

// verifySignature checks sig with a key that fits alg (jwk.fits).
func verifySignature(alg string, pub crypto.PublicKey, input string, digest, sig []byte) bool {
	switch alg {
	case RS256:
		return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest, sig) == nil
	case ES256:
		// JOSE writes r||s as two 32-byte integers (RFC 7518 §3.4), not
		// the ASN.1 structure crypto/ecdsa's VerifyASN1 expects.
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub.(*ecdsa.PublicKey), digest, r, s)
	case EdDSA:
		return ed25519.Verify(pub.(ed25519.PublicKey), []byte(input), sig)
	}
	return false
}

// LooksLikeJWT reports whether token is shaped like a JWS compact
// serialization: three base64url segments whose first is a JSON object
// with an "alg" member. It only routes a bearer token to Verify rather than
// the API-key lookup; it proves nothing. An unsecured token (empty third
// segment) counts, so that Verify can refuse it with a clear message.
func LooksLikeJWT(token string) bool {
	h, _, _, ok := split(token)
	if !ok || len(h) > MaxTokenBytes {
		return false
	}
	header, err := decodeObject(h)
	if err != nil {
		return false
	}
	_, ok = header["alg"]
	return ok
}

// clip keeps attacker-supplied text in error messages short.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
