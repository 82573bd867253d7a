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
// The token itself (JWS parsing, the algorithm allow-list, signatures and the
// exp, nbf, iat, iss and aud checks) is handled by github.com/golang-jwt/jwt;
// the issuer's keys are read with github.com/MicahParks/jwkset. What stays
// here is policy those libraries leave to their callers: which claims must
// have which JSON types, which keys are strong enough, refusing critical
// header extensions, and when the key set is fetched.
//
// Keys are fetched with the caller's HTTP client, which must be the netguard
// client: the JWKS URL is configuration, but the discovery document that can
// name it is not. See Verifier for how the key cache behaves when the
// issuer rotates keys or is down.
package jwtauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agentry/agentry/internal/core/amtp"
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
	cfg    Config
	parser *jwt.Parser
	// checks applies the parser's claim rules on their own, so that a token
	// whose claims fail them is refused before any key is fetched.
	checks *jwt.Validator

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
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{RS256, ES256, EdDSA}),
		jwt.WithStrictDecoding(), // one spelling per token: no padding, no stray bits
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	return &Verifier{cfg: cfg, parser: jwt.NewParser(opts...), checks: jwt.NewValidator(opts...), jwksURL: cfg.JWKSURL}, nil
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
// The checks that need no key come first (in keyFor), so that a token from
// some other issuer, or an expired one, never causes a JWKS fetch.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	// Bounding the size first means no attacker-sized input reaches the
	// base64 and JSON decoders; checking the shape first keeps a token with
	// line breaks or padding from being read as something else.
	if len(token) > MaxTokenBytes {
		return Claims{}, reject("bearer token is larger than %d bytes", MaxTokenBytes)
	}
	if _, _, _, ok := split(token); !ok {
		return Claims{}, reject("bearer token is not a JWT (three base64url segments)")
	}
	c := &tokenClaims{}
	tok, err := v.parser.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t, c) })
	if err != nil {
		return Claims{}, v.explain(err, tok, c)
	}
	return c.Claims, nil
}

// reject builds the error for a token that is not acceptable. The message
// never quotes the token: it may be valid for some other audience.
func reject(format string, args ...any) *amtp.Error {
	return amtp.Errorf(amtp.CodeAuthenticationRequired, format, args...)
}

// keyFor is the jwt.Keyfunc: it runs once the library has decoded the token
// and accepted its algorithm, and checks what the library does not (or not
// yet) before it looks up the keys that may have signed it.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token, c *tokenClaims) (any, error) {
	kid, err := headerString(t.Header, "kid")
	if err != nil {
		return nil, err
	}
	// RFC 7515 §4.1.11: an extension the recipient does not understand
	// and is told is critical must make it reject the token. We
	// understand none, and the library does not look.
	if _, ok := t.Header["crit"]; ok {
		return nil, reject("bearer token has critical header extensions, none are supported")
	}
	if !c.decoded { // the payload was JSON null
		return nil, reject("bearer token payload is not a JSON object")
	}
	if err := v.checks.Validate(c); err != nil {
		return nil, claimsError(err, c)
	}
	alg := t.Method.Alg()
	if err := checkSignatureLength(alg, t.Signature); err != nil {
		return nil, err
	}
	keys, err := v.candidates(ctx, alg, kid)
	if err != nil {
		return nil, err
	}
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.pub)
	}
	return set, nil
}

// explain turns the library's error into ours. Errors of our own (from
// keyFor, or from the claims' decoding) pass through; the library's are
// told apart by how far it got with the token, in the order the token is
// read: header, algorithm, payload, signature.
func (v *Verifier) explain(err error, tok *jwt.Token, c *tokenClaims) error {
	if errors.Is(err, ErrKeysUnavailable) {
		return err
	}
	if tok == nil || tok.Header == nil {
		return reject("bearer token header is malformed")
	}
	alg, err2 := headerString(tok.Header, "alg")
	if err2 != nil {
		return err2
	}
	if !slices.Contains([]string{RS256, ES256, EdDSA}, alg) {
		return reject("bearer token algorithm %q is not accepted (RS256, ES256 or EdDSA)", clip(alg))
	}
	if e, ok := amtp.AsError(err); ok {
		return e
	}
	var b64 base64.CorruptInputError
	switch {
	case !c.decoded && errors.As(err, &b64):
		return reject("bearer token payload is not base64url")
	case !c.decoded:
		return reject("bearer token payload is not a JSON object")
	case errors.As(err, &b64):
		return reject("bearer token signature is not base64url")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return claimsError(err, c)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return reject("bearer token signature does not verify")
	}
	return reject("bearer token is not acceptable")
}

// claimsError says which of the library's claim checks failed, in the
// order issuer, audience, expiry, nbf, iat. A missing claim the library
// requires is told by which one our decoding found absent.
func claimsError(err error, c *tokenClaims) *amtp.Error {
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	switch {
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), missing && c.Issuer == "":
		return reject("bearer token issuer %q is not trusted", clip(c.Issuer))
	case errors.Is(err, jwt.ErrTokenInvalidAudience), missing && !slices.ContainsFunc(c.Audience, func(a string) bool { return a != "" }):
		return reject("bearer token is not intended for this audience")
	case missing && c.exp == nil:
		return reject("bearer token has no expiry (exp)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return reject("bearer token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return reject("bearer token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reject("bearer token was issued in the future (iat)")
	}
	return reject("bearer token claims are not acceptable")
}

func headerString(h map[string]any, name string) (string, error) {
	raw, ok := h[name]
	if !ok {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", reject("bearer token header %q is not a string", name)
	}
	return s, nil
}

// checkSignatureLength refuses signatures no key for alg could have made
// before any key is fetched. RS256 signatures are as long as the modulus,
// which only the key tells, so they are only bounded.
func checkSignatureLength(alg string, sig []byte) error {
	n := len(sig)
	switch alg {
	case RS256:
		if n < minRSABits/8 || n > maxRSABits/8 {
			return reject("bearer token signature has the wrong length for %s", alg)
		}
	case ES256, EdDSA:
		if n != 64 {
			return reject("bearer token signature has the wrong length for %s", alg)
		}
	}
	return nil
}

// tokenClaims is the payload as the library sees it (jwt.Claims). Decoding
// it applies our typing rules, stricter than the library's: the library
// would, for one, take a date in the year 31 million as a valid exp.
type tokenClaims struct {
	Claims
	exp, nbf, iat *jwt.NumericDate
	decoded       bool // false when the payload was null
}

func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.nbf, nil }
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.iat, nil }
func (c *tokenClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *tokenClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }

// UnmarshalJSON decodes the payload and checks the types of the claims the
// gateway reads. Its errors are *amtp.Error, which the library passes on.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil || p == nil {
		return reject("bearer token payload is not a JSON object")
	}
	out := Claims{Raw: p}
	var err error
	if out.Issuer, err = stringClaim(p, "iss"); err != nil {
		return err
	}
	if out.Audience, err = stringsClaim(p, "aud"); err != nil {
		return err
	}
	if out.Subject, err = stringClaim(p, "sub"); err != nil {
		return err
	}
	if out.Scopes, err = scopes(p); err != nil {
		return err
	}
	dates := map[string]**jwt.NumericDate{"exp": &c.exp, "nbf": &c.nbf, "iat": &c.iat}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if *dates[name], err = dateClaim(p, name); err != nil {
			return err
		}
	}
	if c.exp != nil {
		out.Expiry = c.exp.Time
	}
	c.Claims, c.decoded = out, true
	return nil
}

// scopes reads `scope` (RFC 8693/9068, space separated) or, when that is
// absent, `scp` (an array, or a space-separated string as some issuers
// write it).
func scopes(p map[string]any) ([]string, error) {
	if _, ok := p["scope"]; ok {
		s, err := stringClaim(p, "scope")
		return strings.Fields(s), err
	}
	scp, err := stringsClaim(p, "scp")
	if err == nil && len(scp) == 1 {
		scp = strings.Fields(scp[0])
	}
	return scp, err
}

// maxNumericDate is 9999-12-31T23:59:59Z. Bounding dates keeps the float
// to integer conversion defined and refuses "never expires" by another name.
const maxNumericDate = 253402300799

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

// dateClaim reads a NumericDate, which may have a fraction; nil if absent.
func dateClaim(p map[string]any, name string) (*jwt.NumericDate, error) {
	v, ok := p[name]
	if !ok {
		return nil, nil
	}
	f, ok := v.(float64)
	if !ok || f < 0 || f > maxNumericDate {
		return nil, reject("bearer token claim %q is not a valid date", name)
	}
	sec, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
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
	raw, err := jwt.NewParser(jwt.WithStrictDecoding()).DecodeSegment(h)
	if err != nil {
		return false
	}
	var header map[string]json.RawMessage
	if json.Unmarshal(raw, &header) != nil {
		return false
	}
	_, ok = header["alg"]
	return ok
}

// split cuts a compact JWS into its three segments, checking the alphabet
// (the base64 decoder would otherwise skip line breaks). The signature may
// be empty here so that an unsecured token is reported as such.
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

// clip keeps attacker-supplied text in error messages short.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
