package amtp

import (
	"encoding/json"
	"errors"
)

// parseObject is Parse's fast path for data that scanJSON accepted and
// whose first value byte (at start) is '{'; compact says that scanJSON
// found no whitespace outside strings. Knowing the input is well-formed,
// it only has to find where each member's name and value end;
// encoding/json's streaming decoder re-validates every token and cost
// about a third of the time of a whole accept.
func parseObject(data []byte, start int, st parseState, lim Limits) (*Message, error) {
	m := &Message{}
	var seen memberSet
	var memberErr error
	i := skipSpace(data, start+1)
	for i < len(data) && data[i] != '}' {
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		nameEnd := stringEnd(data, i)
		name, err := unquote(data[i:nameEnd])
		if err != nil {
			return nil, Errorf(CodeInvalidMessageFormat, "message is not valid JSON: %v", err)
		}
		i = skipSpace(data, nameEnd)
		i = skipSpace(data, i+1) // the colon
		end := valueEnd(data, i)
		if err := m.member(name, data[i:end], &seen, &st, &memberErr); err != nil {
			return nil, err
		}
		i = skipSpace(data, end)
	}
	return m.finish(&st, memberErr, lim)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string starting at data[i].
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// valueEnd returns the index just past the value starting at data[i].
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	default: // number, true, false, null
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// unquote decodes a JSON member name token, copying its bytes when it has
// no escapes (the common case) and is not one of memberNames, which are
// shared rather than copied: a string per member was a quarter of Parse's
// allocations.
func unquote(tok []byte) (string, error) {
	for _, c := range tok {
		if c == '\\' {
			var s string
			err := json.Unmarshal(tok, &s)
			return s, err
		}
	}
	if len(tok) < 2 {
		return "", errors.New("truncated string")
	}
	name := tok[1 : len(tok)-1]
	for _, known := range memberNames {
		if string(name) == known {
			return known, nil
		}
	}
	return string(name), nil
}

// appendArrayElements appends the elements of a well-formed JSON array to
// out (nothing for anything else). A caller's out of small fixed capacity
// keeps the common short list off the heap.
func appendArrayElements(out [][]byte, raw []byte) [][]byte {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return out
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		end := valueEnd(raw, i)
		out = append(out, raw[i:end])
		i = skipSpace(raw, end)
	}
	return out
}

// maxNestingDepth is encoding/json's limit on nested arrays and objects,
// which scanJSON applies too so that it accepts exactly what json.Valid
// does.
const maxNestingDepth = 10000

// scanJSON reports whether data is one well-formed JSON value with
// optional whitespace around it, deciding exactly as encoding/json.Valid
// does (RFC 8259 and at most maxNestingDepth nested arrays and objects;
// the bytes of strings are not checked for UTF-8, which Parse does
// first). spaced reports whether there was whitespace outside strings:
// when there was none, every value in data is already compact.
//
// It replaces json.Valid in Parse's fast path: encoding/json's scanner
// calls a state function per byte, and with the json.Compact of each
// value, which a document without whitespace does not need, it was most
// of Parse's time. FuzzScanJSON holds it to json.Valid.
func scanJSON(data []byte) (valid, spaced bool) {
	var stackBuf [64]byte // '{' or '[' for each open container
	stack := stackBuf[:0]
	i, n := 0, len(data)
	for {
		// A value starts at i, after whitespace.
		i = skipSpaceNoting(data, i, &spaced)
		if i >= n {
			return false, spaced
		}
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) == maxNestingDepth {
				return false, spaced
			}
			stack = append(stack, c)
			i = skipSpaceNoting(data, i+1, &spaced)
			if i < n && data[i] == c+2 { // the matching '}' or ']'
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = scanMemberName(data, i, &spaced); i < 0 {
					return false, spaced
				}
			}
			continue
		case '"':
			i = scanString(data, i)
		case 't':
			i = scanLiteral(data, i, "true")
		case 'f':
			i = scanLiteral(data, i, "false")
		case 'n':
			i = scanLiteral(data, i, "null")
		default:
			i = scanNumber(data, i)
		}
		if i < 0 {
			return false, spaced
		}
		// A value ended at i: close the containers it completes, then
		// step to where the next value starts.
		for {
			i = skipSpaceNoting(data, i, &spaced)
			if len(stack) == 0 {
				return i == n, spaced
			}
			if i >= n {
				return false, spaced
			}
			top := stack[len(stack)-1]
			if data[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if data[i] != ',' {
				return false, spaced
			}
			i++
			if top == '{' {
				if i = scanMemberName(data, skipSpaceNoting(data, i, &spaced), &spaced); i < 0 {
					return false, spaced
				}
			}
			break
		}
	}
}

// skipSpaceNoting is skipSpace that sets *spaced when it skips anything.
func skipSpaceNoting(data []byte, i int, spaced *bool) int {
	j := skipSpace(data, i)
	if j != i {
		*spaced = true
	}
	return j
}

// scanMemberName scans a member's name starting at data[i] and the colon
// after it, and returns the index after the colon, or -1.
func scanMemberName(data []byte, i int, spaced *bool) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = scanString(data, i); i < 0 {
		return -1
	}
	i = skipSpaceNoting(data, i, spaced)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return i + 1
}

// scanString returns the index after the string that starts at data[i]
// ('"'), or -1 if it is malformed.
func scanString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		case c < 0x20:
			return -1
		}
	}
	return -1
}

// scanLiteral returns the index after lit at data[i], or -1.
func scanLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// scanNumber returns the index after the number that starts at data[i]
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?), or -1.
func scanNumber(data []byte, i int) int {
	n := len(data)
	if i < n && data[i] == '-' {
		i++
	}
	switch {
	case i >= n:
		return -1
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return -1
	}
	if i < n && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}
