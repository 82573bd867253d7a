package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ask(t *testing.T, s *Server, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(4096, false)
	}
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	resp, _, err := c.Exchange(m, s.Addr())
	require.NoError(t, err, "%s query %s/%s", network, name, dns.TypeToString[qtype])
	return resp
}

func TestServesSameAnswerOverUDPAndTCP(t *testing.T) {
	s := Start(t)
	host, _, err := net.SplitHostPort(s.Addr())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)

	s.SetTXT("_amtp.Example.com", 120, "v=amtp1;gateway=https://gw.example.com")
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			resp := ask(t, s, network, "_amtp.example.COM", dns.TypeTXT, false)
			assert.Equal(t, dns.RcodeSuccess, resp.Rcode)
			assert.True(t, resp.Authoritative)
			require.Len(t, resp.Answer, 1)
			txt := resp.Answer[0].(*dns.TXT)
			assert.Equal(t, []string{"v=amtp1;gateway=https://gw.example.com"}, txt.Txt)
			assert.Equal(t, uint32(120), txt.Hdr.Ttl)
		})
	}
	assert.Equal(t, 2, s.Queries("_amtp.example.com.", dns.TypeTXT))
	assert.Equal(t, 1, s.TCPQueries("_AMTP.example.com", dns.TypeTXT))
	assert.Equal(t, 0, s.Queries("_amtp.example.com", dns.TypeMX))
}

func TestNegativeAnswers(t *testing.T) {
	s := Start(t)
	s.SetTXT("_amtp.example.com", 60, "x")
	s.SetA("host.example.com", 60, "192.0.2.1")

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		wantRcode int
	}{
		{"unknown name is NXDOMAIN", "nope.example.org", dns.TypeTXT, dns.RcodeNameError},
		{"known name without the type is NODATA", "host.example.com", dns.TypeTXT, dns.RcodeSuccess},
		{"empty non-terminal is NODATA", "example.com", dns.TypeMX, dns.RcodeSuccess},
		{"name under a leaf is NXDOMAIN", "a.host.example.com", dns.TypeA, dns.RcodeNameError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := ask(t, s, "udp", tc.qname, tc.qtype, false)
			assert.Equal(t, tc.wantRcode, resp.Rcode)
			assert.Empty(t, resp.Answer)
			require.Len(t, resp.Ns, 1)
			soa, ok := resp.Ns[0].(*dns.SOA)
			require.True(t, ok, "authority section holds an SOA")
			assert.Equal(t, uint32(NegativeTTL), soa.Minttl)
			assert.Equal(t, uint32(NegativeTTL), soa.Hdr.Ttl)
		})
	}
}

func TestRecordTypes(t *testing.T) {
	s := Start(t)
	s.SetMX("example.com", 300, "mx2.example.com", 20)
	s.SetMX("example.com", 300, "MX1.example.com.", 10)
	s.SetA("host.example.com", 60, "192.0.2.7")
	s.SetA("host.example.com", 60, "2001:db8::7")

	resp := ask(t, s, "udp", "example.com", dns.TypeMX, false)
	require.Len(t, resp.Answer, 2)
	assert.Equal(t, "mx2.example.com.", resp.Answer[0].(*dns.MX).Mx)
	assert.Equal(t, uint16(10), resp.Answer[1].(*dns.MX).Preference)
	assert.Equal(t, "mx1.example.com.", resp.Answer[1].(*dns.MX).Mx)

	resp = ask(t, s, "udp", "host.example.com", dns.TypeA, false)
	require.Len(t, resp.Answer, 1)
	assert.Equal(t, "192.0.2.7", resp.Answer[0].(*dns.A).A.String())

	resp = ask(t, s, "udp", "host.example.com", dns.TypeAAAA, false)
	require.Len(t, resp.Answer, 1)
	assert.Equal(t, "2001:db8::7", resp.Answer[0].(*dns.AAAA).AAAA.String())
}

func TestTXTIsPublishedByteForByte(t *testing.T) {
	s := Start(t)
	long := strings.Repeat("x", 300)
	s.SetTXT("a.example.com", 60, `q"b\s`, long)
	s.SetTXT("b.example.com", 60)

	resp := ask(t, s, "tcp", "a.example.com", dns.TypeTXT, false)
	require.Len(t, resp.Answer, 1)
	// miekg/dns presents received bytes escaped, so the raw quote and
	// backslash show up as \" and \\.
	assert.Equal(t, []string{`q\"b\\s`, long[:255], long[255:]}, resp.Answer[0].(*dns.TXT).Txt)

	resp = ask(t, s, "udp", "b.example.com", dns.TypeTXT, false)
	require.Len(t, resp.Answer, 1)
	assert.Equal(t, []string{""}, resp.Answer[0].(*dns.TXT).Txt)
}

func TestMultipleCallsAddRecordsAndRemoveForgets(t *testing.T) {
	s := Start(t)
	s.SetTXT("x.example.com", 60, "one")
	s.SetTXT("x.example.com", 60, "two")
	resp := ask(t, s, "udp", "x.example.com", dns.TypeTXT, false)
	assert.Len(t, resp.Answer, 2)

	s.SetRcode("x.example.com", dns.RcodeRefused)
	s.Remove("X.example.com.")
	resp = ask(t, s, "udp", "x.example.com", dns.TypeTXT, false)
	assert.Equal(t, dns.RcodeNameError, resp.Rcode, "Remove also clears a forced rcode")
	assert.Equal(t, 2, s.Queries("x.example.com", dns.TypeTXT), "Remove keeps the counts")
}

func TestSetRcode(t *testing.T) {
	s := Start(t)
	s.SetTXT("x.example.com", 60, "one")
	for _, rc := range []int{dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNameError} {
		t.Run(dns.RcodeToString[rc], func(t *testing.T) {
			s.SetRcode("x.example.com", rc)
			resp := ask(t, s, "udp", "x.example.com", dns.TypeTXT, false)
			assert.Equal(t, rc, resp.Rcode)
			assert.Empty(t, resp.Answer)
		})
	}
	s.SetRcode("x.example.com", dns.RcodeSuccess)
	resp := ask(t, s, "udp", "x.example.com", dns.TypeTXT, false)
	assert.Equal(t, dns.RcodeSuccess, resp.Rcode)
	assert.Len(t, resp.Answer, 1)
}

func TestTruncationOverUDP(t *testing.T) {
	s := Start(t)
	for range 4 {
		s.SetTXT("big.example.com", 60, strings.Repeat("y", 250))
	}

	resp := ask(t, s, "udp", "big.example.com", dns.TypeTXT, false)
	assert.True(t, resp.Truncated, "over 512 bytes without EDNS0 must truncate")

	resp = ask(t, s, "udp", "big.example.com", dns.TypeTXT, true)
	assert.False(t, resp.Truncated, "fits the advertised EDNS0 buffer")
	assert.Len(t, resp.Answer, 4)
	require.NotNil(t, resp.IsEdns0())

	s.SetMaxUDPSize(512)
	resp = ask(t, s, "udp", "big.example.com", dns.TypeTXT, true)
	assert.True(t, resp.Truncated, "server-side cap applies despite EDNS0")

	resp = ask(t, s, "tcp", "big.example.com", dns.TypeTXT, true)
	assert.False(t, resp.Truncated)
	assert.Len(t, resp.Answer, 4)
}

func TestDelayAndDrop(t *testing.T) {
	s := Start(t)
	s.SetTXT("slow.example.com", 60, "x")
	s.SetDelay("slow.example.com", 200*time.Millisecond)
	start := time.Now()
	ask(t, s, "udp", "slow.example.com", dns.TypeTXT, false)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	s.SetDrop("slow.example.com", true)
	m := new(dns.Msg)
	m.SetQuestion("slow.example.com.", dns.TypeTXT)
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	_, _, err := c.Exchange(m, s.Addr())
	require.Error(t, err, "a dropped query gets no answer")
	assert.Equal(t, 2, s.Queries("slow.example.com", dns.TypeTXT), "dropped queries are still counted")
}

func TestCleanupStopsServer(t *testing.T) {
	var addr string
	t.Run("inner", func(t *testing.T) {
		s := Start(t)
		addr = s.Addr()
		s.SetDelay("slow.example.com", time.Hour) // must not hold up shutdown
		go func() {
			m := new(dns.Msg)
			m.SetQuestion("slow.example.com.", dns.TypeTXT)
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			_, _, _ = c.Exchange(m, addr)
		}()
		require.Eventually(t, func() bool { return s.Queries("slow.example.com", dns.TypeTXT) == 1 },
			30*time.Second, 5*time.Millisecond)
	})
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err, "TCP listener must be closed after cleanup")
}

func TestConcurrentUse(t *testing.T) {
	s := Start(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := strings.Repeat("a", i+1) + ".example.com"
			for range 20 {
				s.SetTXT(name, 60, "x")
				m := new(dns.Msg)
				m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
				c := &dns.Client{Net: "udp", Timeout: 10 * time.Second}
				if _, _, err := c.Exchange(m, s.Addr()); err != nil {
					t.Errorf("query %s: %v", name, err)
					return
				}
				_ = s.Queries(name, dns.TypeTXT)
			}
			s.Remove(name)
		})
	}
	wg.Wait()
	assert.Equal(t, 20, s.Queries("a.example.com", dns.TypeTXT))
}
