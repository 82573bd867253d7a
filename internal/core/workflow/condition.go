package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Op is a comparison operator of a condition.
type Op string

// The operators. "==" is accepted on input and stored as "=".
const (
	OpEq Op = "="
	OpNe Op = "!="
	OpGt Op = ">"
	OpGe Op = ">="
	OpLt Op = "<"
	OpLe Op = "<="
)

// Bounds on one condition: generous for real use, small enough that a
// hostile coordination block cannot make the parser or evaluator work hard.
const (
	maxConditionLen   = 4096
	maxPathSegments   = 32
	maxPathSegmentLen = 128
)

// Predicate is the test of one condition, in the structured form's shape so
// that it serialises as what a client could have written.
type Predicate struct {
	Participant string          `json:"participant"`
	Path        string          `json:"path"`
	Op          Op              `json:"op"`
	Value       json.RawMessage `json:"value"` // a canonical JSON scalar
}

// Condition is one compiled entry of coordination.conditions.
type Condition struct {
	If   Predicate `json:"if"`
	Then []string  `json:"then,omitempty"`
	Else []string  `json:"else,omitempty"`
}

// conditionError says what is wrong with a condition and in which member, so
// that Start can point details.field at it.
type conditionError struct {
	member string // "" for the text form
	code   amtp.Code
	msg    string
}

func (e *conditionError) Error() string { return e.msg }

func condErr(member, format string, args ...any) *conditionError {
	return &conditionError{member: member, code: amtp.CodeInvalidMessageFormat, msg: fmt.Sprintf(format, args...)}
}

const textFormHint = `expected "<address> responds with <path> <op> <value>"`

// ParseCondition reads the draft's text form of a condition.
func ParseCondition(s string) (Predicate, error) {
	if len(s) > maxConditionLen {
		return Predicate{}, condErr("", "condition is longer than %d bytes", maxConditionLen)
	}
	if !utf8.ValidString(s) {
		return Predicate{}, condErr("", "condition is not valid UTF-8")
	}
	addr, rest := nextWord(s)
	if addr == "" {
		return Predicate{}, condErr("", "condition is empty; %s", textFormHint)
	}
	if strings.EqualFold(addr, "responds") {
		return Predicate{}, condErr("", "condition must start with the participant's address; %s", textFormHint)
	}
	participant, err := parseParticipant(addr, "")
	if err != nil {
		return Predicate{}, err
	}
	w1, rest := nextWord(rest)
	w2, rest := nextWord(rest)
	if !strings.EqualFold(w1, "responds") || !strings.EqualFold(w2, "with") {
		return Predicate{}, condErr("", `condition needs "responds with" after the address; %s`, textFormHint)
	}
	rest = trimSpace(rest)
	end := 0
	for end < len(rest) && !isSpace(rest[end]) && !isOpChar(rest[end]) {
		end++
	}
	path := rest[:end]
	if path == "" {
		return Predicate{}, condErr("", "condition has no path before the operator; %s", textFormHint)
	}
	if err := checkPath(path, ""); err != nil {
		return Predicate{}, err
	}
	rest = trimSpace(rest[end:])
	end = 0
	for end < len(rest) && isOpChar(rest[end]) {
		end++
	}
	op, ok := parseOp(rest[:end])
	if !ok {
		if end == 0 {
			return Predicate{}, condErr("", "condition has no operator after the path (one of = == != > >= < <=)")
		}
		return Predicate{}, condErr("", "condition operator %q is not one of = == != > >= < <=", rest[:end])
	}
	value, err := parseTextValue(trimSpace(rest[end:]))
	if err != nil {
		return Predicate{}, err
	}
	p := Predicate{Participant: participant, Path: path, Op: op, Value: value}
	if err := checkOrdering(p, ""); err != nil {
		return Predicate{}, err
	}
	return p, nil
}

// String renders p in the text form; ParseCondition reads it back to p.
func (p Predicate) String() string {
	return p.Participant + " responds with " + p.Path + " " + string(p.Op) + " " + string(p.Value)
}

// parseIf reads a condition's if member in either form.
func parseIf(raw json.RawMessage) (Predicate, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Predicate{}, condErr("", "condition is not a valid JSON string")
		}
		return ParseCondition(s)
	}
	if len(raw) > 0 && raw[0] == '{' {
		return parseStructured(raw)
	}
	return Predicate{}, condErr("", `condition must be a string (%s) or an object {"participant","path","op","value"}`, textFormHint)
}

func parseStructured(raw json.RawMessage) (Predicate, error) {
	var in struct {
		Participant *string         `json:"participant"`
		Path        *string         `json:"path"`
		Op          *string         `json:"op"`
		Value       json.RawMessage `json:"value"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	// A misspelt member ("operator") would otherwise read as a missing one
	// and the error would point at the wrong place.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Predicate{}, condErr("", `condition object must have exactly participant, path, op and value: %s`, err.Error())
	}
	switch {
	case in.Participant == nil:
		return Predicate{}, condErr("participant", "condition object needs participant")
	case in.Path == nil:
		return Predicate{}, condErr("path", "condition object needs path")
	case in.Op == nil:
		return Predicate{}, condErr("op", "condition object needs op")
	case in.Value == nil:
		return Predicate{}, condErr("value", "condition object needs value (write null to compare with null)")
	}
	participant, err := parseParticipant(*in.Participant, "participant")
	if err != nil {
		return Predicate{}, err
	}
	if *in.Path == "" {
		return Predicate{}, condErr("path", "condition path is empty")
	}
	if err := checkPath(*in.Path, "path"); err != nil {
		return Predicate{}, err
	}
	op, ok := parseOp(*in.Op)
	if !ok {
		return Predicate{}, condErr("op", "condition op %q is not one of = == != > >= < <=", *in.Op)
	}
	value, err := canonicalScalar(in.Value, "value")
	if err != nil {
		return Predicate{}, err
	}
	p := Predicate{Participant: participant, Path: *in.Path, Op: op, Value: value}
	if err := checkOrdering(p, "value"); err != nil {
		return Predicate{}, err
	}
	return p, nil
}

func parseParticipant(s, member string) (string, error) {
	a, err := amtp.ParseAddress(s)
	if err != nil {
		msg := err.Error()
		if e, ok := amtp.AsError(err); ok {
			msg = e.Message
		}
		return "", &conditionError{member: member, code: amtp.CodeInvalidRecipient, msg: "condition participant is not a valid address: " + msg}
	}
	return a.String(), nil
}

// checkPath keeps paths to characters that cannot be confused with the
// operator or the value in the text form, so that every accepted condition,
// in either form, can be written as text.
func checkPath(path, member string) error {
	segs := strings.Split(path, ".")
	if len(segs) > maxPathSegments {
		return condErr(member, "condition path has more than %d segments", maxPathSegments)
	}
	for _, seg := range segs {
		if seg == "" {
			return condErr(member, "condition path %q has an empty segment", path)
		}
		if len(seg) > maxPathSegmentLen {
			return condErr(member, "condition path segment is longer than %d bytes", maxPathSegmentLen)
		}
		for _, r := range seg {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' {
				return condErr(member, "condition path %q may only contain letters, digits, _ and - separated by dots", path)
			}
		}
	}
	return nil
}

func parseOp(s string) (Op, bool) {
	switch s {
	case "=", "==":
		return OpEq, true
	case "!=":
		return OpNe, true
	case ">":
		return OpGt, true
	case ">=":
		return OpGe, true
	case "<":
		return OpLt, true
	case "<=":
		return OpLe, true
	}
	return "", false
}

// checkOrdering refuses an ordering comparison that could never be true, so
// that the mistake is a 400 at submission rather than a branch silently taken.
func checkOrdering(p Predicate, member string) error {
	if p.Op == OpEq || p.Op == OpNe {
		return nil
	}
	if _, ok := parseDecimal(string(p.Value)); !ok {
		return condErr(member, "operator %s needs a number to compare with, not %s", p.Op, p.Value)
	}
	return nil
}

// parseTextValue reads the value of the text form: a JSON scalar or a bare
// word, taken as a string.
func parseTextValue(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, condErr("", "condition has no value after the operator")
	}
	switch s[0] {
	case '"':
		return canonicalScalar(json.RawMessage(s), "")
	case '{', '[':
		return nil, condErr("", "condition value must be a number, string, true, false or null, not an object or array")
	}
	if isOpChar(s[0]) {
		// "x = =1" or "x < <3" is a slip, not a comparison with "=1".
		return nil, condErr("", "condition value %q starts like an operator: quote it if it is a string", s)
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return nil, condErr("", "condition value %q contains spaces: quote it as a JSON string", s)
	}
	switch s {
	case "true", "false", "null":
		return json.RawMessage(s), nil
	}
	if _, ok := parseDecimal(s); ok {
		return json.RawMessage(s), nil
	}
	// These read as literals to a person but are not JSON ones; taking them
	// as strings would make the condition quietly never match.
	switch strings.ToLower(s) {
	case "true", "false", "null":
		return nil, condErr("", "condition value %q: write true, false and null in lower case, or quote the string", s)
	}
	if c := s[0]; c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' {
		if _, err := strconv.ParseFloat(s, 64); err == nil || isRangeErr(err) {
			return nil, condErr("", "condition value %q is not a JSON number: write it like 0.5, 10 or -3e2, or quote the string", s)
		}
	}
	return quoteString(s), nil
}

func isRangeErr(err error) bool { return errors.Is(err, strconv.ErrRange) }

// canonicalScalar checks that raw is one JSON scalar and returns it in the
// form json.Marshal would store it, so a State round-trips byte for byte.
func canonicalScalar(raw json.RawMessage, member string) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, condErr(member, "condition value is not a valid JSON literal: %s", err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, condErr(member, "condition value has data after the JSON literal")
	}
	switch x := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case bool:
		return json.RawMessage(strconv.FormatBool(x)), nil
	case json.Number:
		if _, ok := parseDecimal(x.String()); !ok {
			return nil, condErr(member, "condition value %q is not a JSON number", x.String())
		}
		return json.RawMessage(x.String()), nil
	case string:
		return quoteString(x), nil
	}
	return nil, condErr(member, "condition value must be a number, string, true, false or null, not an object or array")
}

func quoteString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// Eval reports whether payload, a participant's answer, satisfies p. It
// never fails: anything that cannot be compared is simply false.
func (p Predicate) Eval(payload json.RawMessage) bool {
	doc, ok := decodeJSON(payload)
	if !ok {
		return false
	}
	got, ok := lookup(doc, p.Path)
	if !ok {
		return false
	}
	want, ok := decodeJSON(p.Value)
	if !ok {
		return false
	}
	switch p.Op {
	case OpEq:
		return equalScalar(got, want)
	case OpNe:
		return !equalScalar(got, want)
	}
	a, ok := number(got)
	if !ok {
		return false
	}
	b, ok := number(want)
	if !ok {
		return false
	}
	c := a.cmp(b)
	switch p.Op {
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	}
	return false
}

func decodeJSON(raw json.RawMessage) (any, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

func lookup(doc any, path string) (any, bool) {
	cur := doc
	for seg := range strings.SplitSeq(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			next, ok := node[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, ok := arrayIndex(seg)
			if !ok || i >= len(node) {
				return nil, false
			}
			cur = node[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// arrayIndex reads a canonical non-negative index: "01" is not one, so that
// a path names at most one element.
func arrayIndex(seg string) (int, bool) {
	if seg == "" || len(seg) > 9 || (len(seg) > 1 && seg[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return 0, false
		}
		n = n*10 + int(seg[i]-'0')
	}
	return n, true
}

func equalScalar(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case string:
		g, ok := got.(string)
		return ok && g == w
	case json.Number:
		a, ok := number(got)
		if !ok {
			return false
		}
		b, ok := number(w)
		return ok && a.cmp(b) == 0
	}
	return false
}

func number(v any) (decimal, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return decimal{}, false
	}
	return parseDecimal(n.String())
}

// decimal is an exact JSON number, 0.digits × 10^exp, so that large ids and
// amounts compare exactly where float64 would round them together.
type decimal struct {
	neg    bool
	digits string // no leading or trailing zeros; empty for zero
	exp    int64
}

// maxExp saturates exponents: beyond it numbers are absurd anyway, and it
// keeps the arithmetic below from overflowing.
const maxExp = 1 << 50

// parseDecimal reads a number in strict JSON grammar.
func parseDecimal(s string) (decimal, bool) {
	i, n := 0, len(s)
	neg := false
	if i < n && s[i] == '-' {
		neg = true
		i++
	}
	start := i
	switch {
	case i < n && s[i] == '0':
		i++
	case i < n && s[i] >= '1' && s[i] <= '9':
		for i < n && isDigit(s[i]) {
			i++
		}
	default:
		return decimal{}, false
	}
	intPart := s[start:i]
	frac := ""
	if i < n && s[i] == '.' {
		i++
		fs := i
		for i < n && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return decimal{}, false
		}
		frac = s[fs:i]
	}
	var e int64
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < n && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < n && isDigit(s[i]) {
			if e < maxExp {
				e = e*10 + int64(s[i]-'0')
			}
			i++
		}
		if i == es {
			return decimal{}, false
		}
		e = min(e, maxExp)
		if eneg {
			e = -e
		}
	}
	if i != n {
		return decimal{}, false
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp := int64(len(digits)) + e - int64(len(frac))
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return decimal{}, true // -0 is 0
	}
	return decimal{neg: neg, digits: digits, exp: exp}, true
}

func (d decimal) sign() int {
	switch {
	case d.digits == "":
		return 0
	case d.neg:
		return -1
	}
	return 1
}

func (d decimal) cmp(o decimal) int {
	ds, os := d.sign(), o.sign()
	if ds != os {
		if ds < os {
			return -1
		}
		return 1
	}
	if ds == 0 {
		return 0
	}
	// Without leading zeros the exponent orders magnitudes; with equal
	// exponents, digit strings without trailing zeros order lexically.
	m := 0
	switch {
	case d.exp < o.exp:
		m = -1
	case d.exp > o.exp:
		m = 1
	default:
		m = strings.Compare(d.digits, o.digits)
	}
	return m * ds
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isSpace(c byte) bool  { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isOpChar(c byte) bool { return c == '=' || c == '!' || c == '<' || c == '>' }
func trimSpace(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r < utf8.RuneSelf && isSpace(byte(r)) })
}

// nextWord splits off the first whitespace-separated word.
func nextWord(s string) (word, rest string) {
	s = trimSpace(s)
	i := 0
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
