package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// MaxIDLen bounds an identifier. It is the message parser's limit on the
// schema member, so every id a message can carry is one the registry can
// hold.
const MaxIDLen = amtp.MaxSchemaLen

// NoMinor is ID.Minor for an identifier without a minor version.
const NoMinor = -1

// maxVersionDigits keeps version numbers well inside int on every platform.
const maxVersionDigits = 9

// ErrInvalidID marks an identifier that does not follow the grammar in the
// package documentation.
var ErrInvalidID = errors.New("schema: invalid id")

// ID is a parsed schema identifier such as agntcy:commerce.order.v2.1.
type ID struct {
	Namespace string // "agntcy"
	Name      string // "commerce.order"
	Major     int    // 2
	Minor     int    // 1, or NoMinor
}

// String is the canonical spelling, identical to the parsed input.
func (id ID) String() string {
	s := id.Namespace + ":" + id.Name + ".v" + strconv.Itoa(id.Major)
	if id.Minor != NoMinor {
		s += "." + strconv.Itoa(id.Minor)
	}
	return s
}

// ParseID parses an identifier; errors match ErrInvalidID.
func ParseID(s string) (ID, error) {
	if s == "" {
		return ID{}, invalidID(s, "empty")
	}
	if len(s) > MaxIDLen {
		return ID{}, invalidID(s, fmt.Sprintf("longer than %d bytes", MaxIDLen))
	}
	ns, rest, ok := strings.Cut(s, ":")
	if !ok {
		return ID{}, invalidID(s, "missing namespace, want <namespace>:<domain>.<entity>.v<major>")
	}
	if !validNamespace(ns) {
		return ID{}, invalidID(s, "namespace must be lower-case letters, digits and hyphens, starting with a letter")
	}

	segs := strings.Split(rest, ".")
	id := ID{Namespace: ns, Minor: NoMinor}
	last := len(segs) - 1
	if major, ok := parseVersion(segs[last]); ok {
		id.Major = major
		segs = segs[:last]
	} else if minor, ok := parseNumber(segs[last]); ok && last > 0 {
		major, ok := parseVersion(segs[last-1])
		if !ok {
			return ID{}, invalidID(s, "missing version .v<major>[.<minor>] at the end")
		}
		id.Major, id.Minor = major, minor
		segs = segs[:last-1]
	} else {
		return ID{}, invalidID(s, "missing version .v<major>[.<minor>] at the end")
	}

	if len(segs) < 2 {
		return ID{}, invalidID(s, "name needs at least <domain>.<entity> before the version")
	}
	for _, seg := range segs {
		if !validSegment(seg) {
			return ID{}, invalidID(s, "name segments must be lower-case letters, digits, '-' or '_', starting with a letter or digit")
		}
	}
	id.Name = strings.Join(segs, ".")
	return id, nil
}

// Compatible reports whether a receiver declaring supported understands a
// payload labelled got; see the package documentation for the rule.
func Compatible(supported, got ID) bool {
	if supported.Namespace != got.Namespace || supported.Name != got.Name || supported.Major != got.Major {
		return false
	}
	if supported.Minor == NoMinor {
		return true
	}
	return max(got.Minor, 0) <= supported.Minor
}

// Supports reports whether the declaration list patterns covers id. An
// unparsable id is never supported; unparsable entries are skipped, so one
// bad entry in a DNS record does not void the others.
func Supports(patterns []string, id string) bool {
	got, err := ParseID(id)
	if err != nil {
		return false
	}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(id, prefix) {
				return true
			}
			continue
		}
		if want, err := ParseID(p); err == nil && Compatible(want, got) {
			return true
		}
	}
	return false
}

func invalidID(s, reason string) error {
	// The id comes from untrusted input: quote a bounded prefix only.
	const show = 64
	if len(s) > show {
		s = s[:show] + "…"
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidID, s, reason)
}

func validNamespace(s string) bool {
	if s == "" || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func validSegment(s string) bool {
	if s == "" || (!isLower(s[0]) && !isDigit(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func parseVersion(s string) (int, bool) {
	if len(s) < 2 || s[0] != 'v' {
		return 0, false
	}
	return parseNumber(s[1:])
}

// parseNumber accepts only the canonical decimal form so that String
// round-trips: no sign, no leading zeros.
func parseNumber(s string) (int, bool) {
	if s == "" || len(s) > maxVersionDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
