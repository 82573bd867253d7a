package ipclass_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/agentry/agentry/internal/core/ipclass"
)

type verdict struct {
	addr   string
	public bool
	why    string
}

// ipv4Registry has one address inside every entry of the IANA IPv4
// Special-Purpose Address Registry, plus neighbours just outside some of
// them. "Globally Reachable = False" is not public; True is public; the
// one N/A entry (192.88.99.0/24, the deprecated 6to4 relay anycast) is
// not public.
var ipv4Registry = []verdict{
	{"0.1.2.3", false, "0.0.0.0/8 this network"},
	{"0.0.0.0", false, "0.0.0.0/32 this host"},
	{"10.1.2.3", false, "10.0.0.0/8 private"},
	{"100.64.0.1", false, "100.64.0.0/10 shared address space"},
	{"100.127.255.254", false, "100.64.0.0/10, last"},
	{"100.63.255.255", true, "just below 100.64.0.0/10"},
	{"100.128.0.0", true, "just above 100.64.0.0/10"},
	{"127.0.0.1", false, "127.0.0.0/8 loopback"},
	{"127.255.255.254", false, "127.0.0.0/8, last"},
	{"169.254.169.254", false, "169.254.0.0/16 link local: cloud metadata"},
	{"172.16.0.1", false, "172.16.0.0/12 private"},
	{"172.31.255.254", false, "172.16.0.0/12, last"},
	{"172.32.0.1", true, "just above 172.16.0.0/12"},
	{"192.0.0.100", false, "192.0.0.0/24 IETF protocol assignments"},
	{"192.0.0.1", false, "192.0.0.0/29 IPv4 service continuity"},
	{"192.0.0.8", false, "192.0.0.8/32 IPv4 dummy address"},
	{"192.0.0.9", true, "192.0.0.9/32 PCP anycast (globally reachable)"},
	{"192.0.0.10", true, "192.0.0.10/32 TURN anycast (globally reachable)"},
	{"192.0.0.170", false, "192.0.0.170/32 NAT64/DNS64 discovery"},
	{"192.0.0.171", false, "192.0.0.171/32 NAT64/DNS64 discovery"},
	{"192.0.2.1", false, "192.0.2.0/24 TEST-NET-1"},
	{"192.31.196.1", true, "192.31.196.0/24 AS112-v4"},
	{"192.52.193.1", true, "192.52.193.0/24 AMT"},
	{"192.88.99.1", false, "192.88.99.0/24 deprecated 6to4 relay anycast (N/A)"},
	{"192.88.99.2", false, "192.88.99.2/32 6a44 relay anycast"},
	{"192.88.98.255", true, "just below 192.88.99.0/24"},
	{"192.168.1.1", false, "192.168.0.0/16 private"},
	{"192.175.48.1", true, "192.175.48.0/24 AS112 direct delegation"},
	{"198.18.0.1", false, "198.18.0.0/15 benchmarking"},
	{"198.19.255.254", false, "198.18.0.0/15, last"},
	{"198.51.100.1", false, "198.51.100.0/24 TEST-NET-2"},
	{"203.0.113.1", false, "203.0.113.0/24 TEST-NET-3"},
	{"240.0.0.1", false, "240.0.0.0/4 reserved"},
	{"255.255.255.254", false, "240.0.0.0/4, last"},
	{"255.255.255.255", false, "255.255.255.255/32 limited broadcast"},
	{"224.0.0.1", false, "multicast (its own registry)"},
	{"239.255.255.250", false, "multicast, administratively scoped"},
	{"8.8.8.8", true, "global unicast"},
	{"1.1.1.1", true, "global unicast"},
}

// ipv6Registry has one address inside every entry of the IANA IPv6
// Special-Purpose Address Registry. Entries with a verdict of their own:
// the IPv4-mapped block follows its IPv4 address (the socket layer dials
// that address); the well-known NAT64 prefix and 6to4 carry an IPv4
// address and follow it; Teredo and the deprecated ORCHID block (both
// N/A) are refused.
var ipv6Registry = []verdict{
	{"::1", false, "::1/128 loopback"},
	{"::", false, "::/128 unspecified"},
	{"::ffff:8.8.8.8", true, "::ffff:0:0/96 IPv4-mapped, public IPv4"},
	{"::ffff:169.254.169.254", false, "::ffff:0:0/96 IPv4-mapped, metadata"},
	{"::ffff:127.0.0.1", false, "::ffff:0:0/96 IPv4-mapped, loopback"},
	{"64:ff9b::808:808", true, "64:ff9b::/96 NAT64, public IPv4"},
	{"64:ff9b::a9fe:a9fe", false, "64:ff9b::/96 NAT64, metadata"},
	{"64:ff9b::7f00:1", false, "64:ff9b::/96 NAT64, loopback"},
	{"64:ff9b::a00:1", false, "64:ff9b::/96 NAT64, private"},
	{"64:ff9b:1::808:808", false, "64:ff9b:1::/48 local-use translation (not globally reachable)"},
	{"64:ff9b:1:a9fe:a9:fe00::", false, "64:ff9b:1::/48 local-use translation, metadata at the /48 position"},
	{"100::1", false, "100::/64 discard-only"},
	{"100:0:0:1::1", false, "100:0:0:1::/64 dummy prefix"},
	{"2001:1ff::1", false, "2001::/23 IETF protocol assignments"},
	{"2001::1", false, "2001::/32 Teredo (N/A): refused"},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false, "2001::/32 Teredo with public server and client: refused"},
	{"2001:0:c000:201:0:0:5601:5601", false, "2001::/32 Teredo to metadata: refused"},
	{"2001:1::1", true, "2001:1::1/128 PCP anycast"},
	{"2001:1::2", true, "2001:1::2/128 TURN anycast"},
	{"2001:1::3", true, "2001:1::3/128 DNS-SD SRP anycast"},
	{"2001:1::4", false, "2001:1::/32 beyond the allocated anycast addresses"},
	{"2001:2::1", false, "2001:2::/48 benchmarking"},
	{"2001:3::1", true, "2001:3::/32 AMT"},
	{"2001:4:112::1", true, "2001:4:112::/48 AS112-v6"},
	{"2001:4:113::1", false, "2001::/23 next to AS112-v6"},
	{"2001:10::1", false, "2001:10::/28 deprecated ORCHID (N/A)"},
	{"2001:20::1", true, "2001:20::/28 ORCHIDv2"},
	{"2001:30::1", true, "2001:30::/28 DETs"},
	{"2001:db8::1", false, "2001:db8::/32 documentation"},
	{"2002:808:808::1", true, "2002::/16 6to4, public IPv4"},
	{"2002:a9fe:a9fe::1", false, "2002::/16 6to4, metadata"},
	{"2002:7f00:1::1", false, "2002::/16 6to4, loopback"},
	{"2002:c000:201::1", false, "2002::/16 6to4, TEST-NET-1"},
	{"2620:4f:8000::1", true, "2620:4f:8000::/48 AS112 direct delegation"},
	{"3fff::1", false, "3fff::/20 documentation"},
	{"3fff:fff:ffff::1", false, "3fff::/20, last /32"},
	{"5f00::1", false, "5f00::/16 SRv6 SIDs"},
	{"fc00::1", false, "fc00::/7 unique local"},
	{"fd00:ec2::254", false, "fc00::/7: the EC2 IPv6 metadata address"},
	{"fe80::1", false, "fe80::/10 link local"},
	{"febf::1", false, "fe80::/10, last"},
}

// ipv6Other are the forms outside the registry: deprecated blocks, other
// IPv4-embedding forms, ISATAP interface ids, zones, unallocated space.
var ipv6Other = []verdict{
	{"2606:4700::1111", true, "global unicast"},
	{"2a00:1450:4001::1", true, "global unicast"},
	{"fec0::1", false, "fec0::/10 site-local (deprecated)"},
	{"ff02::1", false, "ff00::/8 multicast, link scope"},
	{"ff0e::1", false, "ff00::/8 multicast, global scope"},
	{"::808:808", true, "::/96 IPv4-compatible, public IPv4"},
	{"::a9fe:a9fe", false, "::/96 IPv4-compatible, metadata"},
	{"::7f00:1", false, "::/96 IPv4-compatible, loopback"},
	{"::2", false, "::/96 IPv4-compatible, 0.0.0.2"},
	{"::ffff:0:808:808", true, "::ffff:0:0:0/96 IPv4-translated, public IPv4"},
	{"::ffff:0:a9fe:a9fe", false, "::ffff:0:0:0/96 IPv4-translated, metadata"},
	{"::ffff:0:a00:1", false, "::ffff:0:0:0/96 IPv4-translated, private"},
	{"2606:4700::5efe:a9fe:a9fe", false, "ISATAP interface id 0:5efe, metadata"},
	{"2606:4700::200:5efe:a9fe:a9fe", false, "ISATAP interface id 200:5efe, metadata"},
	{"2606:4700::200:5efe:a00:1", false, "ISATAP interface id 200:5efe, private"},
	{"2606:4700::5efe:808:808", true, "ISATAP interface id, public IPv4"},
	{"2002:808:808::5efe:a9fe:a9fe", false, "6to4 of a public IPv4 with an ISATAP id of metadata"},
	{"fe80::5efe:808:808", false, "ISATAP in link-local space"},
	{"4000::1", false, "outside 2000::/3: unallocated"},
	{"1::1", false, "outside 2000::/3: unallocated"},
	{"e000::1", false, "outside 2000::/3: unallocated"},
	{"64:ff9b:0:0:1::1", false, "64:ff9b::/32 outside the /96 and the /48: unallocated"},
	{"fe80::1%eth0", false, "link local with a zone"},
	{"2606:4700::1111%eth0", false, "a zone on a global address"},
}

func TestPublic(t *testing.T) {
	for name, table := range map[string][]verdict{"ipv4 registry": ipv4Registry, "ipv6 registry": ipv6Registry, "ipv6 other": ipv6Other} {
		t.Run(name, func(t *testing.T) {
			for _, v := range table {
				ip := netip.MustParseAddr(v.addr)
				assert.Equal(t, v.public, ipclass.Public(ip), "%s (%s)", v.addr, v.why)
			}
		})
	}
	assert.False(t, ipclass.Public(netip.Addr{}), "the zero Addr")
}

func TestNonCanonicalIPv4(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"2852039166", true},          // 169.254.169.254 as one decimal number
		{"0xa9fe.0xa9fe", true},       // two hex parts
		{"0XA9FEA9FE", true},          // one hex number, upper case
		{"0251.0376.0251.0376", true}, // octal parts
		{"169.254.43518", true},       // three parts
		{"127.1", true},               // two parts
		{"0x7f000001", true},          //
		{"017700000001", true},        // one octal number
		{"010.0.0.1", true},           // a leading zero: octal to inet_aton
		{"169.254.169.254.", true},    // trailing dot
		{"1.2.3.4.5", true},           // five parts: never a DNS name either
		{"0x", true},                  // inet_aton reads an empty hex part as 0
		{"example.0x1f", true},        // a numeric last label: no public name ends so
		{"host.123", true},            //
		{"169.254.169.254", false},    // canonical: an IP literal, judged as one
		{"::1", false},                // an IPv6 literal
		{"example.com", false},        //
		{"1e100.net", false},          //
		{"0xdeadbeef.com", false},     //
		{"123.example", false},        //
		{"x0a", false},                //
		{"0xg1", false},               // not hex
		{"", false},                   //
		{".", false},                  //
	} {
		assert.Equal(t, tc.want, ipclass.NonCanonicalIPv4(tc.host), "%q", tc.host)
	}
}
