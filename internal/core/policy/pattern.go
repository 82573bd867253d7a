package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// addrSet is a compiled list of address patterns. Lookups go by map, so a
// rule with a thousand patterns costs a few map probes per decision, not a
// thousand comparisons.
type addrSet struct {
	any     bool
	exact   map[string]struct{} // "local@domain", lower-case
	domains map[string]struct{} // *@domain
	parents map[string]struct{} // *@*.domain: strict subdomains of these
}

func (s *addrSet) add(pattern string) error {
	if pattern == "*" || pattern == "*@*" {
		s.any = true
		return nil
	}
	local, domain, hasAt := cutLast(pattern, '@')
	if !hasAt {
		// The draft's domain-only form. A dot is required so that an agent
		// name written without its domain is reported, not taken for a
		// single-label domain that never matches.
		if !strings.Contains(pattern, ".") {
			return fmt.Errorf("%q is neither an address nor a domain with a dot: write name@domain, *@domain or *.domain", clip(pattern))
		}
		local = "*"
	}
	sub := false
	if d, ok := strings.CutPrefix(domain, "*."); ok {
		sub, domain = true, d
	}
	if !hasAt && !sub {
		domain = pattern
	}
	norm, err := amtp.NormalizeDomain(domain)
	if err != nil {
		if strings.Contains(domain, "*") {
			return fmt.Errorf("%q: * is only allowed as the whole first label of a domain (*.example.com)", clip(pattern))
		}
		return fmt.Errorf("%q: %w", clip(pattern), err)
	}
	switch {
	case local == "*" && sub:
		s.parents = addTo(s.parents, norm)
	case local == "*":
		s.domains = addTo(s.domains, norm)
	case strings.Contains(local, "*"):
		// '*' is a legal address character, but a literal address with one
		// is far likelier to be a mistaken glob than a real agent.
		return fmt.Errorf("%q: * is only allowed as the whole local part (*@domain)", clip(pattern))
	case sub:
		return fmt.Errorf("%q: a subdomain wildcard needs * as the local part (*@*.domain)", clip(pattern))
	default:
		a, err := amtp.ParseAddress(local + "@" + domain)
		if err != nil {
			// amtp's message already quotes the address.
			var ae *amtp.Error
			if errors.As(err, &ae) {
				return errors.New(ae.Message)
			}
			return fmt.Errorf("%q: %w", clip(pattern), err)
		}
		s.exact = addTo(s.exact, a.Key())
	}
	return nil
}

func (s *addrSet) match(addr string) bool {
	if s.any {
		return true
	}
	if _, ok := s.exact[addr]; ok {
		return true
	}
	_, domain, ok := cutLast(addr, '@')
	if !ok {
		return false
	}
	if _, ok := s.domains[domain]; ok {
		return true
	}
	if len(s.parents) == 0 {
		return false
	}
	// Walk up label by label: a.b.example.com tries b.example.com,
	// example.com, com. Never a string suffix, which would let
	// evil-example.com pass for example.com.
	for {
		i := strings.IndexByte(domain, '.')
		if i < 0 {
			return false
		}
		domain = domain[i+1:]
		if _, ok := s.parents[domain]; ok {
			return true
		}
	}
}

// schemaSet is a compiled list of schema patterns: exact ids and prefixes.
type schemaSet struct {
	any      bool
	exact    map[string]struct{}
	prefixes []string
}

func (s *schemaSet) add(pattern string) error {
	if pattern == "*" {
		s.any = true
		return nil
	}
	prefix, wild := strings.CutSuffix(pattern, "*")
	if strings.Contains(prefix, "*") {
		return fmt.Errorf("%q: * is only allowed at the end", clip(pattern))
	}
	if len(prefix) > amtp.MaxSchemaLen {
		return fmt.Errorf("%q: longer than %d bytes", clip(pattern), amtp.MaxSchemaLen)
	}
	for i := 0; i < len(prefix); i++ {
		if !isSchemaByte(prefix[i]) {
			return fmt.Errorf("%q: schema ids use only letters, digits and . - _ : /", clip(pattern))
		}
	}
	if wild {
		s.prefixes = append(s.prefixes, prefix)
		return nil
	}
	// An exact id that no message could carry would make the rule dead;
	// the message validator wants a colon with something on each side.
	if c := strings.IndexByte(prefix, ':'); c <= 0 || c == len(prefix)-1 {
		return fmt.Errorf("%q: not a schema id (namespace:name, e.g. agntcy:commerce.order.v2); end it with * for a prefix", clip(pattern))
	}
	s.exact = addTo(s.exact, prefix)
	return nil
}

// match is case-sensitive: schema ids are identifiers, not host names.
func (s *schemaSet) match(schema string) bool {
	if schema == "" {
		return false
	}
	if s.any {
		return true
	}
	if _, ok := s.exact[schema]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(schema, p) {
			return true
		}
	}
	return false
}

func isSchemaByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte(".-_:/", c) >= 0
}

func addTo(m map[string]struct{}, k string) map[string]struct{} {
	if m == nil {
		m = make(map[string]struct{})
	}
	m[k] = struct{}{}
	return m
}

// cutLast splits s around the last sep, as addresses are split: the
// domain cannot contain '@', the local part is checked separately.
func cutLast(s string, sep byte) (before, after string, found bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}
