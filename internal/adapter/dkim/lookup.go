package dkim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxTXTRecords bounds the TXT records read for one name.
const maxTXTRecords = 16

// DNSLookup returns a LookupTXT that asks the DNS server at server
// ("host:port"; "" reads the first nameserver of /etc/resolv.conf) over
// UDP, and again over TCP when the answer was truncated. A name that does
// not exist, or has no TXT record, answers no records and no error.
func DNSLookup(server string, timeout time.Duration) LookupTXT {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return func(ctx context.Context, name string) ([]string, error) {
		addr := server
		if addr == "" {
			conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
			if err != nil || len(conf.Servers) == 0 {
				return nil, fmt.Errorf("dkim: no DNS server: %w", err)
			}
			addr = net.JoinHostPort(conf.Servers[0], conf.Port)
		}
		return lookupTXT(ctx, addr, timeout, name)
	}
}

func lookupTXT(ctx context.Context, server string, timeout time.Duration, name string) ([]string, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	q.SetEdns0(4096, false)
	resp, _, err := (&dns.Client{Net: "udp", Timeout: timeout}).ExchangeContext(ctx, q, server)
	if err == nil && resp.Truncated {
		resp, _, err = (&dns.Client{Net: "tcp", Timeout: timeout}).ExchangeContext(ctx, q, server)
	}
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, &net.DNSError{Err: "rcode " + dns.RcodeToString[resp.Rcode], Name: name, IsTemporary: true}
	}
	var out []string
	for _, rr := range resp.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		if len(out) == maxTXTRecords {
			return nil, errors.New("dkim: too many TXT records at " + name)
		}
		var b strings.Builder
		for _, s := range txt.Txt {
			b.WriteString(unescape(s))
		}
		out = append(out, b.String())
	}
	return out, nil
}

// unescape undoes the presentation escapes miekg/dns keeps in TXT
// strings (\" \\ \DDD).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if n, err := strconv.Atoi(s[i+1 : i+4]); err == nil && n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
