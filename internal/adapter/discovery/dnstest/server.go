// Package dnstest runs a small authoritative DNS server on 127.0.0.1 for
// tests. It answers from records set by the test over both UDP and TCP on
// one ephemeral port, counts the queries it sees, and can be told to fail,
// stall or drop queries for a name.
//
// Unknown names get NXDOMAIN with an SOA (negative TTL 30) in the authority
// section; known names without the asked type get NOERROR with no answer
// and the same SOA. A name is known when it has records or when a name
// below it does (an empty non-terminal, as real zones behave).
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// NegativeTTL is the SOA TTL and MINIMUM the server puts in negative answers.
const NegativeTTL = 30

const (
	bindAttempts = 20
	startTimeout = 5 * time.Second
	stopTimeout  = 5 * time.Second
	maxTXTString = 255
)

// Server is a running test DNS server. All methods are safe for concurrent
// use; the setters report bad input through the TB given to Start,
// so call them from the test's goroutine.
type Server struct {
	t    TB
	addr string
	udp  *dns.Server
	tcp  *dns.Server
	stop chan struct{}

	mu         sync.Mutex
	records    map[string][]dns.RR // lower-case FQDN -> RRs
	rcodes     map[string]int
	delays     map[string]time.Duration
	drops      map[string]bool
	maxUDP     int
	queries    map[queryKey]int
	tcpQueries map[queryKey]int
}

type queryKey struct {
	name  string
	qtype uint16
}

// TB is the part of testing.TB the server uses, so that a program that is
// not a test (the bench tool) can run one too.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

var _ TB = testing.TB(nil)

// Start binds UDP and TCP on the same ephemeral port of 127.0.0.1, starts
// serving and registers shutdown with t.Cleanup. It fails the test if the
// sockets cannot be bound or the servers do not come up.
func Start(t TB) *Server {
	t.Helper()
	pc, ln, err := listen()
	if err != nil {
		t.Fatalf("dnstest: cannot bind UDP+TCP on one port of 127.0.0.1: %v", err)
	}
	s := &Server{
		t:          t,
		addr:       pc.LocalAddr().String(),
		stop:       make(chan struct{}),
		records:    make(map[string][]dns.RR),
		rcodes:     make(map[string]int),
		delays:     make(map[string]time.Duration),
		drops:      make(map[string]bool),
		queries:    make(map[queryKey]int),
		tcpQueries: make(map[queryKey]int),
	}
	handler := dns.HandlerFunc(s.serveDNS)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: handler, NotifyStartedFunc: notify}

	failed := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			_ = pc.Close()
			_ = ln.Close()
			t.Fatalf("dnstest: server on %s failed to start: %v", s.addr, err)
		case <-timer.C:
			_ = pc.Close()
			_ = ln.Close()
			t.Fatalf("dnstest: server on %s did not start within %v", s.addr, startTimeout)
		}
	}
	t.Cleanup(s.shutdown)
	return s
}

// listen picks an ephemeral UDP port and claims the same TCP port. Another
// process may own that TCP port already, so a few fresh ports are tried.
func listen() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range bindAttempts {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		lastErr = err
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("no port free for both protocols after %d attempts: %w", bindAttempts, lastErr)
}

func (s *Server) shutdown() {
	close(s.stop) // releases handlers sleeping in SetDelay
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	errUDP := s.udp.ShutdownContext(ctx)
	errTCP := s.tcp.ShutdownContext(ctx)
	if err := errors.Join(errUDP, errTCP); err != nil {
		s.t.Errorf("dnstest: shutting down %s: %v", s.addr, err)
	}
}

// Addr is "127.0.0.1:port", valid for both UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// SetTXT adds one TXT record at name. Each txt argument is published
// byte-for-byte; arguments longer than 255 bytes are split into several
// character-strings, as a zone file would require. No argument publishes a
// single empty string.
func (s *Server) SetTXT(name string, ttl uint32, txt ...string) {
	s.t.Helper()
	owner := s.owner(name)
	var parts []string
	for _, t := range txt {
		for len(t) > maxTXTString {
			parts = append(parts, escapeTXT(t[:maxTXTString]))
			t = t[maxTXTString:]
		}
		parts = append(parts, escapeTXT(t))
	}
	if len(parts) == 0 {
		parts = []string{""}
	}
	s.add(&dns.TXT{Hdr: header(owner, dns.TypeTXT, ttl), Txt: parts})
}

// SetMX adds an MX record at domain. host "." publishes a null MX.
func (s *Server) SetMX(domain string, ttl uint32, host string, pref uint16) {
	s.t.Helper()
	owner := s.owner(domain)
	target := "."
	if host != "." {
		target = s.owner(host)
	}
	s.add(&dns.MX{Hdr: header(owner, dns.TypeMX, ttl), Preference: pref, Mx: target})
}

// SetA adds an address record at name: A for an IPv4 address, AAAA for IPv6.
func (s *Server) SetA(name string, ttl uint32, ip string) {
	s.t.Helper()
	owner := s.owner(name)
	addr := net.ParseIP(ip)
	switch {
	case addr == nil:
		s.t.Fatalf("dnstest: SetA(%q): %q is not an IP address", name, ip)
	case addr.To4() != nil:
		s.add(&dns.A{Hdr: header(owner, dns.TypeA, ttl), A: addr.To4()})
	default:
		s.add(&dns.AAAA{Hdr: header(owner, dns.TypeAAAA, ttl), AAAA: addr})
	}
}

// Remove forgets everything about name: its records and any SetRcode,
// SetDelay or SetDrop behaviour. Query counts are kept.
func (s *Server) Remove(name string) {
	s.t.Helper()
	owner := s.owner(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, owner)
	delete(s.rcodes, owner)
	delete(s.delays, owner)
	delete(s.drops, owner)
}

// SetRcode makes every query for name (any type) answer with rcode and no
// records, e.g. dns.RcodeServerFailure or dns.RcodeRefused.
// dns.RcodeSuccess restores normal answers.
func (s *Server) SetRcode(name string, rcode int) {
	s.t.Helper()
	owner := s.owner(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, owner)
		return
	}
	s.rcodes[owner] = rcode
}

// SetDelay makes the server wait d before answering queries for name,
// which lets tests hold a query in flight. Zero removes the delay.
func (s *Server) SetDelay(name string, d time.Duration) {
	s.t.Helper()
	owner := s.owner(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delays, owner)
		return
	}
	s.delays[owner] = d
}

// SetDrop makes the server silently ignore queries for name (they are still
// counted), so clients time out.
func (s *Server) SetDrop(name string, drop bool) {
	s.t.Helper()
	owner := s.owner(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !drop {
		delete(s.drops, owner)
		return
	}
	s.drops[owner] = true
}

// SetMaxUDPSize caps UDP answers below what the client advertised, so tests
// can force truncation (and the TCP retry) without huge records. Zero
// restores the default of honouring the client's EDNS0 size (512 without).
func (s *Server) SetMaxUDPSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxUDP = n
}

// Queries returns how many queries for name and qtype arrived over either
// transport.
func (s *Server) Queries(name string, qtype uint16) int {
	key := queryKey{name: canonical(name), qtype: qtype}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key]
}

// TCPQueries returns how many of those queries arrived over TCP.
func (s *Server) TCPQueries(name string, qtype uint16) int {
	key := queryKey{name: canonical(name), qtype: qtype}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpQueries[key]
}

func (s *Server) owner(name string) string {
	s.t.Helper()
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		s.t.Fatalf("dnstest: %q is not a domain name", name)
	}
	return canonical(name)
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func header(owner string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner := rr.Header().Name
	s.records[owner] = append(s.records[owner], rr)
}

// escapeTXT turns raw bytes into the presentation form miekg/dns packs, so
// a backslash or quote in test data reaches the wire unchanged.
func escapeTXT(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// plan is what the handler decided under the lock, acted on outside it.
type plan struct {
	delay time.Duration
	drop  bool
	reply *dns.Msg
}

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	p := s.decide(req, overTCP)
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-s.stop:
			return
		}
	}
	if p.drop {
		return
	}
	if !overTCP {
		s.mu.Lock()
		limit := s.maxUDP
		s.mu.Unlock()
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		if limit > 0 {
			size = min(size, limit)
		}
		p.reply.Truncate(size)
	}
	// A write error only means the client went away; the test will notice
	// through its own timeout.
	_ = w.WriteMsg(p.reply)
}

func (s *Server) decide(req *dns.Msg, overTCP bool) plan {
	reply := new(dns.Msg)
	if len(req.Question) != 1 {
		reply.SetRcode(req, dns.RcodeFormatError)
		return plan{reply: reply}
	}
	reply.SetReply(req)
	reply.Authoritative = true
	reply.RecursionAvailable = req.RecursionDesired
	if opt := req.IsEdns0(); opt != nil {
		reply.SetEdns0(4096, false)
	}

	q := req.Question[0]
	name := strings.ToLower(q.Name)
	key := queryKey{name: name, qtype: q.Qtype}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[key]++
	if overTCP {
		s.tcpQueries[key]++
	}
	p := plan{delay: s.delays[name], drop: s.drops[name], reply: reply}
	if rc, ok := s.rcodes[name]; ok {
		reply.Rcode = rc
		return p
	}
	if !s.knownLocked(name) {
		reply.Rcode = dns.RcodeNameError
		reply.Ns = []dns.RR{soaFor(name)}
		return p
	}
	for _, rr := range s.records[name] {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			reply.Answer = append(reply.Answer, dns.Copy(rr))
		}
	}
	if len(reply.Answer) == 0 {
		reply.Ns = []dns.RR{soaFor(name)}
	}
	return p
}

func (s *Server) knownLocked(name string) bool {
	if len(s.records[name]) > 0 {
		return true
	}
	suffix := "." + name
	if name == "." {
		suffix = "."
	}
	for owner, rrs := range s.records {
		if len(rrs) > 0 && strings.HasSuffix(owner, suffix) {
			return true
		}
	}
	return false
}

// soaFor invents an SOA for the zone holding name, taken to be its last two
// labels; resolvers only read the TTLs from it.
func soaFor(name string) dns.RR {
	labels := dns.SplitDomainName(name)
	zone := "."
	if n := len(labels); n > 0 {
		zone = dns.Fqdn(strings.Join(labels[max(0, n-2):], "."))
	}
	return &dns.SOA{
		Hdr:     header(zone, dns.TypeSOA, NegativeTTL),
		Ns:      "ns." + strings.TrimPrefix(zone, "."),
		Mbox:    "hostmaster." + strings.TrimPrefix(zone, "."),
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  NegativeTTL,
	}
}

// String helps failure messages name the server.
func (s *Server) String() string { return "dnstest server " + s.addr }
