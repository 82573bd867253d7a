package amtp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// jcsMaxDepth bounds nesting so hostile input cannot make the recursive
// parser exhaust the goroutine stack or spend unbounded time.
const jcsMaxDepth = 1000

// Canonicalize returns the RFC 8785 canonical form of one JSON value.
//
// The input must be I-JSON (RFC 7493): duplicate member names, invalid UTF-8,
// unpaired surrogate escapes and numbers that an IEEE 754 double cannot
// hold exactly are rejected, as is nesting deeper than 1000 arrays/objects.
// A number is exact when its decimal value is that of the shortest
// round-trip spelling of the double it parses to: 0.1, 1.0, 1e2 and
// 123456789012345680000 are, while 9007199254740993 (2^53+1),
// 12345678901234567890, 0.10000000000000000001, 1e400 (overflow) and
// 1e-400 (underflow) are not, so no two different numbers share one
// canonical form (and one idempotency digest or signature). Unicode noncharacters such as U+FFFF are passed through rather than
// rejected, matching the RFC's reference implementations, so that a
// signature made elsewhere over such a string can still be verified.
func Canonicalize(data []byte) ([]byte, error) {
	p := jcsParserPool.Get().(*jcsParser)
	// Building in pooled scratch and copying once yields a result of exact
	// size without zeroing a guessed-size buffer first.
	out, err := p.run(p.scratch[:0], data)
	var res []byte
	if err == nil {
		res = append([]byte(nil), out...)
	}
	p.scratch = out
	p.release()
	return res, err
}

// CanonicalSHA256 is the SHA-256 of Canonicalize(data), with the same
// errors. The canonical form is hashed in the pooled parser's scratch
// rather than copied out, since only its digest is wanted (the idempotency
// digest of every accepted message).
func CanonicalSHA256(data []byte) ([sha256.Size]byte, error) {
	p := jcsParserPool.Get().(*jcsParser)
	if cap(p.scratch) < len(data) {
		// The canonical form is about the input's size: one buffer of
		// that size, where growing by appends would allocate up to twice
		// the input on the way (a large message's digest held about two
		// copies of its payload at once).
		p.scratch = make([]byte, 0, len(data))
	}
	out, err := p.run(p.scratch[:0], data)
	var sum [sha256.Size]byte
	if err == nil {
		sum = sha256.Sum256(out)
	}
	p.scratch = out
	p.release()
	return sum, err
}

// AppendCanonical appends the canonical form to dst (for callers that reuse buffers).
//
// On error dst is returned with its original length. dst must not share
// memory with data, since output is written while the input is still being read.
func AppendCanonical(dst, data []byte) ([]byte, error) {
	p := jcsParserPool.Get().(*jcsParser)
	out, err := p.run(dst, data)
	p.release()
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Span locates one member of a JSON object in some bytes: Name is the
// offset of the opening quote of its name, Value that of its value, and End
// is just past the value.
type Span struct{ Name, Value, End int }

// MemberSpan says where one member of a top-level object lies, both in the
// input (In: the bytes between Name and Value hold the name as written,
// colon and spacing included) and in the canonical form (Canon).
type MemberSpan struct {
	Found     bool
	In, Canon Span
}

// CanonicalizeObject is Canonicalize for a top-level JSON object that also
// reports, for each of names, where that member lies in data and in the
// result (Found is false when there is none). Names are compared after
// unescaping, as I-JSON's duplicate check does, and only members of the
// top-level object count. It lets a caller cut, read or replace members in
// either form without a second parser that could read the bytes
// differently. A top-level value other than an object is refused.
func CanonicalizeObject(data []byte, names []string) ([]byte, []MemberSpan, error) {
	p := jcsParserPool.Get().(*jcsParser)
	found := make([]MemberSpan, len(names))
	p.objectOnly, p.want, p.found = true, names, found
	out, err := p.run(p.scratch[:0], data)
	var res []byte
	if err == nil {
		res = append([]byte(nil), out...)
	} else {
		found = nil
	}
	p.scratch = out
	p.release()
	return res, found, err
}

func (p *jcsParser) run(dst, data []byte) ([]byte, error) {
	p.in, p.pos, p.out, p.depth = data, 0, dst, 0
	err := p.document()
	out := p.out
	p.in, p.out = nil, nil
	return out, err
}

// jcsError carries the input offset so rejected messages can be diagnosed
// without echoing (possibly large or sensitive) content back.
type jcsError struct {
	msg    string
	offset int
}

func (e *jcsError) Error() string {
	return "amtp: canonical json: " + e.msg + " at offset " + strconv.Itoa(e.offset)
}

// jcsMember locates one object member: its unescaped name in parser.keys
// (needed for ordering, because the escaped output form does not sort the
// same way) and its serialized "name":value span in the output.
type jcsMember struct {
	// prefix is the first 8 bytes of the name in sort order (see
	// jcsSortPrefix); most comparisons are decided by it alone.
	prefix           uint64
	keyStart, keyEnd int
	start, end       int
}

// jcsParser is pooled because its scratch stacks are what keep the
// per-message cost at a single allocation for the result.
type jcsParser struct {
	in    []byte
	pos   int
	out   []byte
	depth int

	// keys and members are stacks shared by all open objects; each object
	// truncates them back to where it started once it is written.
	keys    []byte
	members []jcsMember
	// tmp holds an object's members while they are written back in order.
	tmp []byte
	// scratch is Canonicalize's output buffer before the result is copied.
	scratch []byte

	// objectOnly refuses a top-level value other than an object, and want
	// names the top-level members whose places are reported in found
	// (index for index): CanonicalizeObject's additions.
	objectOnly bool
	want       []string
	found      []MemberSpan
}

var jcsParserPool = sync.Pool{New: func() any { return new(jcsParser) }}

// Limits on what a pooled parser keeps, so one huge message does not pin
// its scratch memory for the life of the process.
const (
	jcsKeepBytes   = 64 << 10
	jcsKeepMembers = 4 << 10
)

func (p *jcsParser) release() {
	if cap(p.scratch) > jcsKeepBytes {
		p.scratch = nil
	}
	if cap(p.keys) > jcsKeepBytes {
		p.keys = nil
	}
	if cap(p.tmp) > jcsKeepBytes {
		p.tmp = nil
	}
	if cap(p.members) > jcsKeepMembers {
		p.members = nil
	}
	p.keys, p.members, p.tmp, p.scratch = p.keys[:0], p.members[:0], p.tmp[:0], p.scratch[:0]
	p.objectOnly, p.want, p.found = false, nil, nil
	jcsParserPool.Put(p)
}

func (p *jcsParser) fail(msg string) error {
	return &jcsError{msg: msg, offset: p.pos}
}

func (p *jcsParser) document() error {
	p.skipSpace()
	if p.objectOnly && (p.pos >= len(p.in) || p.in[p.pos] != '{') {
		return p.fail("top-level value is not an object")
	}
	if err := p.value(); err != nil {
		return err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return p.fail("unexpected data after top-level value")
	}
	return nil
}

func (p *jcsParser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jcsParser) value() error {
	if p.pos >= len(p.in) {
		return p.fail("unexpected end of input")
	}
	switch c := p.in[p.pos]; c {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		return p.str(false)
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return p.fail("invalid character " + strconv.Quote(string(p.in[p.pos:p.pos+1])) + " looking for a value")
	}
}

func (p *jcsParser) literal(lit string) error {
	if len(p.in)-p.pos < len(lit) || string(p.in[p.pos:p.pos+len(lit)]) != lit {
		return p.fail("invalid literal")
	}
	p.out = append(p.out, lit...)
	p.pos += len(lit)
	return nil
}

func (p *jcsParser) enter() error {
	p.depth++
	if p.depth > jcsMaxDepth {
		return p.fail("nesting deeper than " + strconv.Itoa(jcsMaxDepth) + " levels")
	}
	return nil
}

func (p *jcsParser) array() error {
	if err := p.enter(); err != nil {
		return err
	}
	p.pos++
	p.out = append(p.out, '[')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, ']')
		p.depth--
		return nil
	}
	for {
		if err := p.value(); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return p.fail("unexpected end of input in array")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.out = append(p.out, ',')
			p.skipSpace()
		case ']':
			p.pos++
			p.out = append(p.out, ']')
			p.depth--
			return nil
		default:
			return p.fail("expected ',' or ']' in array")
		}
	}
}

func (p *jcsParser) object() error {
	if err := p.enter(); err != nil {
		return err
	}
	objPos := p.pos
	p.pos++
	p.out = append(p.out, '{')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, '}')
		p.depth--
		return nil
	}
	memberBase, keyBase, contentStart := len(p.members), len(p.keys), len(p.out)
	// Decided once per object, so that nested objects and the other entry
	// points pay for CanonicalizeObject with one branch per member.
	track := len(p.want) > 0 && p.depth == 1
	for {
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return p.fail("expected string for object member name")
		}
		m := jcsMember{keyStart: len(p.keys), start: len(p.out)}
		nameAt := p.pos
		if err := p.str(true); err != nil {
			return err
		}
		m.keyEnd = len(p.keys)
		m.prefix = jcsSortPrefix(p.keys[m.keyStart:m.keyEnd])
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return p.fail("expected ':' after object member name")
		}
		p.pos++
		p.out = append(p.out, ':')
		p.skipSpace()
		valAt, canonValAt := p.pos, len(p.out)
		if err := p.value(); err != nil {
			return err
		}
		m.end = len(p.out)
		if track {
			p.note(&m, Span{nameAt, valAt, p.pos}, canonValAt)
		}
		p.members = append(p.members, m)
		p.skipSpace()
		if p.pos >= len(p.in) {
			return p.fail("unexpected end of input in object")
		}
		if c := p.in[p.pos]; c == ',' {
			p.pos++
			p.out = append(p.out, ',')
			p.skipSpace()
			continue
		} else if c != '}' {
			return p.fail("expected ',' or '}' in object")
		}
		p.pos++
		break
	}
	if err := p.order(p.members[memberBase:], contentStart, objPos); err != nil {
		return err
	}
	if track {
		p.relocate(p.members[memberBase:], contentStart)
	}
	p.out = append(p.out, '}')
	p.members, p.keys = p.members[:memberBase], p.keys[:keyBase]
	p.depth--
	return nil
}

// order puts the members written since contentStart into RFC 8785 order and
// rejects duplicate names. Already-ordered objects (the common case when a
// message was produced canonically) cost one comparison per member.
func (p *jcsParser) order(ms []jcsMember, contentStart, objPos int) error {
	sorted := true
	for i := 1; i < len(ms); i++ {
		c := p.compareMembers(&ms[i-1], &ms[i])
		if c == 0 {
			return p.duplicate(ms[i], objPos)
		}
		if c > 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return nil
	}
	// Objects in messages are small, where insertion sort beats the
	// general-purpose sort and its indirect comparison calls.
	if len(ms) <= 16 {
		for i := 1; i < len(ms); i++ {
			m := ms[i]
			j := i
			for ; j > 0 && p.compareMembers(&ms[j-1], &m) > 0; j-- {
				ms[j] = ms[j-1]
			}
			ms[j] = m
		}
	} else {
		slices.SortFunc(ms, func(a, b jcsMember) int { return p.compareMembers(&a, &b) })
	}
	for i := 1; i < len(ms); i++ {
		if p.compareMembers(&ms[i-1], &ms[i]) == 0 {
			return p.duplicate(ms[i], objPos)
		}
	}
	p.permute(ms, contentStart)
	return nil
}

// note records where a wanted top-level member lies: in the input, and in
// the output as written, before order moves it (see relocate).
func (p *jcsParser) note(m *jcsMember, in Span, canonValAt int) {
	key := p.keys[m.keyStart:m.keyEnd]
	for i, name := range p.want {
		if string(key) == name {
			p.found[i] = MemberSpan{Found: true, In: in, Canon: Span{m.start, canonValAt, m.end}}
		}
	}
}

// relocate moves the output places note recorded to where order put the
// members. ms is in canonical order but still holds the offsets at which
// each member was first written, which is how a recorded member is
// recognised; its new place follows from the lengths of those before it.
func (p *jcsParser) relocate(ms []jcsMember, contentStart int) {
	for i := range p.found {
		f := &p.found[i]
		if !f.Found {
			continue
		}
		at := contentStart
		for _, m := range ms {
			if m.start == f.Canon.Name {
				shift := at - m.start
				f.Canon = Span{f.Canon.Name + shift, f.Canon.Value + shift, f.Canon.End + shift}
				break
			}
			at += m.end - m.start + 1 // and the comma
		}
	}
}

// permute rewrites the members written since contentStart in the order of
// ms. They are contiguous and only their order changes, so the object
// keeps its length and is rewritten in place. The largest member moves
// within p.out (copy is memmove: its old and new places may overlap) and
// only the others go through p.tmp, so a payload of megabytes is not
// copied aside to be put back.
func (p *jcsParser) permute(ms []jcsMember, contentStart int) {
	big := 0
	for i := range ms {
		if ms[i].end-ms[i].start > ms[big].end-ms[big].start {
			big = i
		}
	}
	p.tmp = p.tmp[:0]
	bigAt := contentStart
	for i, m := range ms {
		if i < big {
			bigAt += m.end - m.start + 1
		}
		if i != big {
			p.tmp = append(p.tmp, p.out[m.start:m.end]...)
		}
	}
	copy(p.out[bigAt:], p.out[ms[big].start:ms[big].end])
	w, r := contentStart, 0
	for i, m := range ms {
		if i > 0 {
			p.out[w] = ','
			w++
		}
		n := m.end - m.start
		if i != big {
			copy(p.out[w:w+n], p.tmp[r:r+n])
			r += n
		}
		w += n
	}
}

func (p *jcsParser) compareMembers(a, b *jcsMember) int {
	if a.prefix != b.prefix {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	}
	return jcsCompareUTF16(p.keys[a.keyStart:a.keyEnd], p.keys[b.keyStart:b.keyEnd])
}

// jcsSortPrefix packs the first 8 bytes of a name, zero padded, into an
// integer whose order agrees with jcsCompareUTF16 whenever two prefixes
// differ. Lead bytes EE and EF (U+E000..U+FFFF) are moved above F0..F4
// (supplementary characters); F5..FF never occur in UTF-8, so the mapping
// stays injective, and continuation bytes are below EE and untouched.
func jcsSortPrefix(k []byte) uint64 {
	var x uint64
	if len(k) >= 8 {
		x = binary.BigEndian.Uint64(k)
	} else {
		for i, c := range k {
			x |= uint64(c) << (56 - 8*i)
		}
	}
	if x&0x8080808080808080 != 0 {
		for shift := 0; shift < 64; shift += 8 {
			if c := byte(x >> shift); c == 0xEE || c == 0xEF {
				x += (0xF6 - 0xEE) << shift
			}
		}
	}
	return x
}

func (p *jcsParser) duplicate(m jcsMember, objPos int) error {
	const maxShown = 64
	name := p.keys[m.keyStart:m.keyEnd]
	if len(name) > maxShown {
		name = name[:maxShown]
	}
	return &jcsError{msg: "duplicate object member name " + strconv.Quote(string(name)), offset: objPos}
}

// jcsCompareUTF16 orders valid UTF-8 strings by their UTF-16 code units, as
// RFC 8785 §3.2.3 requires. UTF-8 byte order equals code point order, which
// differs from UTF-16 order only between U+E000..U+FFFF (lead bytes EE, EF)
// and supplementary characters (lead bytes F0..F4, encoded in UTF-16 as
// surrogates D800..DFFF), so only that case needs correcting and no
// decoding is required. Equal prefixes keep both strings aligned on
// character boundaries, so the first differing bytes are of the same kind.
func jcsCompareUTF16(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x >= 0xEE && y >= 0xEE && (x >= 0xF0) != (y >= 0xF0) {
			if x >= 0xF0 {
				return -1
			}
			return 1
		}
		if x < y {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// str parses a string and writes its canonical form. For member names it
// also records the unescaped name, which is what ordering is defined on.
func (p *jcsParser) str(isKey bool) error {
	in := p.in
	i := p.pos + 1
	start := i
	p.out = append(p.out, '"')
	for {
		if i >= len(in) {
			p.pos = i
			return p.fail("unterminated string")
		}
		c := in[i]
		if jcsPlain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				p.pos = i
				return p.fail("invalid UTF-8 in string")
			}
			i += size
			continue
		}
		p.out = append(p.out, in[start:i]...)
		if isKey {
			p.keys = append(p.keys, in[start:i]...)
		}
		if c == '"' {
			p.out = append(p.out, '"')
			p.pos = i + 1
			return nil
		}
		if c < 0x20 {
			p.pos = i
			return p.fail("control character in string")
		}
		p.pos = i
		r, err := p.escape()
		if err != nil {
			return err
		}
		p.out = jcsAppendRune(p.out, r)
		if isKey {
			p.keys = utf8.AppendRune(p.keys, r)
		}
		i = p.pos
		start = i
	}
}

// jcsPlain marks the ASCII bytes that are copied through unchanged inside a
// string, so the hot loop needs a single load and branch per byte.
var jcsPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escape decodes the escape sequence at p.pos and advances past it.
func (p *jcsParser) escape() (rune, error) {
	in := p.in
	if p.pos+1 >= len(in) {
		return 0, p.fail("unterminated escape sequence")
	}
	var r rune
	switch in[p.pos+1] {
	case '"':
		r = '"'
	case '\\':
		r = '\\'
	case '/':
		r = '/'
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		hi, ok := jcsHex4(in, p.pos+2)
		if !ok {
			return 0, p.fail("invalid \\u escape")
		}
		switch {
		case hi >= 0xDC00 && hi <= 0xDFFF:
			return 0, p.fail("unpaired low surrogate escape")
		case hi >= 0xD800 && hi <= 0xDBFF:
			q := p.pos + 6
			if q+1 >= len(in) || in[q] != '\\' || in[q+1] != 'u' {
				return 0, p.fail("unpaired high surrogate escape")
			}
			lo, ok := jcsHex4(in, q+2)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return 0, p.fail("unpaired high surrogate escape")
			}
			p.pos = q + 6
			return 0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00), nil
		}
		p.pos += 6
		return hi, nil
	default:
		return 0, p.fail("invalid escape sequence")
	}
	p.pos += 2
	return r, nil
}

func jcsHex4(in []byte, i int) (rune, bool) {
	if i+4 > len(in) {
		return 0, false
	}
	var r rune
	for _, c := range in[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// jcsAppendRune writes one string character as RFC 8785 §3.2.2.2 demands:
// only '"', '\\' and C0 controls are escaped; everything else, including
// DEL, U+2028/U+2029 and HTML-sensitive characters, is emitted verbatim.
func jcsAppendRune(b []byte, r rune) []byte {
	switch r {
	case '"':
		return append(b, '\\', '"')
	case '\\':
		return append(b, '\\', '\\')
	case '\b':
		return append(b, '\\', 'b')
	case '\t':
		return append(b, '\\', 't')
	case '\n':
		return append(b, '\\', 'n')
	case '\f':
		return append(b, '\\', 'f')
	case '\r':
		return append(b, '\\', 'r')
	}
	if r < 0x20 {
		const hex = "0123456789abcdef"
		return append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xF])
	}
	return utf8.AppendRune(b, r)
}

// number validates the JSON number grammar (strconv.ParseFloat alone would
// also accept hex, "Inf", underscores and leading '+'), checks that the
// number is exact (see Canonicalize) and writes the ECMAScript
// serialization of its float64 value.
func (p *jcsParser) number() error {
	in := p.in
	start := p.pos
	i := start
	neg := in[i] == '-'
	if neg {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intStart := i
	if i < len(in) && in[i] == '0' {
		i++
	} else if digits() == 0 {
		p.pos = i
		return p.fail("invalid number")
	}
	intLen := i - intStart
	plain := true
	if i < len(in) && in[i] == '.' {
		i++
		plain = false
		if digits() == 0 {
			p.pos = i
			return p.fail("invalid number: missing fraction digits")
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		plain = false
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return p.fail("invalid number: missing exponent digits")
		}
	}
	// Integers of up to 15 digits are exact in float64 and ECMAScript prints
	// them unchanged, so the common case skips float conversion entirely.
	if plain && intLen <= 15 {
		if neg && intLen == 1 && in[intStart] == '0' {
			p.out = append(p.out, '0')
		} else {
			p.out = append(p.out, in[start:i]...)
		}
		p.pos = i
		return nil
	}
	f, err := strconv.ParseFloat(string(in[start:i]), 64)
	var sig [jcsMaxDigits]byte
	var k, n int
	if err == nil && f != 0 {
		k, n = jcsShortest(&sig, f)
	}
	if err != nil || !jcsAcceptable(in[intStart:i], plain, f, sig[:k], n) {
		p.pos = start
		return p.fail("number cannot be represented exactly as an IEEE 754 double")
	}
	if f == 0 {
		p.out = append(p.out, '0') // covers -0 as well
	} else {
		p.out = jcsAppendDecimal(p.out, f < 0, sig[:k], n)
	}
	p.pos = i
	return nil
}

// jcsMaxDigits bounds the shortest round-trip digits of a double (17).
const jcsMaxDigits = 20

// jcsShortest writes to d the shortest decimal digits that read back as
// f (finite, not 0) and returns their count k and ECMAScript's exponent n:
// |f| = 0.d1d2…dk × 10^n. The digits have no leading or trailing zeros.
func jcsShortest(d *[jcsMaxDigits]byte, f float64) (k, n int) {
	var buf [32]byte
	sci := strconv.AppendFloat(buf[:0], math.Abs(f), 'e', -1, 64) // d[.ddd]e±XX
	j := 0
	for ; sci[j] != 'e'; j++ {
		if sci[j] != '.' {
			d[k] = sci[j]
			k++
		}
	}
	e := 0
	for _, c := range sci[j+2:] {
		e = e*10 + int(c-'0')
	}
	if sci[j+1] == '-' {
		e = -e
	}
	return k, e + 1
}

// jcsAcceptable decides which numbers a double holds well enough. An
// integer written without fraction or exponent must be exactly the value
// its double prints as: 12345678901234567890 and ...891 would otherwise
// share one canonical form, and with it one idempotency digest and one
// signature. A number with a fraction or an exponent may carry the digits
// a serialiser prints for a double (up to 17 significant ones, as printf's
// %.17g and RFC 8785's own example 333333333.33333329 do); more digits than
// a double has, or a non-zero value that underflows to zero, are refused.
func jcsAcceptable(num []byte, plain bool, f float64, sig []byte, n int) bool {
	if jcsExactDecimal(num, sig, n) {
		return true
	}
	return !plain && f != 0 && jcsSignificantDigits(num) <= 17
}

// jcsSignificantDigits counts the digits of a number's mantissa without
// leading and trailing zeros.
func jcsSignificantDigits(num []byte) int {
	first, last := -1, -1
	digits := 0
	for _, c := range num {
		if c == 'e' || c == 'E' {
			break
		}
		if c < '0' || c > '9' {
			continue
		}
		if c != '0' {
			if first < 0 {
				first = digits
			}
			last = digits
		}
		digits++
	}
	if first < 0 {
		return 0
	}
	return last - first + 1
}

// jcsExactDecimal reports whether num, the text of a JSON number without
// its sign (already checked against the grammar), has exactly the value
// 0.ds × 10^n, where ds has no leading or trailing zeros; an empty ds
// stands for 0. Both sides are compared in that normal form: significant
// digits without leading or trailing zeros, and the decimal exponent.
// The sign needs no check: ParseFloat keeps it, and -0 is 0.
func jcsExactDecimal(num, ds []byte, n int) bool {
	mant, exp := num, 0
	for j, c := range num {
		if c != 'e' && c != 'E' {
			continue
		}
		mant = num[:j]
		e := num[j+1:]
		neg := e[0] == '-'
		if e[0] == '+' || e[0] == '-' {
			e = e[1:]
		}
		// No exponent beyond this bound can be made up for by the
		// mantissa's length and still leave |n| <= 400, so it is
		// clamped there rather than allowed to overflow.
		limit := len(num) + 401
		for _, c := range e {
			if exp > limit/10 {
				exp = limit
				break
			}
			exp = exp*10 + int(c-'0')
		}
		if neg {
			exp = -exp
		}
		break
	}
	point := len(mant)
	first := -1 // index in mant of the first significant digit
	for j, c := range mant {
		switch {
		case c == '.':
			point = j
		case c != '0' && first < 0:
			first = j
		}
	}
	if first < 0 {
		return len(ds) == 0 // zero is exact; a zero double of a non-zero text underflowed
	}
	if len(ds) == 0 {
		return false
	}
	// mant = 0.(digits from first on) × 10^lead
	lead := point - first
	if first > point {
		lead++ // the point itself lies between them
	}
	if lead+exp != n {
		return false
	}
	k := 0
	for _, c := range mant[first:] {
		switch {
		case c == '.':
		case k < len(ds):
			if c != ds[k] {
				return false
			}
			k++
		case c != '0':
			return false
		}
	}
	return k == len(ds)
}

// jcsAppendFloat formats f like ECMAScript Number.prototype.toString
// (ES2019 §7.1.12.1), which RFC 8785 §3.2.2.3 adopts. strconv's shortest
// round-trip digits are the same digits ECMAScript requires; only their
// placement differs. f must be finite.
func jcsAppendFloat(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0') // covers -0 as well
	}
	var digits [jcsMaxDigits]byte
	k, n := jcsShortest(&digits, f)
	return jcsAppendDecimal(b, f < 0, digits[:k], n)
}

// jcsAppendDecimal writes -0.ds × 10^n (neg) or 0.ds × 10^n, ds being
// jcsShortest's digits and n its exponent, in ECMAScript's notation.
func jcsAppendDecimal(b []byte, neg bool, ds []byte, n int) []byte {
	if neg {
		b = append(b, '-')
	}
	k := len(ds)
	switch {
	case k <= n && n <= 21:
		b = append(b, ds...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, ds[:n]...)
		b = append(b, '.')
		b = append(b, ds[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for range -n {
			b = append(b, '0')
		}
		b = append(b, ds...)
	default:
		b = append(b, ds[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, ds[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b
}

// ContentSHA256 is CanonicalSHA256(m.AppendContentDigestInput(nil)) —
// the same digest, byte for byte — computed without a copy of the
// payload in the digest input: the envelope is canonicalized with a
// placeholder for the payload, and the canonical payload is hashed in its
// place. Member order does not depend on values, so the two forms agree.
//
// The canonical payload is written into scratch when it has room, and the
// buffer used is returned for the caller to reuse once the digest is
// taken: a large message's digest and its stored JSON then share one
// buffer, and the message is held twice (as received, and that buffer)
// instead of four times.
func (m *Message) ContentSHA256(scratch []byte) (sum [sha256.Size]byte, buf []byte, err error) {
	payload := m.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	c := *m
	c.Payload = json.RawMessage("0")
	envelope, spans, err := CanonicalizeObject(c.AppendContentDigestInput(nil), []string{"payload"})
	if err != nil {
		return sum, scratch, err
	}
	if !spans[0].Found {
		return sum, scratch, errors.New("amtp: content digest: no payload member")
	}
	if cap(scratch) < len(payload) {
		scratch = make([]byte, 0, len(payload))
	}
	p := jcsParserPool.Get().(*jcsParser)
	canon, err := p.run(scratch[:0], payload)
	p.release()
	if err != nil {
		return sum, scratch, err
	}
	h := sha256.New()
	h.Write(envelope[:spans[0].Canon.Value])
	h.Write(canon)
	h.Write(envelope[spans[0].Canon.End:])
	h.Sum(sum[:0])
	return sum, canon[:0], nil
}
