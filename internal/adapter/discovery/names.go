package discovery

import "strings"

const (
	maxDomainLen = 253
	maxLabelLen  = 63
)

// normalizeDomain checks that domain is a host name we are willing to put in
// a query and returns it lower-cased without a trailing dot. Only LDH labels
// are accepted: underscores, IP literals and non-ASCII (U-label) names are
// refused up front, because they are either not mail domains or would let a
// caller steer queries at names like _amtp._amtpkey.
func normalizeDomain(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" {
		return "", invalidName("domain is empty")
	}
	if len(d) > maxDomainLen {
		return "", invalidName("domain %.40q... is longer than 253 bytes", d)
	}
	if d[0] == '[' {
		return "", invalidName("domain %q is an IP literal", d)
	}
	last := ""
	for label := range strings.SplitSeq(d, ".") {
		if err := checkLabel(label); err != nil {
			return "", invalidName("domain %q: %s", d, err.Error())
		}
		last = label
	}
	// No top-level domain is numeric, so an all-digit last label means an
	// IPv4 address (or a fragment of one) rather than a name.
	if isDigits(last) {
		return "", invalidName("domain %q is an IP address", d)
	}
	return strings.ToLower(d), nil
}

// normalizeSelector applies the single-label rules to a key selector.
func normalizeSelector(sel string) (string, error) {
	if err := checkLabel(sel); err != nil {
		return "", invalidName("selector %q: %s", sel, err.Error())
	}
	return strings.ToLower(sel), nil
}

type labelError string

func (e labelError) Error() string { return string(e) }

func checkLabel(label string) error {
	switch {
	case label == "":
		return labelError("empty label")
	case len(label) > maxLabelLen:
		return labelError("label longer than 63 bytes")
	case label[0] == '-' || label[len(label)-1] == '-':
		return labelError("label starts or ends with a hyphen")
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
		case c >= 0x80:
			return labelError("non-ASCII character (use the xn-- A-label form)")
		default:
			return labelError("character outside letters, digits and hyphen")
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
