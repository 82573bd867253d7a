package signature

import "errors"

// Verification failures. Every one of them except ErrUnsigned and
// ErrKeyUnavailable answers 401 SIGNATURE_INVALID: the sender's gateway
// has to fix something before the same message can succeed. ErrUnsigned is
// for local policy to decide. ErrKeyUnavailable means the key could not be
// fetched right now; answering it with a 4xx would make the sending gateway
// give up on a message that is probably fine, so it is a 503
// TEMPORARY_FAILURE.
var (
	// ErrUnsigned: the message has no signature member (or it is null).
	ErrUnsigned = errors.New("signature: message is not signed")

	// ErrMalformed: the message is not a canonicalisable JSON object, or the
	// signature member is not exactly {algorithm, keyid, value} with a
	// well-formed keyid and a strict base64url value. Sign uses it for
	// input it cannot sign.
	ErrMalformed = errors.New("signature: malformed message or signature")

	// ErrUnsupportedAlgorithm: the algorithm is not RS256, ES256 or EdDSA.
	ErrUnsupportedAlgorithm = errors.New("signature: unsupported algorithm")

	// ErrKeyDomain: the keyid names a domain other than the sender's.
	ErrKeyDomain = errors.New("signature: key does not belong to the sender's domain")

	// ErrUnknownKey: the domain publishes no usable key under the selector
	// (absent, revoked, unparsable, or too weak).
	ErrUnknownKey = errors.New("signature: signing key unknown or unusable")

	// ErrKeyUnavailable: the key lookup failed for a reason that says
	// nothing about the key (DNS timeout, cancelled context). Retry later.
	ErrKeyUnavailable = errors.New("signature: signing key temporarily unavailable")

	// ErrAlgorithmMismatch: the declared algorithm cannot be used with the
	// published key's type. Checking this stops a signature made for one
	// algorithm from being checked under another.
	ErrAlgorithmMismatch = errors.New("signature: algorithm does not match the key type")

	// ErrBadSignature: the value does not verify over the canonical form.
	ErrBadSignature = errors.New("signature: signature does not verify")

	// ErrExpired: the message timestamp is outside the Verifier's window.
	ErrExpired = errors.New("signature: message timestamp outside the accepted window")
)

// Temporary reports whether a Verify error should be retried rather than
// answered with a permanent rejection.
func Temporary(err error) bool { return errors.Is(err, ErrKeyUnavailable) }
