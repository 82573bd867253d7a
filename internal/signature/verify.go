package signature

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/amtp"
)

// KeyResolver finds the public key published for a domain and selector
// (both already validated and lower-cased).
//
// The error tells Verify how to answer: one wrapping ErrUnknownKey means the
// key is definitively absent or unusable (the message is rejected); any
// other error is taken as a temporary failure (ErrKeyUnavailable).
type KeyResolver interface {
	PublicKey(ctx context.Context, domain, selector string) (crypto.PublicKey, error)
}

// RecordLookup adapts a key-record lookup, returning the k= tag and the
// decoded p= bytes, into a KeyResolver that parses and checks the key with
// ParsePublicKey. Wired to the discovery package it reads:
//
//	signature.RecordLookup(func(ctx context.Context, domain, selector string) (string, []byte, error) {
//		kr, err := resolver.LookupKey(ctx, domain, selector)
//		if err != nil && !discovery.IsTransient(err) {
//			err = fmt.Errorf("%w: %w", signature.ErrUnknownKey, err)
//		}
//		return kr.Algorithm, kr.PublicKey, err
//	})
//
// so that a missing or revoked key is permanent and a DNS timeout is not.
type RecordLookup func(ctx context.Context, domain, selector string) (keyType string, spki []byte, err error)

// PublicKey implements KeyResolver.
func (f RecordLookup) PublicKey(ctx context.Context, domain, selector string) (crypto.PublicKey, error) {
	keyType, spki, err := f(ctx, domain, selector)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(keyType, spki)
}

// Verifier checks inbound signatures. The zero value is not usable: Keys is
// required. A Verifier is safe for concurrent use when Keys is.
type Verifier struct {
	Keys KeyResolver

	// MaxAge, when positive, rejects signed messages whose timestamp is
	// older than MaxAge or more than ClockSkew in the future (ErrExpired),
	// which bounds how long a captured message can be replayed. It is off by
	// default because a legitimate message can be old: retries run for 7
	// days, and a sequential workflow may forward its message days after it
	// was written. If set, it must cover the idempotency window plus the
	// longest workflow. A signed message without a timestamp is not
	// rejected: the signer chose not to bind one.
	MaxAge time.Duration
	// ClockSkew is the allowance for a sender's clock running ahead; zero
	// means DefaultClockSkew. It only applies when MaxAge is positive.
	ClockSkew time.Duration
	// Now is the clock for MaxAge; nil means time.Now.
	Now func() time.Time

	// MaxBytes bounds the messages Verify accepts; zero means
	// DefaultMaxBytes. Set it to the gateway's MaxMessageBytes when that is
	// larger.
	MaxBytes int64
}

// DefaultClockSkew is how far in the future a timestamp may be when MaxAge
// is in force.
const DefaultClockSkew = 5 * time.Minute

// Verified describes a signature that verified.
type Verified struct {
	KeyID     string // "<domain>:<selector>", lower-cased
	Domain    string
	Selector  string
	Algorithm Algorithm
}

// Verify checks the signature of raw, the message body exactly as it was
// received. It must not be given a re-marshalled amtp.Message: parsing
// normalises and would change the signed bytes.
//
// The checks run from cheapest to dearest, and the key's domain is checked
// against the sender before any lookup, so a forged message cannot make the
// gateway query DNS names of the forger's choosing: the message must be
// well formed (ErrMalformed) and signed (ErrUnsigned) with a supported
// algorithm (ErrUnsupportedAlgorithm) under a keyid of the sender's domain
// (ErrKeyDomain); the timestamp must be in the window if MaxAge is set
// (ErrExpired); the key must be found (ErrUnknownKey, ErrKeyUnavailable)
// and fit the algorithm (ErrAlgorithmMismatch); and the value must verify
// over CanonicalInput(raw) (ErrBadSignature).
func (v *Verifier) Verify(ctx context.Context, raw []byte) (Verified, error) {
	if v.Keys == nil {
		return Verified{}, errors.New("signature: verifier has no key resolver")
	}
	d, err := parseDocument(raw, v.MaxBytes)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	if d.signature == nil || string(d.signature) == "null" {
		return Verified{}, ErrUnsigned
	}
	sig, err := decodeSignatureMember(d.signature)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	alg, err := ParseAlgorithm(sig.algorithm)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	if sig.keyID == "" {
		return Verified{}, fmt.Errorf("%w: verifying: signature has no keyid", ErrMalformed)
	}
	domain, selector, err := ParseKeyID(sig.keyID)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	senderDomain, err := domainOfSender(d.sender)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	if domain != senderDomain {
		return Verified{}, fmt.Errorf("%w: keyid %s signs for %s, the sender is at %s", ErrKeyDomain, clip(sig.keyID), domain, senderDomain)
	}
	value, err := decodeValue(alg, sig.value)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	if err := v.checkAge(d.timestamp); err != nil {
		return Verified{}, fmt.Errorf("verifying: %w", err)
	}
	res := Verified{KeyID: FormatKeyID(domain, selector), Domain: domain, Selector: selector, Algorithm: alg}
	pub, err := v.Keys.PublicKey(ctx, domain, selector)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return Verified{}, fmt.Errorf("verifying with %s: %w", res.KeyID, err)
		}
		return Verified{}, fmt.Errorf("%w: looking up %s: %w", ErrKeyUnavailable, res.KeyID, err)
	}
	keyAlg, err := AlgorithmFor(pub)
	if err != nil {
		return Verified{}, fmt.Errorf("verifying with %s: %w", res.KeyID, err)
	}
	if keyAlg != alg {
		return Verified{}, fmt.Errorf("%w: %s is a %s key, the signature says %s", ErrAlgorithmMismatch, res.KeyID, keyAlg.KeyType(), alg)
	}
	if err := verifyRaw(alg, pub, d.canonical, value); err != nil {
		return Verified{}, fmt.Errorf("verifying with %s: %w", res.KeyID, err)
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

// checkAge enforces MaxAge on the canonical JSON of the timestamp member.
func (v *Verifier) checkAge(raw []byte) error {
	if v.MaxAge <= 0 || raw == nil {
		return nil
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
	case ts.Before(now.Add(-v.MaxAge)):
		return fmt.Errorf("%w: timestamp %s is older than %s", ErrExpired, clip(s), v.MaxAge)
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
