package e2e

// An implementation of AMTP domain signatures that shares no code with the
// gateway: its own I-JSON parser (RFC 7493), its own RFC 8785 (JCS)
// canonicaliser, and its own ES256/RS256 signing and verification over the
// canonical bytes. Tests use it to sign messages the gateway must accept and
// to check signatures the gateway produces, so a mistake that the gateway's
// signer and verifier share cannot hide behind a successful round trip.
//
// Nothing here may import github.com/agentry/agentry/...; only the standard
// library and testify. Every identifier starts with indep / TestIndependent
// so the file can sit in package e2e next to anything else.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Errors of the independent implementation, so tests can tell a refused
// input from a signature that does not verify.
var (
	// errIndepNotIJSON: the bytes are not an I-JSON text (or not an object
	// where one is required).
	errIndepNotIJSON = errors.New("indep: not I-JSON")
	// errIndepUnsigned: no "signature" member, or it is null.
	errIndepUnsigned = errors.New("indep: message is not signed")
	// errIndepMalformedSignature: the signature member is not exactly
	// {"algorithm","keyid","value"} with string values, a selector keyid
	// and an unpadded base64url value.
	errIndepMalformedSignature = errors.New("indep: malformed signature object")
	// errIndepAlgorithm: unknown algorithm, or one that does not match the
	// key (type, curve, RSA modulus size).
	errIndepAlgorithm = errors.New("indep: algorithm not usable with this key")
	// errIndepBadSignature: well-formed, but the cryptographic check fails.
	errIndepBadSignature = errors.New("indep: signature does not verify")
	// errIndepKeyRecord: a TXT key record that cannot be used.
	errIndepKeyRecord = errors.New("indep: bad key record")
)

const (
	indepSignatureMember = "signature"
	indepKeyRecordPrefix = "v=amtpkey1"
	// indepMaxDepth bounds nesting of arrays and objects.
	indepMaxDepth = 512
)

// ---------------------------------------------------------------------------
// I-JSON parser (RFC 8259 grammar, RFC 7493 restrictions)
// ---------------------------------------------------------------------------

type indepKind int

const (
	indepNull indepKind = iota
	indepBool
	indepNumber
	indepString
	indepArray
	indepObject
)

// indepValue is one parsed JSON value. Numbers are kept as their IEEE 754
// double value, strings as their decoded (UTF-8) text, object members in
// input order.
type indepValue struct {
	kind    indepKind
	boolean bool
	number  float64
	str     string
	elems   []*indepValue
	members []indepMember
}

type indepMember struct {
	name  string
	value *indepValue
}

type indepParser struct {
	data []byte
	pos  int
}

// indepParse parses one I-JSON text: RFC 8259 JSON that is valid UTF-8, has
// no duplicate member names at any depth, contains no surrogate or
// noncharacter code points (RFC 7493 §2.1) and only numbers that an IEEE 754
// double holds (see indepCheckNumber).
func indepParse(raw []byte) (*indepValue, error) {
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%w: input is not valid UTF-8", errIndepNotIJSON)
	}
	p := &indepParser{data: raw}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail("unexpected data after the JSON value")
	}
	return v, nil
}

// indepParseObject is indepParse for texts that must be a JSON object.
func indepParseObject(raw []byte) (*indepValue, error) {
	v, err := indepParse(raw)
	if err != nil {
		return nil, err
	}
	if v.kind != indepObject {
		return nil, fmt.Errorf("%w: top-level value is not an object", errIndepNotIJSON)
	}
	return v, nil
}

func (p *indepParser) fail(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", errIndepNotIJSON, p.pos, fmt.Sprintf(format, args...))
}

func (p *indepParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// at reports whether the next byte is c.
func (p *indepParser) at(c byte) bool {
	return p.pos < len(p.data) && p.data[p.pos] == c
}

func (p *indepParser) atDigit() bool {
	return p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9'
}

func (p *indepParser) value(depth int) (*indepValue, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &indepValue{kind: indepString, str: s}, nil
	case c == 't':
		return p.literal("true", &indepValue{kind: indepBool, boolean: true})
	case c == 'f':
		return p.literal("false", &indepValue{kind: indepBool})
	case c == 'n':
		return p.literal("null", &indepValue{kind: indepNull})
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.fail("unexpected character %q", c)
	}
}

func (p *indepParser) literal(word string, v *indepValue) (*indepValue, error) {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return nil, p.fail("invalid literal")
	}
	p.pos += len(word)
	return v, nil
}

func (p *indepParser) object(depth int) (*indepValue, error) {
	if depth >= indepMaxDepth {
		return nil, p.fail("nesting deeper than %d", indepMaxDepth)
	}
	p.pos++ // '{'
	v := &indepValue{kind: indepObject}
	seen := make(map[string]bool)
	p.skipSpace()
	if p.at('}') {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		if !p.at('"') {
			return nil, p.fail("expected a member name")
		}
		name, err := p.string()
		if err != nil {
			return nil, err
		}
		// Names are compared after unescaping: "a" and "\u0061" collide.
		if seen[name] {
			return nil, p.fail("duplicate member name %q", name)
		}
		seen[name] = true
		p.skipSpace()
		if !p.at(':') {
			return nil, p.fail("expected ':' after member name")
		}
		p.pos++
		p.skipSpace()
		mv, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, indepMember{name: name, value: mv})
		p.skipSpace()
		switch {
		case p.at(','):
			p.pos++
		case p.at('}'):
			p.pos++
			return v, nil
		default:
			return nil, p.fail("expected ',' or '}' in object")
		}
	}
}

func (p *indepParser) array(depth int) (*indepValue, error) {
	if depth >= indepMaxDepth {
		return nil, p.fail("nesting deeper than %d", indepMaxDepth)
	}
	p.pos++ // '['
	v := &indepValue{kind: indepArray}
	p.skipSpace()
	if p.at(']') {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		ev, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, ev)
		p.skipSpace()
		switch {
		case p.at(','):
			p.pos++
		case p.at(']'):
			p.pos++
			return v, nil
		default:
			return nil, p.fail("expected ',' or ']' in array")
		}
	}
}

// indepNoncharacter reports the Unicode noncharacters: U+FDD0..U+FDEF and
// the last two code points of every plane.
func indepNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

func (p *indepParser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.fail("truncated \\u escape")
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, p.fail("invalid hex digit %q in \\u escape", c)
		}
		r = r<<4 | rune(d)
	}
	p.pos += 4
	return r, nil
}

// string decodes a JSON string starting at the opening quote.
func (p *indepParser) string() (string, error) {
	p.pos++ // opening quote
	var sb strings.Builder
	for {
		if p.pos >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return sb.String(), nil
		case c == '\\':
			p.pos++
			if p.pos >= len(p.data) {
				return "", p.fail("unterminated escape")
			}
			e := p.data[p.pos]
			p.pos++
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if r >= 0xDC00 && r <= 0xDFFF {
					return "", p.fail("unpaired low surrogate \\u%04x", r)
				}
				if r >= 0xD800 && r <= 0xDBFF {
					if !bytes.HasPrefix(p.data[p.pos:], []byte(`\u`)) {
						return "", p.fail("unpaired high surrogate \\u%04x", r)
					}
					p.pos += 2
					lo, err := p.hex4()
					if err != nil {
						return "", err
					}
					if lo < 0xDC00 || lo > 0xDFFF {
						return "", p.fail("high surrogate \\u%04x not followed by a low surrogate", r)
					}
					r = utf16.DecodeRune(r, lo)
				}
				if indepNoncharacter(r) {
					return "", p.fail("noncharacter U+%04X", r)
				}
				sb.WriteRune(r)
			default:
				return "", p.fail("invalid escape \\%c", e)
			}
		case c < 0x20:
			return "", p.fail("unescaped control character 0x%02x in string", c)
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.fail("invalid UTF-8")
			}
			if indepNoncharacter(r) {
				return "", p.fail("noncharacter U+%04X", r)
			}
			sb.Write(p.data[p.pos : p.pos+size])
			p.pos += size
		}
	}
}

// number scans the RFC 8259 number grammar
//
//	-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
//
// and checks the value with indepCheckNumber.
func (p *indepParser) number() (*indepValue, error) {
	start := p.pos
	if p.at('-') {
		p.pos++
	}
	switch {
	case p.at('0'):
		p.pos++
	case p.atDigit():
		for p.atDigit() {
			p.pos++
		}
	default:
		return nil, p.fail("invalid number")
	}
	integer := true
	if p.at('.') {
		integer = false
		p.pos++
		if !p.atDigit() {
			return nil, p.fail("invalid number: no digit after '.'")
		}
		for p.atDigit() {
			p.pos++
		}
	}
	if p.at('e') || p.at('E') {
		integer = false
		p.pos++
		if p.at('+') || p.at('-') {
			p.pos++
		}
		if !p.atDigit() {
			return nil, p.fail("invalid number: no digit in exponent")
		}
		for p.atDigit() {
			p.pos++
		}
	}
	lit := string(p.data[start:p.pos])
	f, err := indepCheckNumber(lit, integer)
	if err != nil {
		return nil, p.fail("%v", err)
	}
	return &indepValue{kind: indepNumber, number: f}, nil
}

// indepCheckNumber converts a grammatical JSON number literal to the
// nearest double and refuses literals that a double does not faithfully
// hold (RFC 7493 §2.2):
//   - magnitude too large (1e400 becomes ±Inf);
//   - a non-zero literal that underflows to zero (1e-400);
//   - an integer literal (no fraction, no exponent) that is not exactly a
//     double, e.g. 12345678901234567890 or 9007199254740993;
//   - more than 17 significant digits (more precision than a double has,
//     like RFC 7493's 3.141592653589793238462643383279) unless the literal
//     is the double's exact value.
//
// Up to 17 significant digits always identify one double unambiguously, so
// such literals are accepted even if not exact (0.1, 333333333.33333329):
// that is what the RFC 8785 examples require.
func indepCheckNumber(lit string, integer bool) (float64, error) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("number %s is outside the range of a double", lit)
		}
		return 0, fmt.Errorf("number %s: %w", lit, err)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("number %s is not finite", lit)
	}
	mantissa := lit
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mantissa = lit[:i]
	}
	digits := strings.TrimPrefix(mantissa, "-")
	digits = strings.Replace(digits, ".", "", 1)
	significant := strings.Trim(digits, "0")
	if f == 0 && significant != "" {
		return 0, fmt.Errorf("number %s underflows to zero", lit)
	}
	if integer || len(significant) > 17 {
		exact, ok := new(big.Rat).SetString(lit)
		if !ok {
			return 0, fmt.Errorf("number %s does not parse", lit)
		}
		if exact.Cmp(new(big.Rat).SetFloat64(f)) != 0 {
			return 0, fmt.Errorf("number %s is not exactly representable as a double (nearest is %s)", lit, strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	return f, nil
}

// ---------------------------------------------------------------------------
// RFC 8785 serialisation
// ---------------------------------------------------------------------------

// indepJCS returns the RFC 8785 canonical form of an I-JSON text.
func indepJCS(raw []byte) ([]byte, error) {
	v, err := indepParse(raw)
	if err != nil {
		return nil, err
	}
	return indepAppendValue(nil, v), nil
}

// indepCanonicalInput returns the bytes an AMTP domain signature covers: the
// JCS form of the object raw without its top-level "signature" member.
func indepCanonicalInput(raw []byte) ([]byte, error) {
	obj, err := indepParseObject(raw)
	if err != nil {
		return nil, err
	}
	return indepAppendValue(nil, indepWithout(obj, indepSignatureMember)), nil
}

// indepWithout returns a shallow copy of object obj lacking member name.
func indepWithout(obj *indepValue, name string) *indepValue {
	out := &indepValue{kind: indepObject}
	for _, m := range obj.members {
		if m.name != name {
			out.members = append(out.members, m)
		}
	}
	return out
}

func indepMemberOf(obj *indepValue, name string) (*indepValue, bool) {
	for _, m := range obj.members {
		if m.name == name {
			return m.value, true
		}
	}
	return nil, false
}

func indepAppendValue(b []byte, v *indepValue) []byte {
	switch v.kind {
	case indepNull:
		return append(b, "null"...)
	case indepBool:
		if v.boolean {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case indepNumber:
		return indepAppendNumber(b, v.number)
	case indepString:
		return indepAppendString(b, v.str)
	case indepArray:
		b = append(b, '[')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = indepAppendValue(b, e)
		}
		return append(b, ']')
	case indepObject:
		// RFC 8785 §3.2.3: sort by the names' UTF-16 code units.
		type keyed struct {
			units []uint16
			m     indepMember
		}
		sorted := make([]keyed, len(v.members))
		for i, m := range v.members {
			sorted[i] = keyed{units: utf16.Encode([]rune(m.name)), m: m}
		}
		slices.SortFunc(sorted, func(x, y keyed) int { return slices.Compare(x.units, y.units) })
		b = append(b, '{')
		for i, k := range sorted {
			if i > 0 {
				b = append(b, ',')
			}
			b = indepAppendString(b, k.m.name)
			b = append(b, ':')
			b = indepAppendValue(b, k.m.value)
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("indep: unknown value kind %d", v.kind))
}

// indepAppendString writes s as RFC 8785 §3.2.2.2 requires: the two-letter
// escapes for ", \, BS, FF, LF, CR and TAB, \u00xx (lower-case hex) for the
// other C0 controls, and every other character as literal UTF-8.
func indepAppendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if r < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xF])
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
	}
	return append(b, '"')
}

// indepAppendNumber writes f as ECMAScript's Number.prototype.toString
// (Number::toString, ES2019 §7.1.12.1) does, which RFC 8785 §3.2.2.3
// adopts. With k the count and s the digits of the shortest decimal that
// reads back as f, and n the decimal exponent such that f = 0.s × 10^n:
//
//	k ≤ n ≤ 21   s followed by n−k zeros
//	0 < n ≤ 21   s with a '.' after n digits
//	−6 < n ≤ 0   "0." then −n zeros then s
//	otherwise    d[.ddd]e±(n−1)
func indepAppendNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		panic("indep: non-finite number")
	}
	if f == 0 { // +0 and -0 alike
		return append(b, '0')
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	sci := strconv.FormatFloat(f, 'e', -1, 64) // d[.ddd]e±XX, shortest digits
	mant, expPart, ok := strings.Cut(sci, "e")
	if !ok {
		panic("indep: unexpected float format " + sci)
	}
	digits := strings.Replace(mant, ".", "", 1)
	e, err := strconv.Atoi(expPart)
	if err != nil {
		panic("indep: unexpected float exponent " + sci)
	}
	k, n := len(digits), e+1
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for i := 0; i < n-k; i++ {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for i := 0; i < -n; i++ {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		} else {
			b = append(b, '-')
		}
		exp := n - 1
		if exp < 0 {
			exp = -exp
		}
		b = strconv.AppendInt(b, int64(exp), 10)
	}
	return b
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

// indepValidSelector: keyid is one lower-case DNS label (LDH), the part in
// front of "._amtpkey.<domain>".
func indepValidSelector(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// indepDecodeBase64URL decodes base64url without padding (RFC 4648 §5),
// refusing padding, whitespace, the standard alphabet's + and /, and
// non-zero trailing bits.
func indepDecodeBase64URL(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty value")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("character %q is not in the unpadded base64url alphabet", c)
		}
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// indepECDSASignature is the ASN.1 form of an ECDSA signature (RFC 3279
// Ecdsa-Sig-Value), used only to talk to crypto/ecdsa.
type indepECDSASignature struct {
	R, S *big.Int
}

// indepDERToP1363 turns an ASN.1 DER ECDSA P-256 signature into the 64-byte
// r||s form (each 32 bytes, big-endian, left-padded with zeros).
func indepDERToP1363(der []byte) ([]byte, error) {
	var sig indepECDSASignature
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after ECDSA signature")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("ECDSA signature component out of range")
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

func indepIsP256(k *ecdsa.PublicKey) bool {
	return k.Curve != nil && k.Curve.Params().Name == elliptic.P256().Params().Name
}

// indepSignCanonical signs canonical bytes: ES256 for a P-256 key, RS256 for
// an RSA key of at least 2048 bits. It returns the algorithm and the raw
// signature (P1363 r||s for ES256).
func indepSignCanonical(key crypto.Signer, canonical []byte) (string, []byte, error) {
	digest := sha256.Sum256(canonical)
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if !indepIsP256(&k.PublicKey) {
			return "", nil, fmt.Errorf("%w: ES256 needs a P-256 key", errIndepAlgorithm)
		}
		der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		if err != nil {
			return "", nil, err
		}
		sig, err := indepDERToP1363(der)
		return "ES256", sig, err
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", nil, fmt.Errorf("%w: RS256 needs a modulus of at least 2048 bits, have %d", errIndepAlgorithm, k.N.BitLen())
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		return "RS256", sig, err
	default:
		return "", nil, fmt.Errorf("%w: unsupported key type %T", errIndepAlgorithm, key)
	}
}

func indepStringValue(s string) *indepValue {
	return &indepValue{kind: indepString, str: s}
}

// indepSign returns raw (a JSON object) with its "signature" member set, or
// replaced, to {"algorithm","keyid":selector,"value"} signed with key:
// *ecdsa.PrivateKey on P-256 gives ES256, *rsa.PrivateKey gives RS256. The
// body is returned in its JCS form; the helper checks that its own verifier
// accepts the result and that the signed bytes are the JCS of raw minus
// "signature".
func indepSign(t testing.TB, key crypto.Signer, selector string, raw []byte) []byte {
	t.Helper()
	if !indepValidSelector(selector) {
		t.Fatalf("indepSign: %q is not a selector (one lower-case DNS label)", selector)
	}
	obj, err := indepParseObject(raw)
	require.NoError(t, err, "indepSign: input is not an I-JSON object")
	unsigned := indepWithout(obj, indepSignatureMember)
	canonical := indepAppendValue(nil, unsigned)

	alg, sig, err := indepSignCanonical(key, canonical)
	require.NoError(t, err, "indepSign: signing")

	sigObj := &indepValue{kind: indepObject, members: []indepMember{
		{name: "algorithm", value: indepStringValue(alg)},
		{name: "keyid", value: indepStringValue(selector)},
		{name: "value", value: indepStringValue(base64.RawURLEncoding.EncodeToString(sig))},
	}}
	signed := &indepValue{kind: indepObject, members: append(slices.Clone(unsigned.members),
		indepMember{name: indepSignatureMember, value: sigObj})}
	out := indepAppendValue(nil, signed)

	covered, err := indepCanonicalInput(out)
	require.NoError(t, err, "indepSign: canonicalising the signed body")
	require.Equal(t, string(canonical), string(covered), "indepSign: the signature must cover the JCS of the returned body")
	got, err := indepVerify(out, key.Public())
	require.NoError(t, err, "indepSign: own signature does not verify")
	require.Equal(t, selector, got)
	return out
}

// indepVerify checks the domain signature of raw against pub and returns its
// keyid (selector). It refuses a body that is not an I-JSON object, a
// signature member that is not exactly three string members algorithm,
// keyid and value, a keyid that is not a selector, a value that is not
// unpadded base64url, an algorithm that does not match pub (ES256: P-256
// ECDSA key and a 64-byte r||s value; RS256: RSA key of ≥ 2048 bits and a
// value as long as the modulus), and a signature that does not verify over
// indepCanonicalInput(raw).
func indepVerify(raw []byte, pub crypto.PublicKey) (selector string, err error) {
	obj, err := indepParseObject(raw)
	if err != nil {
		return "", err
	}
	sigV, ok := indepMemberOf(obj, indepSignatureMember)
	if !ok || sigV.kind == indepNull {
		return "", errIndepUnsigned
	}
	if sigV.kind != indepObject {
		return "", fmt.Errorf("%w: signature is not an object", errIndepMalformedSignature)
	}
	if len(sigV.members) != 3 {
		return "", fmt.Errorf("%w: signature has %d members, want exactly algorithm, keyid and value", errIndepMalformedSignature, len(sigV.members))
	}
	fields := make(map[string]string, 3)
	for _, m := range sigV.members {
		switch m.name {
		case "algorithm", "keyid", "value":
		default:
			return "", fmt.Errorf("%w: unexpected signature member %q", errIndepMalformedSignature, m.name)
		}
		if m.value.kind != indepString {
			return "", fmt.Errorf("%w: signature member %q is not a string", errIndepMalformedSignature, m.name)
		}
		fields[m.name] = m.value.str
	}
	// Three members, no duplicates (the parser refuses them), each one of
	// the three names: all three are present.
	alg, keyid, value := fields["algorithm"], fields["keyid"], fields["value"]
	if !indepValidSelector(keyid) {
		return "", fmt.Errorf("%w: keyid %q is not a selector", errIndepMalformedSignature, keyid)
	}
	sig, err := indepDecodeBase64URL(value)
	if err != nil {
		return "", fmt.Errorf("%w: value: %w", errIndepMalformedSignature, err)
	}
	digest := sha256.Sum256(indepAppendValue(nil, indepWithout(obj, indepSignatureMember)))

	switch alg {
	case "ES256":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || !indepIsP256(k) {
			return "", fmt.Errorf("%w: ES256 signature, key is %T", errIndepAlgorithm, pub)
		}
		if len(sig) != 64 {
			return "", fmt.Errorf("%w: ES256 value is %d bytes, want 64 (r||s)", errIndepBadSignature, len(sig))
		}
		der, err := asn1.Marshal(indepECDSASignature{
			R: new(big.Int).SetBytes(sig[:32]),
			S: new(big.Int).SetBytes(sig[32:]),
		})
		if err != nil {
			return "", err
		}
		if !ecdsa.VerifyASN1(k, digest[:], der) {
			return "", errIndepBadSignature
		}
	case "RS256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return "", fmt.Errorf("%w: RS256 signature, key is %T", errIndepAlgorithm, pub)
		}
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("%w: RSA modulus of %d bits is below 2048", errIndepAlgorithm, k.N.BitLen())
		}
		if len(sig) != (k.N.BitLen()+7)/8 {
			return "", fmt.Errorf("%w: RS256 value is %d bytes, modulus is %d", errIndepBadSignature, len(sig), (k.N.BitLen()+7)/8)
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig); err != nil {
			return "", fmt.Errorf("%w: %w", errIndepBadSignature, err)
		}
	default:
		return "", fmt.Errorf("%w: unsupported algorithm %q", errIndepAlgorithm, alg)
	}
	return keyid, nil
}

// indepKeyRecord is the DNS TXT value publishing pub at
// <selector>._amtpkey.<domain>: "v=amtpkey1;alg=ES256|RS256;p=<padded
// standard base64 of the DER SubjectPublicKeyInfo>".
func indepKeyRecord(pub crypto.PublicKey) string {
	var alg string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !indepIsP256(k) {
			panic("indepKeyRecord: ECDSA key is not on P-256")
		}
		alg = "ES256"
	case *rsa.PublicKey:
		alg = "RS256"
	default:
		panic(fmt.Sprintf("indepKeyRecord: unsupported key type %T", pub))
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("indepKeyRecord: " + err.Error())
	}
	return indepKeyRecordPrefix + ";alg=" + alg + ";p=" + base64.StdEncoding.EncodeToString(der)
}

// indepParseKeyRecord reads a TXT value as indepKeyRecord writes it: tags
// separated by ';' (spaces and tabs around tags and '=' ignored, a final
// ';' allowed, unknown tags ignored), v=amtpkey1 first, alg and p
// required, p padded standard base64 of a SubjectPublicKeyInfo whose key
// matches alg (P-256 for ES256, RSA ≥ 2048 bits for RS256).
func indepParseKeyRecord(txt string) (alg string, pub crypto.PublicKey, err error) {
	tags := make(map[string]string)
	parts := strings.Split(txt, ";")
	if strings.TrimSpace(parts[len(parts)-1]) == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	for i, part := range parts {
		name, val, ok := strings.Cut(part, "=")
		name, val = strings.Trim(name, " \t"), strings.Trim(val, " \t")
		if !ok || name == "" {
			return "", nil, fmt.Errorf("%w: tag %q is not name=value", errIndepKeyRecord, part)
		}
		if _, dup := tags[name]; dup {
			return "", nil, fmt.Errorf("%w: duplicate tag %q", errIndepKeyRecord, name)
		}
		if i == 0 && (name != "v" || val != "amtpkey1") {
			return "", nil, fmt.Errorf("%w: record does not start with v=amtpkey1", errIndepKeyRecord)
		}
		tags[name] = val
	}
	alg, p := tags["alg"], tags["p"]
	if p == "" {
		return "", nil, fmt.Errorf("%w: no p= tag", errIndepKeyRecord)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return "", nil, fmt.Errorf("%w: p= has character %q outside standard base64", errIndepKeyRecord, c)
		}
	}
	der, err := base64.StdEncoding.Strict().DecodeString(p)
	if err != nil {
		return "", nil, fmt.Errorf("%w: p=: %w", errIndepKeyRecord, err)
	}
	pub, err = x509.ParsePKIXPublicKey(der)
	if err != nil {
		return "", nil, fmt.Errorf("%w: p=: %w", errIndepKeyRecord, err)
	}
	switch alg {
	case "ES256":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || !indepIsP256(k) {
			return "", nil, fmt.Errorf("%w: alg=ES256 but key is %T", errIndepKeyRecord, pub)
		}
	case "RS256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.N.BitLen() < 2048 {
			return "", nil, fmt.Errorf("%w: alg=RS256 needs an RSA key of at least 2048 bits", errIndepKeyRecord)
		}
	default:
		return "", nil, fmt.Errorf("%w: unsupported alg %q", errIndepKeyRecord, alg)
	}
	return alg, pub, nil
}

// ---------------------------------------------------------------------------
// Tests of the independent implementation itself
// ---------------------------------------------------------------------------

// RFC 8785 §3.2.2: the example object, its canonical form (§3.2.3 output)
// and the UTF-8 bytes of that form (§3.2.4).
func TestIndependentJCSRFC8785Example(t *testing.T) {
	input := []byte(`{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`)
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	// §3.2.4, as printed in the RFC.
	wantHex := strings.ReplaceAll(`
7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d`, " ", "")
	wantHex = strings.ReplaceAll(wantHex, "\n", "")
	got, err := indepJCS(input)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
	assert.Equal(t, wantHex, hex.EncodeToString(got))

	// Canonical form is a fixed point.
	again, err := indepJCS(got)
	require.NoError(t, err)
	assert.Equal(t, string(got), string(again))
}

// RFC 8785 §3.2.3: member names sorted as arrays of UTF-16 code units (the
// emoji, a surrogate pair D83D DE00, sorts before U+FB33 although its code
// point is larger).
func TestIndependentJCSSortingExample(t *testing.T) {
	input := []byte(`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`)
	want := `{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","` + "\u00f6" +
		`":"Latin Small Letter O With Diaeresis","` + "\u20ac" + `":"Euro Sign","` + "\U0001F600" +
		`":"Emoji: Grinning Face","` + "\uFB33" + `":"Hebrew Letter Dalet With Dagesh"}`
	got, err := indepJCS(input)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))

	// The order of the values, as the RFC lists it: every second string
	// token of the flat object is a value.
	var strs []string
	dec := json.NewDecoder(bytes.NewReader(got))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			strs = append(strs, s)
		}
	}
	var order []string
	for i := 1; i < len(strs); i += 2 {
		order = append(order, strs[i])
	}
	assert.Equal(t, []string{
		"Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis",
		"Euro Sign", "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh",
	}, order)
}

// RFC 8785 Appendix B: ECMAScript serialisations of IEEE 754 doubles. Each
// double is given by its bit pattern (as in the RFC) and by a decimal JSON
// literal that denotes it; the test checks the literal really is that
// double and that it canonicalises to the RFC's string. NaN and Infinity
// are not expressible in JSON.
func TestIndependentJCSNumbersAppendixB(t *testing.T) {
	cases := []struct {
		bits  uint64
		input string
		want  string
	}{
		{0x0000000000000000, "0", "0"},
		{0x8000000000000000, "-0", "0"},
		{0x8000000000000000, "-0.0e10", "0"},
		{0x0000000000000001, "5e-324", "5e-324"},
		{0x8000000000000001, "-5e-324", "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e308", "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e308", "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992", "9007199254740992"},
		{0xc340000000000000, "-9007199254740992", "-9007199254740992"},
		{0x4430000000000000, "295147905179352825856", "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e22", "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e23", "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e23", "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "9.999999999999997e20", "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "9.999999999999999e20", "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e21", "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7", "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001", "0.000001"},
		{0x41b3de4355555553, "333333333.3333332", "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325", "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333", "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334", "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343", "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333", "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2", "1424953923781206.2"},
	}
	for _, c := range cases {
		t.Run(c.input, func(t *testing.T) {
			f, err := strconv.ParseFloat(c.input, 64)
			require.NoError(t, err)
			require.Equal(t, c.bits, math.Float64bits(f), "test input must denote the RFC's double")
			got, err := indepJCS([]byte(c.input))
			require.NoError(t, err)
			assert.Equal(t, c.want, string(got))
		})
	}

	// More ECMAScript Number::toString cases around the notation switches.
	more := []struct{ input, want string }{
		{"1e21", "1e+21"},
		{"1e20", "100000000000000000000"},
		{"100000000000000000000", "100000000000000000000"},
		{"123e18", "123000000000000000000"},
		{"1.5e21", "1.5e+21"},
		{"0.1", "0.1"},
		{"-0.1", "-0.1"},
		{"1e-7", "1e-7"},
		{"1.5e-7", "1.5e-7"},
		{"1e-6", "0.000001"},
		{"0.0000015", "0.0000015"},
		{"1", "1"},
		{"1.0", "1"},
		{"-1E+0", "-1"},
		{"10", "10"},
		{"1e2", "100"},
		{"123.456", "123.456"},
		{"0.5", "0.5"},
		{"4.50", "4.5"},
		{"2e-3", "0.002"},
		{"1E30", "1e+30"},
		{"333333333.33333329", "333333333.3333333"},
		{"0.000000000000000000000000001", "1e-27"},
		{"18446744073709551616", "18446744073709552000"},
		{"0.1000000000000000055511151231257827021181583404541015625", "0.1"},
		{"4.9e-324", "5e-324"},
	}
	for _, c := range more {
		t.Run("extra/"+c.input, func(t *testing.T) {
			got, err := indepJCS([]byte(c.input))
			require.NoError(t, err)
			assert.Equal(t, c.want, string(got))
		})
	}
}

func TestIndependentJCSStrings(t *testing.T) {
	cases := []struct{ input, want string }{
		{`"\u0000\u0001\u001f"`, `"\u0000\u0001\u001f"`},
		{`"\u001F\u000B"`, `"\u001f\u000b"`},
		{`"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
		{`"\u0008\u000c\u000A\u000D\u0009"`, `"\b\f\n\r\t"`},
		{`"\"\\\/"`, `"\"\\/"`},
		{`"\u007f"`, "\"\x7f\""},
		{`"<>&'"`, `"<>&'"`},
		{`"\u003c\u003E\u0026"`, `"<>&"`},
		{`"\u2028\u2029"`, "\"\u2028\u2029\""},
		{`"caf\u00e9"`, `"café"`},
		{`"café"`, `"café"`},
		{`"\uD83D\uDE00"`, "\"\U0001F600\""},
		{`"😀"`, "\"\U0001F600\""},
		{`""`, `""`},
	}
	for _, c := range cases {
		got, err := indepJCS([]byte(c.input))
		if assert.NoError(t, err, c.input) {
			assert.Equal(t, c.want, string(got), c.input)
		}
	}
}

func TestIndependentJCSStructure(t *testing.T) {
	cases := []struct{ input, want string }{
		{" { } ", `{}`},
		{"[ ]", `[]`},
		{"\t\r\n[1 , 2,\n3]\n", `[1,2,3]`},
		{`{"b":[{"d":1,"c":2}],"a":{"z":null,"y":true}}`, `{"a":{"y":true,"z":null},"b":[{"c":2,"d":1}]}`},
		{`{"aa":1,"a":2,"b":3,"A":4,"":5}`, `{"":5,"A":4,"a":2,"aa":1,"b":3}`},
		{`{"signature":1,"a":2}`, `{"a":2,"signature":1}`},
		{`true`, `true`},
		{` null `, `null`},
		{`"x"`, `"x"`},
	}
	for _, c := range cases {
		got, err := indepJCS([]byte(c.input))
		if assert.NoError(t, err, c.input) {
			assert.Equal(t, c.want, string(got), c.input)
		}
	}

	deepOK := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	_, err := indepJCS([]byte(deepOK))
	assert.NoError(t, err)
	deepBad := strings.Repeat("[", indepMaxDepth+1) + strings.Repeat("]", indepMaxDepth+1)
	_, err = indepJCS([]byte(deepBad))
	assert.ErrorIs(t, err, errIndepNotIJSON)
}

func TestIndependentJCSRejectsDuplicates(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`,
		`{"a":1,"a":1}`,
		`{"a":1,"\u0061":2}`,
		`{"\u00e9":1,"é":2}`,
		`{"x":{"b":1,"c":2,"b":3}}`,
		`{"x":[1,{"y":{"z":{"k":1,"k":2}}}]}`,
		`[{"c":null,"c":null}]`,
		`{"signature":{"algorithm":"ES256","algorithm":"RS256","keyid":"k1","value":"AA"}}`,
		`{"signature":1,"signature":2}`,
	} {
		_, err := indepJCS([]byte(in))
		assert.ErrorIs(t, err, errIndepNotIJSON, in)
		_, err = indepCanonicalInput([]byte(in))
		assert.Error(t, err, in)
	}
	// Same names at different places are not duplicates.
	_, err := indepJCS([]byte(`{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}`))
	assert.NoError(t, err)
}

func TestIndependentJCSRejectsInexactNumbers(t *testing.T) {
	for _, in := range []string{
		"12345678901234567890",
		"-12345678901234567890",
		"9007199254740993",
		"100000000000000000000000", // 1e23 spelt as an integer is not exactly a double
		"1e400",
		"-1e400",
		"1.8e308",
		"1e-400",
		"-2e-324",
		"3.141592653589793238462643383279",
		"0.10000000000000000000001",
		`{"payload":{"amount":12345678901234567890}}`,
		`[1, 2, 1e400]`,
	} {
		_, err := indepJCS([]byte(in))
		assert.ErrorIs(t, err, errIndepNotIJSON, in)
	}
}

func TestIndependentJCSRejectsInvalidInput(t *testing.T) {
	for _, in := range []string{
		``, `   `, `{`, `}`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{'a':1}`,
		`{"a":1}x`, `{} {}`, `01`, `-01`, `1.`, `.5`, `+1`, `-`, `1e`, `1e+`, `0x10`, `NaN`, `Infinity`,
		`-Infinity`, `tru`, `nul`, `True`, `"abc`, `"\x"`, `"\u00"`, `"\u00zz"`, `"\ud800"`, `"\udc00"`,
		`"\ud800\u0041"`, `"\ud83d\ud83d"`, `"\uffff"`, `"\ufdd0"`, `"\ud83f\udffe"`,
		"\"a\x01b\"", "\"\t\"", "\"\n\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
		"\"\xef\xbf\xbf\"", "\xef\xbb\xbf{}", "{\"a\":1}\x00", "[1]\v",
	} {
		_, err := indepJCS([]byte(in))
		assert.ErrorIs(t, err, errIndepNotIJSON, "%q", in)
	}
	// The signed bytes must come from an object.
	for _, in := range []string{`[]`, `"signature"`, `1`, `null`} {
		_, err := indepCanonicalInput([]byte(in))
		assert.ErrorIs(t, err, errIndepNotIJSON, in)
	}
}

func TestIndependentCanonicalInputDropsTopLevelSignatureOnly(t *testing.T) {
	body := []byte(`{"z":1, "signature": {"algorithm":"ES256","keyid":"k1","value":"AA"},
		"a": {"signature": "nested stays"}, "list": [{"signature": 2}]}`)
	got, err := indepCanonicalInput(body)
	require.NoError(t, err)
	assert.Equal(t, `{"a":{"signature":"nested stays"},"list":[{"signature":2}],"z":1}`, string(got))

	without, err := indepCanonicalInput([]byte(`{"list":[{"signature":2}],"a":{"signature":"nested stays"},"z":1.0}`))
	require.NoError(t, err)
	assert.Equal(t, string(got), string(without))

	// A member whose name only resembles "signature" is signed.
	got, err = indepCanonicalInput([]byte(`{"Signature":1,"signature ":2,"signatures":3}`))
	require.NoError(t, err)
	assert.Equal(t, `{"Signature":1,"signature ":2,"signatures":3}`, string(got))
	// An escaped spelling of "signature" is the same member.
	got, err = indepCanonicalInput([]byte(`{"\u0073ignature":1,"a":2}`))
	require.NoError(t, err)
	assert.Equal(t, `{"a":2}`, string(got))
}

// indepSampleMessage is an AMTP-shaped message with an extension member,
// non-ASCII text, escapes and numbers in non-canonical spellings.
func indepSampleMessage() []byte {
	return []byte(`{
  "version": "1.0",
  "message_id": "01890a5d-ac96-774b-bcce-b302099a8057",
  "idempotency_key": "4f2a6c1e-9d0b-4c3a-8e7f-1b2c3d4e5f60",
  "timestamp": "2025-01-15T10:30:00Z",
  "sender": "agent@example.com",
  "recipients": ["bot@example.org", "other@example.net"],
  "subject": "Quarterly report \u20ac <&>",
  "schema": "agntcy:commerce.order.v1",
  "payload": {"amount": 4.50, "items": [1, 2e0, 3], "note": "caf\u00e9 \ud83d\ude00\n", "ok": true, "none": null},
  "x-extension": {"trace": "abc", "hops": 1E1}
}`)
}

func indepGenerateKeys(t testing.TB) (*ecdsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return ec, rk
}

// indepReplaceMember returns body (a JSON object) with member name set to
// the raw JSON value (or removed when value is nil), re-serialised by
// encoding/json rather than by this file's serialiser.
func indepReplaceMember(t testing.TB, body []byte, name string, value []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m))
	if value == nil {
		delete(m, name)
	} else {
		m[name] = json.RawMessage(value)
	}
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func indepRoundTrip(t *testing.T, key crypto.Signer, wantAlg string) {
	msg := indepSampleMessage()
	signed := indepSign(t, key, "k1", msg)

	sel, err := indepVerify(signed, key.Public())
	require.NoError(t, err)
	assert.Equal(t, "k1", sel)

	var sig struct{ Algorithm, Keyid, Value string }
	var outer struct {
		Signature json.RawMessage `json:"signature"`
	}
	require.NoError(t, json.Unmarshal(signed, &outer))
	require.NoError(t, json.Unmarshal(outer.Signature, &sig))
	assert.Equal(t, wantAlg, sig.Algorithm)
	assert.Equal(t, "k1", sig.Keyid)
	assert.NotContains(t, sig.Value, "=")

	// The signed bytes are the JCS of the original message.
	want, err := indepJCS(msg)
	require.NoError(t, err)
	covered, err := indepCanonicalInput(signed)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(covered))

	// Re-serialising (indentation, another member order, other escapes)
	// keeps the signature valid.
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, signed, "", "    "))
	_, err = indepVerify(pretty.Bytes(), key.Public())
	assert.NoError(t, err, "indented")
	remarshalled := indepReplaceMember(t, signed, "version", []byte(`"1.0"`))
	_, err = indepVerify(remarshalled, key.Public())
	assert.NoError(t, err, "re-marshalled by encoding/json")
	respelt := indepReplaceMember(t, signed, "payload",
		[]byte(`{"none":null,"ok":true,"note":"caf\u00E9 \uD83D\uDE00\u000a","items":[1.0,2,3e0],"amount":4.5}`))
	_, err = indepVerify(respelt, key.Public())
	assert.NoError(t, err, "same payload, other spellings")

	// Signing an already signed body replaces the signature.
	resigned := indepSign(t, key, "k2", signed)
	sel, err = indepVerify(resigned, key.Public())
	require.NoError(t, err)
	assert.Equal(t, "k2", sel)

	// Another key of the same kind does not verify it.
	var other crypto.Signer
	switch key.(type) {
	case *ecdsa.PrivateKey:
		other, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		other, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	require.NoError(t, err)
	_, err = indepVerify(signed, other.Public())
	assert.ErrorIs(t, err, errIndepBadSignature)
}

func TestIndependentES256RoundTrip(t *testing.T) {
	ec, _ := indepGenerateKeys(t)
	indepRoundTrip(t, ec, "ES256")
}

func TestIndependentRS256RoundTrip(t *testing.T) {
	_, rk := indepGenerateKeys(t)
	indepRoundTrip(t, rk, "RS256")
}

func TestIndependentAlgorithmKeyMismatch(t *testing.T) {
	ec, rk := indepGenerateKeys(t)
	esSigned := indepSign(t, ec, "k1", indepSampleMessage())
	rsSigned := indepSign(t, rk, "k1", indepSampleMessage())

	_, err := indepVerify(esSigned, rk.Public())
	assert.ErrorIs(t, err, errIndepAlgorithm)
	_, err = indepVerify(rsSigned, ec.Public())
	assert.ErrorIs(t, err, errIndepAlgorithm)

	// Claiming the other algorithm for a valid value fails too.
	var sig map[string]string
	var outer map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(esSigned, &outer))
	require.NoError(t, json.Unmarshal(outer["signature"], &sig))
	sig["algorithm"] = "RS256"
	relabelled, err := json.Marshal(sig)
	require.NoError(t, err)
	_, err = indepVerify(indepReplaceMember(t, esSigned, "signature", relabelled), ec.Public())
	assert.ErrorIs(t, err, errIndepAlgorithm)

	// A P-384 key is not an ES256 key.
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	_, err = indepVerify(esSigned, p384.Public())
	assert.ErrorIs(t, err, errIndepAlgorithm)

	// RSA below 2048 bits is refused even with a correct PKCS#1 v1.5 value.
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	canonical, err := indepCanonicalInput(rsSigned)
	require.NoError(t, err)
	digest := sha256.Sum256(canonical)
	weak, err := rsa.SignPKCS1v15(rand.Reader, small, crypto.SHA256, digest[:])
	require.NoError(t, err)
	weakSig := fmt.Sprintf(`{"algorithm":"RS256","keyid":"k1","value":%q}`, base64.RawURLEncoding.EncodeToString(weak))
	_, err = indepVerify(indepReplaceMember(t, rsSigned, "signature", []byte(weakSig)), small.Public())
	assert.ErrorIs(t, err, errIndepAlgorithm)
	_, _, err = indepSignCanonical(small, canonical)
	assert.ErrorIs(t, err, errIndepAlgorithm)
}

func TestIndependentTamperFails(t *testing.T) {
	ec, rk := indepGenerateKeys(t)
	for _, key := range []crypto.Signer{ec, rk} {
		signed := indepSign(t, key, "k1", indepSampleMessage())
		var members map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(signed, &members))
		require.Contains(t, members, "x-extension")

		for name := range members {
			if name == indepSignatureMember {
				continue
			}
			t.Run(fmt.Sprintf("%T/change/%s", key, name), func(t *testing.T) {
				_, err := indepVerify(indepReplaceMember(t, signed, name, []byte(`"tampered"`)), key.Public())
				assert.ErrorIs(t, err, errIndepBadSignature)
			})
			t.Run(fmt.Sprintf("%T/remove/%s", key, name), func(t *testing.T) {
				_, err := indepVerify(indepReplaceMember(t, signed, name, nil), key.Public())
				assert.ErrorIs(t, err, errIndepBadSignature)
			})
		}
		t.Run(fmt.Sprintf("%T/add-member", key), func(t *testing.T) {
			_, err := indepVerify(indepReplaceMember(t, signed, "x-added", []byte(`1`)), key.Public())
			assert.ErrorIs(t, err, errIndepBadSignature)
		})
		t.Run(fmt.Sprintf("%T/small-changes", key), func(t *testing.T) {
			for name, value := range map[string]string{
				"x-extension": `{"trace":"abd","hops":10}`,
				"payload":     `{"amount":4.51,"items":[1,2,3],"note":"café 😀\n","ok":true,"none":null}`,
				"recipients":  `["other@example.net","bot@example.org"]`,
				"subject":     `"Quarterly report € <&> "`,
			} {
				_, err := indepVerify(indepReplaceMember(t, signed, name, []byte(value)), key.Public())
				assert.ErrorIs(t, err, errIndepBadSignature, name)
			}
			// Control: the same values in other spellings still verify.
			_, err := indepVerify(indepReplaceMember(t, signed, "x-extension", []byte(`{"hops":10.0,"trace":"\u0061bc"}`)), key.Public())
			assert.NoError(t, err)
		})
		t.Run(fmt.Sprintf("%T/flip-signature-bit", key), func(t *testing.T) {
			var sig map[string]string
			require.NoError(t, json.Unmarshal(members["signature"], &sig))
			raw, err := base64.RawURLEncoding.DecodeString(sig["value"])
			require.NoError(t, err)
			raw[len(raw)/2] ^= 0x01
			sig["value"] = base64.RawURLEncoding.EncodeToString(raw)
			sigJSON, err := json.Marshal(sig)
			require.NoError(t, err)
			_, err = indepVerify(indepReplaceMember(t, signed, "signature", sigJSON), key.Public())
			assert.ErrorIs(t, err, errIndepBadSignature)
		})
	}
}

func TestIndependentES256DERValueFails(t *testing.T) {
	ec, _ := indepGenerateKeys(t)
	signed := indepSign(t, ec, "k1", indepSampleMessage())
	canonical, err := indepCanonicalInput(signed)
	require.NoError(t, err)
	digest := sha256.Sum256(canonical)
	der, err := ecdsa.SignASN1(rand.Reader, ec, digest[:])
	require.NoError(t, err)
	require.True(t, ecdsa.VerifyASN1(&ec.PublicKey, digest[:], der), "control: the DER signature itself is valid")

	derSig := fmt.Sprintf(`{"algorithm":"ES256","keyid":"k1","value":%q}`, base64.RawURLEncoding.EncodeToString(der))
	_, err = indepVerify(indepReplaceMember(t, signed, "signature", []byte(derSig)), ec.Public())
	assert.ErrorIs(t, err, errIndepBadSignature, "ASN.1 DER value must be refused")

	// The same signature as r||s verifies.
	p1363, err := indepDERToP1363(der)
	require.NoError(t, err)
	require.Len(t, p1363, 64)
	goodSig := fmt.Sprintf(`{"algorithm":"ES256","keyid":"k1","value":%q}`, base64.RawURLEncoding.EncodeToString(p1363))
	_, err = indepVerify(indepReplaceMember(t, signed, "signature", []byte(goodSig)), ec.Public())
	assert.NoError(t, err)

	// r||s with s = n (the group order) is out of range and refused.
	n := elliptic.P256().Params().N
	bad := make([]byte, 64)
	copy(bad[:32], p1363[:32])
	n.FillBytes(bad[32:])
	badSig := fmt.Sprintf(`{"algorithm":"ES256","keyid":"k1","value":%q}`, base64.RawURLEncoding.EncodeToString(bad))
	_, err = indepVerify(indepReplaceMember(t, signed, "signature", []byte(badSig)), ec.Public())
	assert.ErrorIs(t, err, errIndepBadSignature)
}

func TestIndependentSignatureObjectShape(t *testing.T) {
	ec, _ := indepGenerateKeys(t)
	signed := indepSign(t, ec, "k1", indepSampleMessage())
	var good map[string]string
	var outer map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(signed, &outer))
	require.NoError(t, json.Unmarshal(outer["signature"], &good))
	value := good["value"]
	rawSig, err := base64.RawURLEncoding.DecodeString(value)
	require.NoError(t, err)

	with := func(sig string) []byte { return indepReplaceMember(t, signed, "signature", []byte(sig)) }
	q := strconv.Quote

	// Control: the same object written by hand, in another member order.
	sel, err := indepVerify(with(`{"value":`+q(value)+`,"keyid":"k1","algorithm":"ES256"}`), ec.Public())
	require.NoError(t, err)
	assert.Equal(t, "k1", sel)

	malformed := map[string]string{
		"fourth member":        `{"algorithm":"ES256","keyid":"k1","value":` + q(value) + `,"extra":"x"}`,
		"fourth member null":   `{"algorithm":"ES256","keyid":"k1","value":` + q(value) + `,"domain":null}`,
		"missing value":        `{"algorithm":"ES256","keyid":"k1"}`,
		"missing keyid":        `{"algorithm":"ES256","value":` + q(value) + `}`,
		"renamed member":       `{"alg":"ES256","keyid":"k1","value":` + q(value) + `}`,
		"keyid number":         `{"algorithm":"ES256","keyid":1,"value":` + q(value) + `}`,
		"value array":          `{"algorithm":"ES256","keyid":"k1","value":[` + q(value) + `]}`,
		"algorithm null":       `{"algorithm":null,"keyid":"k1","value":` + q(value) + `}`,
		"keyid full name":      `{"algorithm":"ES256","keyid":"k1._amtpkey.example.com","value":` + q(value) + `}`,
		"keyid upper case":     `{"algorithm":"ES256","keyid":"K1","value":` + q(value) + `}`,
		"keyid empty":          `{"algorithm":"ES256","keyid":"","value":` + q(value) + `}`,
		"keyid with dot":       `{"algorithm":"ES256","keyid":"k1.k2","value":` + q(value) + `}`,
		"value padded":         `{"algorithm":"ES256","keyid":"k1","value":` + q(base64.URLEncoding.EncodeToString(rawSig)) + `}`,
		"value std padded":     `{"algorithm":"ES256","keyid":"k1","value":` + q(base64.StdEncoding.EncodeToString(rawSig)) + `}`,
		"value with newline":   `{"algorithm":"ES256","keyid":"k1","value":` + q(value[:20]+"\n"+value[20:]) + `}`,
		"value with space":     `{"algorithm":"ES256","keyid":"k1","value":` + q(value[:20]+" "+value[20:]) + `}`,
		"value empty":          `{"algorithm":"ES256","keyid":"k1","value":""}`,
		"value impossible len": `{"algorithm":"ES256","keyid":"k1","value":` + q(value+"AAA") + `}`,
		"signature is string":  q(value),
		"signature is array":   `["ES256","k1",` + q(value) + `]`,
		"signature is number":  `1`,
		"signature empty obj":  `{}`,
		"value has plus/slash": `{"algorithm":"ES256","keyid":"k1","value":"ab+/"}`,
	}
	for name, sig := range malformed {
		_, err := indepVerify(with(sig), ec.Public())
		assert.ErrorIs(t, err, errIndepMalformedSignature, name)
	}

	for _, alg := range []string{"es256", "ES384", "HS256", "none", "EdDSA", ""} {
		_, err := indepVerify(with(`{"algorithm":`+q(alg)+`,"keyid":"k1","value":`+q(value)+`}`), ec.Public())
		assert.ErrorIs(t, err, errIndepAlgorithm, alg)
	}

	_, err = indepVerify(with(`null`), ec.Public())
	assert.ErrorIs(t, err, errIndepUnsigned)
	_, err = indepVerify(indepReplaceMember(t, signed, "signature", nil), ec.Public())
	assert.ErrorIs(t, err, errIndepUnsigned)

	// A duplicate "signature" member makes the whole body non-I-JSON.
	dup := append([]byte(`{"signature":null,`), signed[1:]...)
	_, err = indepVerify(dup, ec.Public())
	assert.ErrorIs(t, err, errIndepNotIJSON)
}

func TestIndependentKeyRecord(t *testing.T) {
	ec, rk := indepGenerateKeys(t)
	for _, c := range []struct {
		pub crypto.PublicKey
		alg string
	}{{ec.Public(), "ES256"}, {rk.Public(), "RS256"}} {
		rec := indepKeyRecord(c.pub)
		prefix := "v=amtpkey1;alg=" + c.alg + ";p="
		require.True(t, strings.HasPrefix(rec, prefix), rec)
		p := strings.TrimPrefix(rec, prefix)
		assert.Zero(t, len(p)%4, "p= is padded base64")
		assert.NotContains(t, p, "-")
		assert.NotContains(t, p, "_")
		der, err := base64.StdEncoding.Strict().DecodeString(p)
		require.NoError(t, err)
		want, err := x509.MarshalPKIXPublicKey(c.pub)
		require.NoError(t, err)
		assert.Equal(t, want, der, "p= is the DER SubjectPublicKeyInfo")

		alg, pub, err := indepParseKeyRecord(rec)
		require.NoError(t, err)
		assert.Equal(t, c.alg, alg)
		assert.True(t, pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(c.pub))

		alg, _, err = indepParseKeyRecord("v=amtpkey1; alg = " + c.alg + " ; p=" + p + ";")
		require.NoError(t, err)
		assert.Equal(t, c.alg, alg)
	}
	// ES256 P-256 SPKI DER is 91 bytes: 124 base64 characters ending in '='.
	assert.True(t, strings.HasSuffix(indepKeyRecord(ec.Public()), "="))

	p := strings.TrimPrefix(indepKeyRecord(ec.Public()), "v=amtpkey1;alg=ES256;p=")
	for _, rec := range []string{
		"alg=ES256;p=" + p,
		"v=amtpkey2;alg=ES256;p=" + p,
		"v=amtpkey1;alg=RS256;p=" + p,
		"v=amtpkey1;alg=ES384;p=" + p,
		"v=amtpkey1;alg=ES256",
		"v=amtpkey1;alg=ES256;p=" + strings.TrimRight(p, "="),
		"v=amtpkey1;alg=ES256;p=" + strings.NewReplacer("+", "-", "/", "_").Replace(p) + "-",
		"v=amtpkey1;alg=ES256;alg=ES256;p=" + p,
		"v=amtpkey1;alg=ES256;p=AAAA",
	} {
		_, _, err := indepParseKeyRecord(rec)
		assert.ErrorIs(t, err, errIndepKeyRecord, rec)
	}
}
