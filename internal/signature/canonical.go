package signature

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/agentry/agentry/internal/amtp"
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
// that amtp.Canonicalize accepts (I-JSON: no duplicate member names, valid
// UTF-8, numbers a double holds: see amtp.Canonicalize). Inputs that differ only in
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
}

// parseDocument canonicalises raw once and splits the signature member off.
// Canonicalising the whole input first means everything the member scanner
// later walks is known to be valid JSON without duplicate names, so two
// differently escaped "signature" members cannot be used to make this
// package and a later JSON parser disagree about which one counts.
func parseDocument(raw []byte, maxBytes int64) (*document, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if int64(len(raw)) > maxBytes {
		return nil, fmt.Errorf("%w: message is %d bytes, more than the %d allowed", ErrMalformed, len(raw), maxBytes)
	}
	if first := skipSpace(raw, 0); first >= len(raw) || raw[first] != '{' {
		return nil, fmt.Errorf("%w: message is not a JSON object", ErrMalformed)
	}
	canon, err := amtp.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: canonicalising message: %w", ErrMalformed, err)
	}
	lay, err := scanObject(canon)
	if err != nil {
		return nil, fmt.Errorf("%w: scanning canonical message: %w", ErrMalformed, err)
	}
	d := &document{
		sender:    lay.value(canon, lay.sender),
		timestamp: lay.value(canon, lay.timestamp),
	}
	for _, m := range []struct {
		name string
		sp   span
	}{{memberVersion, lay.version}, {memberMessageID, lay.messageID}, {memberIdemKey, lay.idemKey}, {memberTimestamp, lay.timestamp}} {
		if v := lay.value(canon, m.sp); len(v) < 3 || v[0] != '"' {
			d.missing = append(d.missing, m.name)
		}
	}
	if lay.signature.found {
		// Copied before the cut below shifts the bytes it points into.
		d.signature = bytes.Clone(lay.value(canon, lay.signature))
		d.sender = bytes.Clone(d.sender)
		d.timestamp = bytes.Clone(d.timestamp)
		canon = append(canon[:lay.cut[0]], canon[lay.cut[1]:]...)
	}
	d.canonical = canon
	return d, nil
}

// span locates one top-level member.
type span struct {
	found     bool
	nameStart int // the opening quote of the member name
	valStart  int
	valEnd    int // just past the value
}

// layout is the shape of a top-level object as far as this package cares.
type layout struct {
	signature, sender, timestamp span
	version, messageID, idemKey  span
	// cut is the range to delete to remove the signature member together
	// with the comma that separates it from a neighbour, so the rest stays
	// valid JSON.
	cut [2]int
	// lastValEnd is just past the last member's value (-1 for {}), and
	// closing is the offset of the object's closing brace: where a new
	// member is inserted.
	lastValEnd, closing int
}

func (l *layout) value(doc []byte, s span) []byte {
	if !s.found {
		return nil
	}
	return doc[s.valStart:s.valEnd]
}

// scanObject walks the members of the top-level object in doc, which must
// already be known to be valid JSON (the result of, or accepted by,
// amtp.Canonicalize): it only finds boundaries and does not validate. It
// still never indexes out of range, so misuse is an error, not a panic.
func scanObject(doc []byte) (layout, error) {
	l := layout{lastValEnd: -1}
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return l, fmt.Errorf("top-level value is not an object")
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		l.closing = i
		return l, nil
	}
	// pendingCut is set while the signature was the first member and the
	// member after it, whose name start ends the cut, is not yet seen.
	pendingCut := false
	for {
		if i >= len(doc) || doc[i] != '"' {
			return l, fmt.Errorf("expected a member name at offset %d", i)
		}
		nameStart := i
		nameEnd, err := skipString(doc, i)
		if err != nil {
			return l, err
		}
		if pendingCut {
			l.cut[1] = nameStart
			pendingCut = false
		}
		i = skipSpace(doc, nameEnd)
		if i >= len(doc) || doc[i] != ':' {
			return l, fmt.Errorf("expected ':' at offset %d", i)
		}
		valStart := skipSpace(doc, i+1)
		valEnd, err := skipValue(doc, valStart)
		if err != nil {
			return l, err
		}
		s := span{found: true, nameStart: nameStart, valStart: valStart, valEnd: valEnd}
		switch name, err := memberName(doc[nameStart:nameEnd]); {
		case err != nil:
			return l, err
		case name == memberSignature:
			l.signature = s
			if l.lastValEnd >= 0 {
				l.cut = [2]int{l.lastValEnd, valEnd}
			} else {
				l.cut = [2]int{nameStart, valEnd}
				pendingCut = true
			}
		case name == memberSender:
			l.sender = s
		case name == memberTimestamp:
			l.timestamp = s
		case name == memberVersion:
			l.version = s
		case name == memberMessageID:
			l.messageID = s
		case name == memberIdemKey:
			l.idemKey = s
		}
		l.lastValEnd = valEnd
		i = skipSpace(doc, valEnd)
		if i >= len(doc) {
			return l, fmt.Errorf("unterminated object")
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case '}':
			l.closing = i
			return l, nil
		default:
			return l, fmt.Errorf("expected ',' or '}' at offset %d", i)
		}
	}
}

// memberName decodes a quoted member name. Names without escapes, all of
// the ones that matter in practice, are compared without allocating a
// decoder.
func memberName(quoted []byte) (string, error) {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", fmt.Errorf("decoding member name: %w", err)
	}
	return s, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the offset just past the string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d", i)
}

// skipValue returns the offset just past the value starting at b[i].
// Nesting is tracked with a counter, not recursion, so depth costs nothing.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("missing value at offset %d", i)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unterminated value at offset %d", i)
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j, nil
			}
			j++
		}
		return j, nil
	}
}
