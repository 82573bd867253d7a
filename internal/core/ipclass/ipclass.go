// Package ipclass decides which IP addresses the gateway may connect to on
// someone else's say-so (a webhook URL, another domain's gateway URL). It
// is pure — no resolution, no I/O — so that both the registration check
// in the use cases and the outbound dialer's guard (netguard) can share
// one verdict.
//
// The verdicts follow the IANA IPv4 and IPv6 Special-Purpose Address
// Registries: a block whose "Globally Reachable" is False is not public.
// IPv6 forms that carry an IPv4 address are judged by that address as
// well, since a translator or tunnel on the path delivers to it.
package ipclass

import (
	"net/netip"
	"strings"
)

// Public reports whether ip is a globally reachable unicast address that
// the gateway may connect to. Every special-purpose block not globally
// reachable is refused, so are multicast, addresses with a zone (scoped by
// definition), IPv6 outside the global unicast space 2000::/3, and IPv6
// forms whose embedded IPv4 address is not public.
func Public(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	if ip.Is4() {
		return public4(ip)
	}
	if v4, ok := translated(ip); ok {
		return public4(v4)
	}
	return public6(ip)
}

// public4 judges an IPv4 address by the IPv4 registry (and multicast).
func public4(ip netip.Addr) bool {
	if ip.IsMulticast() {
		return false
	}
	for _, p := range global4 {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range nonGlobal4 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// public6 judges a native IPv6 address (not one of the translated forms).
func public6(ip netip.Addr) bool {
	if !globalUnicast6.Contains(ip) {
		// Loopback, unspecified, ULA, link-local, site-local, multicast,
		// discard-only, the dummy prefix, SRv6 SIDs, the local-use NAT64
		// prefix and everything IANA has not allocated are outside it.
		return false
	}
	for _, p := range global6 {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range nonGlobal6 {
		if p.Contains(ip) {
			return false
		}
	}
	b := ip.As16()
	if sixToFour.Contains(ip) && !public4(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})) {
		return false
	}
	if v4, ok := isatap(b); ok && !public4(v4) {
		return false
	}
	return true
}

// translated extracts the IPv4 address of the forms whose whole meaning
// is "this IPv4 address": IPv4-mapped (dialled as IPv4 by the socket
// layer), IPv4-compatible (deprecated; tunnelled by old stacks),
// IPv4-translated (SIIT) and the well-known NAT64 prefix 64:ff9b::/96.
func translated(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	for _, p := range translatedPrefixes {
		if p.Contains(ip) {
			return v4, true
		}
	}
	return netip.Addr{}, false
}

// isatap extracts the IPv4 address of an ISATAP interface id
// (RFC 5214: 00-00-5E-FE or 02-00-5E-FE, then the IPv4 address), under
// any prefix. The universal/local and group bits of the first byte are
// ignored so that no variant slips through.
func isatap(b [16]byte) (netip.Addr, bool) {
	if b[8]&^0x03 != 0 || b[9] != 0 || b[10] != 0x5e || b[11] != 0xfe {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var (
	// global4 are the globally reachable entries inside blocks that
	// nonGlobal4 refuses (192.0.0.0/24); checked first.
	global4 = prefixes("192.0.0.9/32", "192.0.0.10/32")
	// nonGlobal4: every IPv4 registry entry that is not globally
	// reachable, and the deprecated 6to4 relay anycast block (N/A).
	nonGlobal4 = prefixes(
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
	)

	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	// global6 are the globally reachable entries inside 2001::/23.
	global6 = prefixes(
		"2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:3::/32",
		"2001:4:112::/48", "2001:20::/28", "2001:30::/28",
	)
	// nonGlobal6: the registry's blocks inside 2000::/3 that are not
	// globally reachable. 2001::/23 takes in Teredo (N/A; refused rather
	// than trusting two embedded addresses), benchmarking and the
	// deprecated ORCHID block.
	nonGlobal6 = prefixes("2001::/23", "2001:db8::/32", "3fff::/20")

	translatedPrefixes = prefixes("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)

// NonCanonicalIPv4 reports whether host — a URL's host name, which
// netip.ParseAddr did not accept — is a number some resolver would read as
// an IPv4 address: decimal, octal or hex parts, fewer than four of them
// (inet_aton's forms: 2852039166, 0xa9fe.0xa9fe, 0251.0376.0251.0376,
// 169.254.43518) or a dotted quad with leading zeros or a trailing dot.
// Following the WHATWG URL standard, a host whose last label is numeric
// counts: no public DNS name has a numeric top-level label, so refusing
// every such host refuses every spelling without enumerating them.
// Canonical IP literals answer false; judge those with Public.
func NonCanonicalIPv4(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	return numericLabel(last)
}

// numericLabel: all decimal digits, or 0x followed by hex digits (none
// included, which inet_aton reads as 0).
func numericLabel(s string) bool {
	if s == "" {
		return false
	}
	digits := "0123456789"
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, digits = s[2:], "0123456789abcdefABCDEF"
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(digits, s[i]) < 0 {
			return false
		}
	}
	return true
}
