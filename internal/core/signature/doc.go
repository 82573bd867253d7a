// Package signature signs and verifies AMTP messages (shared/PROTOCOL.md,
// "Signatures").
//
// What is signed is the RFC 8785 (JCS) canonical form of the message
// without its top-level "signature" member. Both sides work on the JSON
// bytes, never on a re-marshalled amtp.Message: amtp.Parse normalises
// (domains, recipients, timestamps, empty members), so a struct written out
// again is not what the sender signed. A sending gateway therefore signs the
// exact body it forwards (Signer.Sign), and a receiving gateway verifies the
// body exactly as received (Verifier.Verify), before or alongside parsing.
//
// Algorithms are the JOSE names: RS256 (RSASSA-PKCS1-v1_5 with SHA-256),
// ES256 (ECDSA on P-256 with SHA-256, the signature being the fixed 64-byte
// r||s of RFC 7518 §3.4, not ASN.1 DER) and EdDSA (pure Ed25519 over the
// canonical bytes; Ed448 is not supported). The value is base64url without
// padding (RFC 7515 §2), decoded strictly: padding, the standard alphabet
// and non-zero trailing bits are rejected so that each signature has exactly
// one accepted spelling.
//
// Keys are published DKIM-style at <selector>._amtpkey.<domain> and a keyid
// is "<domain>:<selector>". A gateway signs only for its own domain: the
// keyid's domain must equal the domain of the message's sender (exactly,
// not an organisational parent). A gateway serving several domains holds one
// Signer per domain (they may share a key published under each domain).
//
// This package does no network I/O. Keys reach the Verifier through a
// KeyResolver, typically backed by the discovery package.
package signature
