package discovery

import (
	"net/url"
	"strconv"
	"strings"
)

const (
	// Version is the only v= value this package understands.
	Version = "amtp1"

	// DefaultMaxSize applies when a record has no max-size tag.
	DefaultMaxSize int64 = 10485760

	maxGatewayLen = 2048
	maxListItem   = 255
)

// Record is a parsed _amtp TXT record.
type Record struct {
	Version string   // always "amtp1" once parsed
	Gateway string   // absolute http(s) URL, as published
	Auth    []string // lower-cased auth methods; nil when absent
	MaxSize int64    // bytes; DefaultMaxSize when absent
	Schemas []string // schema patterns as published; nil when absent
}

type tag struct{ key, value string }

// splitTags breaks a DKIM-style tag list into key/value pairs. Keys are
// lower-cased; empty segments (a trailing ";") are skipped because
// publishers add them routinely.
func splitTags(txt string) ([]tag, error) {
	var tags []tag
	seen := make(map[string]bool)
	for seg := range strings.SplitSeq(txt, ";") {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			return nil, invalidRecord("tag %q has no '='", clip(seg))
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if !isTagKey(k) {
			return nil, invalidRecord("malformed tag name %q", clip(k))
		}
		// A repeated tag is ambiguous; DKIM rejects it too.
		if seen[k] {
			return nil, invalidRecord("duplicate tag %q", k)
		}
		seen[k] = true
		tags = append(tags, tag{key: k, value: strings.TrimSpace(v)})
	}
	return tags, nil
}

// hasVersion reports whether txt begins with the v=amtp1 tag; this is how a
// TXT record is recognised as ours among the others at the same name.
func hasVersion(txt string) bool {
	first, _, _ := strings.Cut(txt, ";")
	k, v, ok := strings.Cut(first, "=")
	return ok && strings.EqualFold(strings.TrimSpace(k), "v") &&
		strings.EqualFold(strings.TrimSpace(v), Version)
}

// ParseTXT parses the text of one _amtp TXT record (character-strings
// already joined). The v tag must come first and equal amtp1; gateway is
// required; unknown tags are ignored so the format can grow.
func ParseTXT(txt string) (*Record, error) {
	tags, err := splitTags(txt)
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 || tags[0].key != "v" {
		return nil, invalidRecord("record does not start with a v= tag")
	}
	if !strings.EqualFold(tags[0].value, Version) {
		return nil, invalidRecord("unsupported version %q", clip(tags[0].value))
	}
	rec := &Record{Version: Version, MaxSize: DefaultMaxSize}
	for _, t := range tags[1:] {
		switch t.key {
		case "gateway":
			if err := checkGateway(t.value); err != nil {
				return nil, err
			}
			rec.Gateway = t.value
		case "auth":
			rec.Auth, err = parseList("auth", t.value, isAuthMethod, true)
			if err != nil {
				return nil, err
			}
		case "max-size":
			rec.MaxSize, err = parseMaxSize(t.value)
			if err != nil {
				return nil, err
			}
		case "schemas":
			rec.Schemas, err = parseList("schemas", t.value, isSchemaPattern, false)
			if err != nil {
				return nil, err
			}
		}
	}
	if rec.Gateway == "" {
		return nil, invalidRecord("gateway tag is missing")
	}
	return rec, nil
}

// FormatTXT renders rec in canonical tag order (v, gateway, auth, max-size,
// schemas), leaving out empty values. It does not validate: a record that
// ParseTXT would reject formats to text that ParseTXT still rejects.
func FormatTXT(rec Record) string {
	var b strings.Builder
	v := rec.Version
	if v == "" {
		v = Version
	}
	b.WriteString("v=")
	b.WriteString(v)
	add := func(k, v string) {
		if v != "" {
			b.WriteByte(';')
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	add("gateway", rec.Gateway)
	add("auth", strings.Join(rec.Auth, ","))
	if rec.MaxSize > 0 {
		add("max-size", strconv.FormatInt(rec.MaxSize, 10))
	}
	add("schemas", strings.Join(rec.Schemas, ","))
	return b.String()
}

func checkGateway(raw string) error {
	if raw == "" {
		return invalidRecord("gateway is empty")
	}
	if len(raw) > maxGatewayLen {
		return invalidRecord("gateway is longer than %d bytes", maxGatewayLen)
	}
	// Whitespace or control bytes in a published URL are either an editing
	// accident or an attempt to smuggle something past a later consumer.
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return invalidRecord("gateway contains a space, control or non-ASCII byte")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalidRecord("gateway is not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return invalidRecord("gateway %q must be an http or https URL", clip(raw))
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return invalidRecord("gateway %q has no host", clip(raw))
	case u.User != nil:
		return invalidRecord("gateway %q must not carry credentials", clip(raw))
	case strings.Contains(raw, "#"):
		return invalidRecord("gateway %q must not have a fragment", clip(raw))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return invalidRecord("gateway %q has an invalid port", clip(raw))
		}
	}
	return nil
}

func parseMaxSize(v string) (int64, error) {
	// ParseInt would accept a sign; a size is plain digits.
	if !isDigits(v) {
		return 0, invalidRecord("max-size %q is not a positive integer", clip(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, invalidRecord("max-size %q is not a positive 64-bit integer", clip(v))
	}
	return n, nil
}

// parseList splits a comma list, tolerating blanks around items and empty
// items (stray commas). An empty result is nil so parsed records compare
// equal regardless of how the absence was spelled.
func parseList(name, v string, valid func(string) bool, lower bool) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if len(item) > maxListItem || !valid(item) {
			return nil, invalidRecord("%s item %q is malformed", name, clip(item))
		}
		if lower {
			item = strings.ToLower(item)
		}
		out = append(out, item)
	}
	return out, nil
}

func isTagKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isAuthMethod(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// isSchemaPattern allows the schema identifier alphabet used by the message
// validator plus '*' for wildcards such as agntcy:commerce.*.
func isSchemaPattern(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte(".-_:/*", c) >= 0) {
			return false
		}
	}
	return true
}

// clip keeps hostile record text from bloating error messages and logs.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
