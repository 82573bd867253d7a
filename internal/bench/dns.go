package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// dnsServer is a minimal authoritative server on loopback (UDP and TCP on
// one port) answering TXT queries from a table, so that gateways find each
// other and each other's signing keys the way they do in production.
type dnsServer struct {
	addr     string
	udp, tcp *dns.Server

	mu  sync.RWMutex
	txt map[string][]string // lower-case FQDN → record values
}

func startDNS() (*dnsServer, error) {
	pc, ln, err := listenSamePort()
	if err != nil {
		return nil, err
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), txt: map[string][]string{}}
	h := dns.HandlerFunc(s.serve)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify}
	failed := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	timeout := time.After(5 * time.Second)
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			_ = pc.Close()
			_ = ln.Close()
			return nil, fmt.Errorf("dns server: %w", err)
		case <-timeout:
			_ = pc.Close()
			_ = ln.Close()
			return nil, errors.New("dns server did not start")
		}
	}
	return s, nil
}

// listenSamePort binds an ephemeral UDP port and the same TCP port,
// trying a few ports in case another process holds the TCP one.
func listenSamePort() (net.PacketConn, net.Listener, error) {
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		last = err
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("no loopback port free for both UDP and TCP: %w", last)
}

// Addr is host:port for AGENTRY_DNS_SERVER.
func (s *dnsServer) Addr() string { return s.addr }

// SetTXT publishes value at name (added to what is there).
func (s *dnsServer) SetTXT(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(dns.Fqdn(name))
	s.txt[key] = append(s.txt[key], value)
}

func (s *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	reply := new(dns.Msg)
	if len(req.Question) != 1 {
		reply.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(reply)
		return
	}
	reply.SetReply(req)
	reply.Authoritative = true
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.RLock()
	values, known := s.txt[name]
	s.mu.RUnlock()
	switch {
	case !known:
		reply.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT:
		for _, v := range values {
			reply.Answer = append(reply.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
				Txt: splitTXT(v),
			})
		}
	}
	_ = w.WriteMsg(reply)
}

// splitTXT cuts a value into the ≤ 255-byte character-strings DNS
// requires. The values published here (records and base64 keys) contain
// no quote or backslash, so no escaping is needed.
func splitTXT(v string) []string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, v[:255])
		v = v[255:]
	}
	return append(parts, v)
}

func (s *dnsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
}
