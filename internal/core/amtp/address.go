package amtp

import (
	"strings"
)

// Address limits from shared/PROTOCOL.md.
const (
	MaxLocalPartLen = 64
	MaxDomainLen    = 253
	MaxAddressLen   = 254
	maxLabelLen     = 63
)

// Address is a parsed `local-part@domain`. Domain is lower-case; Local is
// kept as given because the draft lets an operator treat it as opaque, but
// it is matched case-insensitively (see Key).
type Address struct {
	Local  string
	Domain string
}

// String is the canonical textual form: the local-part as given, the domain
// lower-cased.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// Key is the form used to compare and index addresses.
func (a Address) Key() string { return strings.ToLower(a.Local) + "@" + a.Domain }

// KeyOf is ParseAddress(s).Key() for a valid address s: its lower-case
// form, since the domain is ASCII and a parsed domain is lower-case. For
// an s without upper-case letters, the common case, it is s itself, where
// Key builds a new string.
func KeyOf(s string) string { return strings.ToLower(s) }

// stringFrom is a.String() for the address a that ParseAddress made of s:
// s itself when parsing changed nothing (the domain was already lower
// case), rather than the same string built again.
func (a Address) stringFrom(s string) string {
	if n := len(a.Local) + 1; len(s) == n+len(a.Domain) && s[n:] == a.Domain {
		return s
	}
	return a.String()
}

// IsZero reports whether a is the zero Address.
func (a Address) IsZero() bool { return a.Local == "" && a.Domain == "" }

// ParseAddress parses and normalises an address. It rejects display names,
// comments, quoted local-parts, IP-literal domains, U-label (non-ASCII)
// domains and anything over the length limits. The returned error is an
// *Error with code INVALID_RECIPIENT; callers that validate a sender rewrap it.
func ParseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, Errorf(CodeInvalidRecipient, "address is empty")
	}
	if len(s) > MaxAddressLen {
		return Address{}, Errorf(CodeInvalidRecipient, "address is longer than %d bytes", MaxAddressLen)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, Errorf(CodeInvalidRecipient, "address %q has no @", s)
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocalPart(local); err != nil {
		return Address{}, Errorf(CodeInvalidRecipient, "address %q: %s", s, err.Error())
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Address{}, Errorf(CodeInvalidRecipient, "address %q: %s", s, err.Error())
	}
	return Address{Local: local, Domain: d}, nil
}

// MustParseAddress is for tests and constants.
func MustParseAddress(s string) Address {
	a, err := ParseAddress(s)
	if err != nil {
		panic(err)
	}
	return a
}

type addrError string

func (e addrError) Error() string { return string(e) }

// checkLocalPart accepts an RFC 5322 dot-atom: atext runs separated by
// single dots. Quoted strings and comments are refused on purpose: they are
// how display-name and spoofing tricks get in.
func checkLocalPart(local string) error {
	if local == "" {
		return addrError("local-part is empty")
	}
	if len(local) > MaxLocalPartLen {
		return addrError("local-part is longer than 64 bytes")
	}
	prevDot := true // a leading dot is as bad as a doubled one
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '.' {
			if prevDot {
				return addrError("local-part has an empty dot-separated part")
			}
			prevDot = true
			continue
		}
		if !isAtext(c) {
			return addrError("local-part contains a character that is not allowed")
		}
		prevDot = false
	}
	if prevDot {
		return addrError("local-part ends with a dot")
	}
	return nil
}

func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// NormalizeDomain validates a domain name (LDH labels, A-labels only, no IP
// literal, no trailing dot) and returns it lower-cased.
func NormalizeDomain(domain string) (string, error) {
	if domain == "" {
		return "", addrError("domain is empty")
	}
	if len(domain) > MaxDomainLen {
		return "", addrError("domain is longer than 253 bytes")
	}
	if domain[0] == '[' {
		return "", addrError("IP-literal domains are not accepted")
	}
	lower := true
	labelStart := 0
	numericLast := false
	for i := 0; i <= len(domain); i++ {
		if i < len(domain) && domain[i] != '.' {
			c := domain[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			case c >= 'A' && c <= 'Z':
				lower = false
			default:
				if c >= 0x80 {
					return "", addrError("domain must be ASCII (use the IDNA A-label form, xn--)")
				}
				return "", addrError("domain contains a character that is not allowed")
			}
			continue
		}
		label := domain[labelStart:i]
		if label == "" {
			return "", addrError("domain has an empty label")
		}
		if len(label) > maxLabelLen {
			return "", addrError("domain label is longer than 63 bytes")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", addrError("domain label starts or ends with a hyphen")
		}
		numericLast = isIPv4Number(label)
		labelStart = i + 1
	}
	// A numeric top-level label means a dotted-quad or similar: an IP
	// address in disguise, never a registrable name. inet_aton (and so
	// getaddrinfo) and the WHATWG URL parser also read 0x-prefixed hex that
	// way: 0x7f000001 is 127.0.0.1 to them.
	if numericLast {
		return "", addrError("IP-address domains are not accepted")
	}
	if lower {
		return domain, nil
	}
	return strings.ToLower(domain), nil
}

// isIPv4Number reports whether a label is one that IPv4 parsers take as a
// number: decimal digits, or 0x followed by hex digits (or nothing).
func isIPv4Number(label string) bool {
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			c := label[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
		return true
	}
	return isAllDigits(label)
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
