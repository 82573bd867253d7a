package amtp

import (
	"encoding/json"
	"errors"
)

// parseObject is Parse's fast path for data that json.Valid accepted and
// whose first value byte (at start) is '{'. Knowing the input is
// well-formed, it only has to find where each member's name and value
// end; encoding/json's streaming decoder re-validates every token and
// cost about a third of the time of a whole accept.
func parseObject(data []byte, start int, lim Limits) (*Message, error) {
	m := &Message{}
	seen := make(map[string]bool, 16)
	var st parseState
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
		if err := m.member(name, data[i:end], seen, &st, &memberErr); err != nil {
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

// unquote decodes a JSON string token, copying its bytes when it has no
// escapes (the common case).
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
	return string(tok[1 : len(tok)-1]), nil
}

// arrayElements splits a well-formed JSON array into its elements (nil
// for anything else).
func arrayElements(raw []byte) [][]byte {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil
	}
	var out [][]byte
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
