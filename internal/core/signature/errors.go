package signature

import "errors"

// Verification failures. The draft's result vocabulary (§9.3.4) sorts
// them: ErrUnsigned is "unsigned"; ErrKeyNotFound and ErrKeyUnavailable are
// "key_unavailable" (no valid record, or DNS could not tell us now); every
// other one is "invalid". Kind does that sorting.
var (
	// ErrUnsigned: the message has no signature member (or it is null).
	ErrUnsigned = errors.New("signature: message is not signed")

	// ErrMalformed: the message is not an I-JSON object (duplicate names,
	// invalid UTF-8, a number a double cannot hold), the signature member
	// is not exactly {algorithm, keyid, value} with a selector keyid and an
	// unpadded base64url value, or a signed message lacks one of version,
	// message_id, idempotency_key and timestamp. Sign uses it for input it
	// cannot sign.
	ErrMalformed = errors.New("signature: malformed message or signature")

	// ErrUnsupportedAlgorithm: the algorithm is not ES256 or RS256.
	ErrUnsupportedAlgorithm = errors.New("signature: unsupported algorithm")

	// ErrKeyDomain: a Signer was asked to sign a message whose sender is
	// not in its domain. A gateway never re-signs foreign mail (§9.3.3).
	ErrKeyDomain = errors.New("signature: sender is not in the signer's domain")

	// ErrKeyNotFound: no valid v=amtpkey1 record is published under the
	// selector. The draft counts this as key_unavailable: the key may be
	// published a moment later.
	ErrKeyNotFound = errors.New("signature: no signing key published")

	// ErrKeyUnavailable: the key lookup failed for a reason that says
	// nothing about the key (DNS timeout, cancelled context). Retry later.
	ErrKeyUnavailable = errors.New("signature: signing key temporarily unavailable")

	// ErrKeyRecord: what is published cannot be used: several valid
	// records under one name, a key that does not parse, is too weak, or is
	// not of the algorithm its record declares.
	ErrKeyRecord = errors.New("signature: published signing key unusable")

	// ErrAlgorithmMismatch: the signature's algorithm is not the one the
	// key record declares. Checking this stops a signature made for one
	// algorithm from being checked under another.
	ErrAlgorithmMismatch = errors.New("signature: algorithm does not match the key record")

	// ErrBadSignature: the value does not verify over the canonical form.
	ErrBadSignature = errors.New("signature: signature does not verify")

	// ErrExpired: the message timestamp is outside the freshness window.
	ErrExpired = errors.New("signature: message timestamp outside the accepted window")
)

// Kind is an outcome of verification in the draft's vocabulary (§9.3.4).
type Kind string

// The outcomes Verify can have.
const (
	KindVerified       Kind = "verified"
	KindUnsigned       Kind = "unsigned"
	KindInvalid        Kind = "invalid"
	KindKeyUnavailable Kind = "key_unavailable"
)

// KindOf sorts the error of Verify into the draft's vocabulary: nil is
// verified.
func KindOf(err error) Kind {
	switch {
	case err == nil:
		return KindVerified
	case errors.Is(err, ErrUnsigned):
		return KindUnsigned
	case errors.Is(err, ErrKeyNotFound), errors.Is(err, ErrKeyUnavailable):
		return KindKeyUnavailable
	}
	return KindInvalid
}

// Temporary reports whether a Verify error should be retried rather than
// answered with a permanent rejection.
func Temporary(err error) bool { return KindOf(err) == KindKeyUnavailable }
