package signature

import (
	"bytes"
	"fmt"

	"github.com/agentry/agentry/internal/core/amtp"
)

// DefaultMaxBytes bounds the input of Sign and Verify when no other bound is
// configured: the draft's default max-size and Agentry's default
// MaxMessageBytes. Canonicalisation holds a few copies of the message, so an
// unbounded input would be unbounded memory.
const DefaultMaxBytes int64 = 10 << 20

const (
	memberSignature = "signature"
	memberSender    = "sender"
	memberTimestamp = "timestamp"
	memberVersion   = "version"
	memberMessageID = "message_id"
	memberIdemKey   = "idempotency_key"
)

// CanonicalInput returns the bytes a signature covers: the RFC 8785 form of
// raw without its top-level "signature" member. raw must be a JSON object
// that amtp.CanonicalizeObject accepts (I-JSON: no duplicate member names,
// valid UTF-8, numbers a double holds: see amtp.Canonicalize). Inputs that differ only in
// whitespace, member order, string escapes or number spelling yield the
// same bytes; any other difference changes them. A number that a double
// cannot hold exactly is refused (I-JSON), so no two different numbers can
// share one canonical spelling.
func CanonicalInput(raw []byte) ([]byte, error) {
	d, err := parseDocument(raw, 0)
	if err != nil {
		return nil, err
	}
	return d.canonical, nil
}

// document is what signing and verifying need from one message.
type document struct {
	// canonical is the JCS form without the signature member.
	canonical []byte
	// signature is the canonical JSON of the signature member's value; nil
	// when there is no such member.
	signature []byte
	// sender and timestamp are the canonical JSON values of those members,
	// nil when absent. They are taken from the signed bytes so that the
	// domain and age checks are about what the signature covers.
	sender, timestamp []byte
	// missing names the members a signed delivery must carry (§4.2.2:
	// version, message_id, idempotency_key, timestamp) that are absent or
	// not non-empty strings.
	missing []string
	// rawSignature locates the signature member in the input, which Sign
	// replaces in place.
	rawSignature amtp.MemberSpan
}

// documentMembers are the top-level members parseDocument locates, in
// the order of the spans amtp.CanonicalizeObject returns for them.
var documentMembers = []string{memberSignature, memberSender, memberTimestamp, memberVersion, memberMessageID, memberIdemKey}

// parseDocument canonicalises raw once and splits the signature member off.
// The members are located by the canonicaliser itself, which has checked
// the whole input (no duplicate names, escapes decoded), so two
// differently escaped "signature" members cannot be used to make this
// package and a later JSON parser disagree about which one counts.
func parseDocument(raw []byte, maxBytes int64) (*document, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if int64(len(raw)) > maxBytes {
		return nil, fmt.Errorf("%w: message is %d bytes, more than the %d allowed", ErrMalformed, len(raw), maxBytes)
	}
	canon, spans, err := amtp.CanonicalizeObject(raw, documentMembers)
	if err != nil {
		return nil, fmt.Errorf("%w: canonicalising message: %w", ErrMalformed, err)
	}
	value := func(s amtp.MemberSpan) []byte {
		if !s.Found {
			return nil
		}
		return canon[s.Canon.Value:s.Canon.End]
	}
	sig := spans[0]
	d := &document{sender: value(spans[1]), timestamp: value(spans[2]), rawSignature: sig}
	for i, name := range documentMembers[2:] {
		if v := value(spans[2+i]); len(v) < 3 || v[0] != '"' {
			d.missing = append(d.missing, name)
		}
	}
	if sig.Found {
		// Copied before the cut below shifts the bytes they point into.
		d.signature = bytes.Clone(value(sig))
		d.sender = bytes.Clone(d.sender)
		d.timestamp = bytes.Clone(d.timestamp)
		canon = cutMember(canon, sig.Canon)
	}
	d.canonical = canon
	return d, nil
}

// cutMember deletes the member at s from the canonical object canon
// together with one comma next to it, so that the rest stays valid JSON.
// Canonical JSON has no whitespace, so the comma, if any, is adjacent.
func cutMember(canon []byte, s amtp.Span) []byte {
	from, to := s.Name, s.End
	switch {
	case canon[from-1] == ',':
		from--
	case canon[to] == ',':
		to++
	}
	return append(canon[:from], canon[to:]...)
}
