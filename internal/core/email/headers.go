package email

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// maxWordBytes is how many bytes of text one RFC 2047 encoded-word
// carries: 30 bytes are 40 base64 characters, 52 with "=?utf-8?b?" and
// "?=", so that a word fits a folded line of 78 after the longest field
// name Render writes (X-Amtp-Idempotency-Key).
const maxWordBytes = 30

// headerText makes s the body of an unstructured header field (Subject,
// X-AMTP-*): printable ASCII stays as it is; anything else, including
// text that merely looks like an encoded-word, is sent as encoded-words,
// so that no character of s can end the field or start another.
func headerText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if plainASCII(s) && !strings.Contains(s, "=?") {
		return s
	}
	return encodeWords(s)
}

// plainASCII reports whether s is printable ASCII (spaces included).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// encodeWords writes s as base64 encoded-words separated by spaces, never
// splitting a character across two words (RFC 2047 §5).
func encodeWords(s string) string {
	var b strings.Builder
	start := 0
	flush := func(end int) {
		if end == start {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("=?utf-8?b?")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s[start:end])))
		b.WriteString("?=")
		start = end
	}
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		if i+size-start > maxWordBytes {
			flush(i)
		}
		i += size
	}
	flush(len(s))
	return b.String()
}

// displayText is s cleaned for showing to a person: valid UTF-8, line
// breaks as "\n", and no other control character (each becomes U+FFFD).
func displayText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	clean := true
	for _, r := range s {
		if isControl(r) && r != '\n' && r != '\t' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case isControl(r):
			return utf8.RuneError
		}
		return r
	}, s)
}

// oneLine is s for a single line (a header's display name, a label):
// every control character, line breaks included, becomes a space.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// isControl reports C0, DEL, C1 and the Unicode line and paragraph
// separators, none of which belongs in a header or a label.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u2028' || r == '\u2029'
}

// clip shortens s to at most n bytes at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
