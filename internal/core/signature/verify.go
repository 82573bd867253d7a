package signature

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// KeyResolver finds the public key published for a domain and selector
// (both already validated and lower-cased).
//
// The error tells Verify what the outcome is: one wrapping ErrKeyNotFound
// means no valid record is published (key_unavailable), one wrapping
// ErrKeyRecord that what is published is unusable (invalid); any other
// error is taken as a temporary failure (ErrKeyUnavailable).
type KeyResolver interface {
	PublicKey(ctx context.Context, domain, selector string) (crypto.PublicKey, error)
}

// RecordLookup adapts a key-record lookup, returning the alg= parameter
// and the decoded p= bytes of the one valid record, into a KeyResolver
// that parses and checks the key with ParsePublicKey.
type RecordLookup func(ctx context.Context, domain, selector string) (alg string, spki []byte, err error)

// PublicKey implements KeyResolver.
func (f RecordLookup) PublicKey(ctx context.Context, domain, selector string) (crypto.PublicKey, error) {
	alg, spki, err := f(ctx, domain, selector)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(alg, spki)
}

// Freshness defaults (shared/PROTOCOL.md "Domain signatures"): a signed
// message may be up to a week old, the retry window of its sender, and at
// most five minutes ahead of our clock.
const (
	DefaultMaxAge    = 7 * 24 * time.Hour
	DefaultClockSkew = 5 * time.Minute
)

// Verifier checks inbound signatures. The zero value is not usable: Keys is
// required. A Verifier is safe for concurrent use when Keys is.
type Verifier struct {
	Keys KeyResolver

	// MaxAge and ClockSkew bound the signed timestamp: older than MaxAge
	// or more than ClockSkew ahead is ErrExpired, which bounds how long a
	// captured message can be replayed beyond the idempotency window. Zero
	// means DefaultMaxAge and DefaultClockSkew.
	MaxAge    time.Duration
	ClockSkew time.Duration
	// Now is the clock for the window; nil means time.Now.
	Now func() time.Time

	// MaxBytes bounds the messages Verify accepts; zero means
	// DefaultMaxBytes. Set it to the gateway's MaxMessageBytes when that is
	// larger.
	MaxBytes int64
}

// Verified describes a signature: what was learned about it, also when
// Verify fails after reading it (for the sender_verification record).
type Verified struct {
	Domain    string // the sender's domain, lower-cased
	Selector  string // the keyid
	Algorithm Algorithm
}

// Verify checks the signature of raw, the message body exactly as it was
// received. It must not be given a re-marshalled amtp.Message: parsing
// normalises and would change the signed bytes.
//
// The checks run from cheapest to dearest, so a forged message costs no
// DNS query unless it is well formed: the message must be an I-JSON object
// (ErrMalformed), signed (ErrUnsigned) with a supported algorithm
// (ErrUnsupportedAlgorithm) under a selector keyid, carrying version,
// message_id, idempotency_key and timestamp (ErrMalformed), dated inside
// the freshness window (ErrExpired); exactly one valid key record must be
// found (ErrKeyNotFound, ErrKeyUnavailable, ErrKeyRecord) for the
// signature's algorithm (ErrAlgorithmMismatch); and the value must verify
// over CanonicalInput(raw) (ErrBadSignature). KindOf sorts the errors into
// the draft's results.
func (v *Verifier) Verify(ctx context.Context, raw []byte) (Verified, error) {
	var res Verified
	if v.Keys == nil {
		return res, errors.New("signature: verifier has no key resolver")
	}
	d, err := parseDocument(raw, v.MaxBytes)
	if err != nil {
		return res, fmt.Errorf("verifying: %w", err)
	}
	if domain, err := domainOfSender(d.sender); err == nil {
		res.Domain = domain
	}
	if d.signature == nil || string(d.signature) == "null" {
		return res, ErrUnsigned
	}
	sig, err := decodeSignatureMember(d.signature)
	if err != nil {
		return res, fmt.Errorf("verifying: %w", err)
	}
	alg, err := ParseAlgorithm(sig.algorithm)
	if err != nil {
		return res, fmt.Errorf("verifying: %w", err)
	}
	res.Algorithm = alg
	selector, err := ParseSelector(sig.keyID)
	if err != nil {
		return res, fmt.Errorf("verifying: %w", err)
	}
	res.Selector = selector
	if res.Domain == "" {
		_, err := domainOfSender(d.sender)
		return res, fmt.Errorf("verifying: %w", err)
	}
	if len(d.missing) > 0 {
		return res, fmt.Errorf("%w: a signed delivery must carry %s", ErrMalformed, strings.Join(d.missing, ", "))
	}
	value, err := decodeValue(alg, sig.value)
	if err != nil {
		return res, fmt.Errorf("verifying: %w", err)
	}
	if err := v.checkAge(d.timestamp); err != nil {
		return res, fmt.Errorf("verifying: %w", err)
	}
	keyName := selector + "._amtpkey." + res.Domain
	pub, err := v.Keys.PublicKey(ctx, res.Domain, selector)
	switch {
	case err == nil:
	case errors.Is(err, ErrKeyNotFound), errors.Is(err, ErrKeyRecord):
		return res, fmt.Errorf("verifying with %s: %w", keyName, err)
	default:
		return res, fmt.Errorf("%w: looking up %s: %w", ErrKeyUnavailable, keyName, err)
	}
	keyAlg, err := AlgorithmFor(pub)
	if err != nil {
		return res, fmt.Errorf("verifying with %s: %w", keyName, err)
	}
	if keyAlg != alg {
		return res, fmt.Errorf("%w: %s is published for %s, the signature says %s", ErrAlgorithmMismatch, keyName, keyAlg, alg)
	}
	if err := verifyRaw(alg, pub, d.canonical, value); err != nil {
		return res, fmt.Errorf("verifying with %s: %w", keyName, err)
	}
	return res, nil
}

// signatureMember is the decoded signature object.
type signatureMember struct {
	algorithm, keyID, value string
}

// decodeSignatureMember reads the canonical JSON of the signature member.
// It accepts exactly the members algorithm, keyid and value, all strings;
// encoding/json would also match "Algorithm" or "VALUE" to the struct
// fields and ignore extra members, and such a loose reading of the one
// object the signature does not cover is where confusion attacks live.
func decodeSignatureMember(raw []byte) (signatureMember, error) {
	var s signatureMember
	if len(raw) == 0 || raw[0] != '{' {
		return s, fmt.Errorf("%w: signature is not an object", ErrMalformed)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return s, fmt.Errorf("%w: decoding signature: %w", ErrMalformed, err)
	}
	targets := map[string]*string{"algorithm": &s.algorithm, "keyid": &s.keyID, "value": &s.value}
	for name, v := range fields {
		dst, ok := targets[name]
		if !ok {
			return s, fmt.Errorf("%w: signature has unknown member %q", ErrMalformed, clip(name))
		}
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, dst) != nil {
			return s, fmt.Errorf("%w: signature.%s is not a string", ErrMalformed, name)
		}
	}
	if s.algorithm == "" {
		return s, fmt.Errorf("%w: signature has no algorithm", ErrMalformed)
	}
	if s.keyID == "" {
		return s, fmt.Errorf("%w: signature has no keyid", ErrMalformed)
	}
	if s.value == "" {
		return s, fmt.Errorf("%w: signature has no value", ErrMalformed)
	}
	return s, nil
}

// strictB64 is base64url without padding that also refuses non-zero
// trailing bits, so no two strings decode to the same signature.
var strictB64 = base64.RawURLEncoding.Strict()

// decodeValue decodes signature.value. Lengths no key of alg can produce
// are refused here, before the key lookup: an oversized value costs no
// decoding and a truncated one no DNS query.
func decodeValue(alg Algorithm, value string) ([]byte, error) {
	// The decoder skips CR and LF wherever they appear; a value is a
	// single token, and what is accepted should have one spelling.
	for i := 0; i < len(value); i++ {
		if !isBase64URLChar(value[i]) {
			return nil, fmt.Errorf("%w: signature value has a character outside unpadded base64url at offset %d", ErrMalformed, i)
		}
	}
	if len(value) > strictB64.EncodedLen(alg.maxSignatureLen()) {
		return nil, fmt.Errorf("%w: signature value is too long for %s", ErrBadSignature, alg)
	}
	b, err := strictB64.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: signature value is not unpadded base64url: %w", ErrMalformed, err)
	}
	if n := len(b); n < alg.minSignatureLen() {
		return nil, fmt.Errorf("%w: %s signature of %d bytes is too short", ErrBadSignature, alg, n)
	}
	return b, nil
}

// checkAge enforces the freshness window on the canonical JSON of the
// timestamp member (present: Verify checked that first).
func (v *Verifier) checkAge(raw []byte) error {
	maxAge := v.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return fmt.Errorf("%w: timestamp is not a string", ErrMalformed)
	}
	ts, err := parseTimestamp(s)
	if err != nil {
		return fmt.Errorf("%w: timestamp: %w", ErrMalformed, err)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	skew := v.ClockSkew
	if skew <= 0 {
		skew = DefaultClockSkew
	}
	switch {
	case ts.Before(now.Add(-maxAge)):
		return fmt.Errorf("%w: timestamp %s is older than %s", ErrExpired, clip(s), maxAge)
	case ts.After(now.Add(skew)):
		return fmt.Errorf("%w: timestamp %s is in the future", ErrExpired, clip(s))
	}
	return nil
}

// parseTimestamp reads an RFC 3339 date-time the way amtp.Parse does.
func parseTimestamp(s string) (time.Time, error) {
	t, ok := amtp.ParseTime(s)
	if !ok {
		return time.Time{}, errors.New("not an RFC 3339 time")
	}
	return t, nil
}

func isBase64URLChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
