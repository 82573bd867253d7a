package signature

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Signer signs the messages a gateway forwards for one domain. It is safe
// for concurrent use when its key is.
type Signer struct {
	domain, selector string
	alg              Algorithm
	key              crypto.Signer
	// selfCheck: verify each signature before it leaves (see sign).
	selfCheck bool

	// MaxBytes bounds the messages Sign accepts; zero means DefaultMaxBytes.
	// Set it to the gateway's MaxMessageBytes when that is larger.
	MaxBytes int64
}

// NewSigner checks the domain, selector and key and returns a Signer whose
// keyid is the selector. The algorithm follows from the key: RSA (2048 to
// 8192 bits) signs RS256, P-256 signs ES256. key may be backed by a KMS or
// HSM; it must then follow the crypto.Signer conventions of the standard
// library keys (PKCS #1 v1.5 for RSA with a crypto.Hash option, ASN.1
// output for ECDSA).
func NewSigner(domain, selector string, key crypto.Signer) (*Signer, error) {
	d, err := amtp.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("signature: new signer: domain %q: %w", clip(domain), err)
	}
	sel, err := ParseSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("signature: new signer: %w", err)
	}
	if key == nil {
		return nil, fmt.Errorf("signature: new signer for %s: no key", sel)
	}
	alg, err := AlgorithmFor(key.Public())
	if err != nil {
		return nil, fmt.Errorf("signature: new signer for %s: %w", sel, err)
	}
	return &Signer{domain: d, selector: sel, alg: alg, key: key, selfCheck: !inProcessKey(key)}, nil
}

// KeyID is the keyid the Signer writes: its selector (§4.2.2).
func (s *Signer) KeyID() string { return s.selector }

// KeyName is the DNS name its key record is published at.
func (s *Signer) KeyName() string { return s.selector + "._amtpkey." + s.domain }

// Domain is the domain the Signer signs for.
func (s *Signer) Domain() string { return s.domain }

// Selector is the key's selector.
func (s *Signer) Selector() string { return s.selector }

// Algorithm is the algorithm the Signer's key signs with.
func (s *Signer) Algorithm() Algorithm { return s.alg }

// Public is the key to publish (see PublicKeyTXT).
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign returns raw with its top-level "signature" member set to a fresh
// signature over CanonicalInput(raw). An existing signature member has its
// value replaced in place; otherwise the member is added after the last
// one. Every other byte of raw is kept as it was, so the signature covers
// exactly what the recipient will read, numbers and escapes included.
//
// The sender's domain must be the Signer's domain (ErrKeyDomain): a
// signature under another domain's sender would be rejected anyway, and
// failing here shows the misconfiguration at its source.
func (s *Signer) Sign(raw []byte) ([]byte, error) {
	if s.key == nil {
		return nil, errors.New("signature: signer was not made by NewSigner")
	}
	d, err := parseDocument(raw, s.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	senderDomain, err := domainOfSender(d.sender)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if senderDomain != s.domain {
		return nil, fmt.Errorf("%w: signing as %s for a sender at %s", ErrKeyDomain, s.domain, senderDomain)
	}
	// A receiver must not fill these in for a signed message (§4.2.2), so
	// one missing here would make every delivery of it fail verification.
	if len(d.missing) > 0 {
		return nil, fmt.Errorf("%w: signing: the message lacks %s", ErrMalformed, strings.Join(d.missing, ", "))
	}
	var ts string
	if json.Unmarshal(d.timestamp, &ts) != nil {
		return nil, fmt.Errorf("%w: signing: timestamp is not a string", ErrMalformed)
	}
	if _, err := parseTimestamp(ts); err != nil {
		return nil, fmt.Errorf("%w: signing: timestamp: %w", ErrMalformed, err)
	}
	value, err := s.sign(d.canonical)
	if err != nil {
		return nil, fmt.Errorf("signing as %s: %w", s.KeyID(), err)
	}
	member, err := json.Marshal(amtp.Signature{
		Algorithm: string(s.alg),
		KeyID:     s.KeyID(),
		Value:     base64.RawURLEncoding.EncodeToString(value),
	})
	if err != nil {
		return nil, fmt.Errorf("signing: encoding signature member: %w", err)
	}
	out := make([]byte, 0, len(raw)+len(member)+len(`,"signature":`))
	if in := d.rawSignature.In; d.rawSignature.Found {
		out = append(out, raw[:in.Value]...)
		out = append(out, member...)
		return append(out, raw[in.End:]...), nil
	}
	at, empty := endOfMembers(raw)
	out = append(out, raw[:at]...)
	if !empty {
		out = append(out, ',')
	}
	out = append(out, `"signature":`...)
	out = append(out, member...)
	return append(out, raw[at:]...), nil
}

// endOfMembers returns where a new member goes in raw, an object that
// canonicalised: just past the last member's value, so the spacing before
// the closing brace stays after the new member, or at the brace itself
// when the object is empty.
func endOfMembers(raw []byte) (at int, empty bool) {
	closing := bytes.LastIndexByte(raw, '}')
	at = len(bytes.TrimRight(raw[:closing], " \t\r\n"))
	if raw[at-1] == '{' {
		return closing, true
	}
	return at, false
}

// sign produces the raw signature bytes over msg and, for a key outside
// this process, checks them against the public key: that catches a faulty
// signer (a glitching HSM, a KMS key configured for PSS) before a
// signature every recipient would reject leaves the gateway. A key held
// in memory by the standard library is not checked: its signatures are
// the library's, and a verification would double the signing cost of
// every federated message.
func (s *Signer) sign(msg []byte) ([]byte, error) {
	var (
		sig []byte
		err error
	)
	switch s.alg {
	case RS256, ES256:
		digest := sha256.Sum256(msg)
		sig, err = s.key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err == nil && s.alg == ES256 {
			sig, err = ecdsaDERToJOSE(sig)
		}
	}
	if err != nil {
		return nil, err
	}
	if !s.selfCheck {
		return sig, nil
	}
	if err := verifyRaw(s.alg, s.key.Public(), msg, sig); err != nil {
		return nil, fmt.Errorf("key produced a signature that does not verify: %w", err)
	}
	return sig, nil
}

// ecdsaDERToJOSE converts the ASN.1 SEQUENCE {r, s} that crypto.Signer
// returns into the fixed-width r||s that JOSE (and so ES256 here) uses.
func ecdsaDERToJOSE(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil {
		return nil, fmt.Errorf("decoding ECDSA signature: %w", err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("decoding ECDSA signature: trailing data")
	}
	const half = 32
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 8*half || rs.S.BitLen() > 8*half {
		return nil, fmt.Errorf("decoding ECDSA signature: r or s out of range")
	}
	out := make([]byte, 2*half)
	rs.R.FillBytes(out[:half])
	rs.S.FillBytes(out[half:])
	return out, nil
}

// verifyRaw checks sig over msg. pub must have passed AlgorithmFor with the
// same alg; a mismatch is reported, never a panic.
func verifyRaw(alg Algorithm, pub crypto.PublicKey, msg, sig []byte) error {
	switch alg {
	case ES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return ErrAlgorithmMismatch
		}
		if len(sig) != 64 {
			return ErrBadSignature
		}
		digest := sha256.Sum256(msg)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k, digest[:], r, s) {
			return ErrBadSignature
		}
		return nil
	case RS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return ErrAlgorithmMismatch
		}
		if len(sig) != k.Size() {
			return ErrBadSignature
		}
		digest := sha256.Sum256(msg)
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	}
	return ErrUnsupportedAlgorithm
}

// domainOfSender returns the lower-cased domain of the canonical JSON
// string in raw (the sender member's value).
func domainOfSender(raw []byte) (string, error) {
	if raw == nil {
		return "", fmt.Errorf("%w: message has no sender", ErrMalformed)
	}
	var sender string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &sender) != nil {
		return "", fmt.Errorf("%w: sender is not a string", ErrMalformed)
	}
	a, err := amtp.ParseAddress(sender)
	if err != nil {
		return "", fmt.Errorf("%w: sender: %w", ErrMalformed, err)
	}
	return strings.ToLower(a.Domain), nil
}

// inProcessKey reports whether key is one of the standard library's own
// private keys (whose signing Go itself implements).
func inProcessKey(key crypto.Signer) bool {
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		return true
	}
	return false
}
