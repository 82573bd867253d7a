// Package discovery finds the AMTP gateway of a domain through DNS: the
// _amtp.<domain> TXT record, falling back to the domain's MX hosts for an
// SMTP bridge, and signing keys at <selector>._amtpkey.<domain>. Answers are
// cached for their TTL in a bounded cache and concurrent lookups of the same
// name share one query.
package discovery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultNegativeTTL = 60 * time.Second
	DefaultMinTTL      = 5 * time.Second
	DefaultMaxTTL      = time.Hour
	DefaultMaxEntries  = 10000
	// Key records are cached for at most DefaultKeyTTL when found and
	// DefaultKeyNegativeTTL when not (draft §3.2.3: about five minutes, and
	// at most 30 seconds so that a newly published key is usable soon).
	DefaultKeyTTL         = 5 * time.Minute
	DefaultKeyNegativeTTL = 30 * time.Second
)

const (
	ednsBufferSize = 4096
	// maxCNAMEHops bounds chain following inside one response; longer
	// chains are treated as if the record were absent.
	maxCNAMEHops = 8
)

// resolvConfPath is a variable so tests can point the system-resolver
// fallback at a file of their own.
var resolvConfPath = "/etc/resolv.conf"

// Config tunes a Resolver. Zero values select the documented defaults.
type Config struct {
	Server      string        // "host:port" of the DNS server; "" = first nameserver of /etc/resolv.conf, port 53
	Timeout     time.Duration // per DNS exchange (the TCP retry after truncation gets its own); default 2s
	NegativeTTL time.Duration // cache time for NXDOMAIN / no-record answers; default 60s
	MinTTL      time.Duration // floor for positive TTLs; default 5s
	MaxTTL      time.Duration // ceiling for positive TTLs; default 1h
	MaxEntries  int           // cache size bound; default 10000
	// KeyTTL and KeyNegativeTTL cap the cache time of signing key records
	// found and not found; defaults DefaultKeyTTL, DefaultKeyNegativeTTL.
	KeyTTL         time.Duration
	KeyNegativeTTL time.Duration
	Now            func() time.Time
}

// MX is one mail exchanger of a domain without an AMTP record.
type MX struct {
	Host       string // lower-case, no trailing dot
	Preference uint16
}

// Result is the discovery answer for a domain.
type Result struct {
	Domain string
	AMTP   *Record // nil when the domain has no AMTP record
	MX     []MX    // filled only when AMTP is nil; sorted by preference, then host
	// TTL is how much longer this answer stays cached: the full cache time
	// for a fresh answer, the remainder for one served from the cache.
	TTL time.Duration
}

// Resolver performs cached AMTP discovery. It is safe for concurrent use.
type Resolver struct {
	server  string
	timeout time.Duration
	negTTL  time.Duration
	keyTTL  time.Duration
	keyNeg  time.Duration
	minTTL  time.Duration
	maxTTL  time.Duration
	now     func() time.Time
	udp     *dns.Client
	tcp     *dns.Client

	mu      sync.Mutex // guards cache and flights together
	cache   *cache
	flights map[string]*flight
}

// flight is one in-progress query that every concurrent caller for the same
// key waits on. Its fields are written once, before done is closed.
type flight struct {
	done  chan struct{}
	value any
	ttl   time.Duration
	err   error
}

type fetchFunc func(ctx context.Context) (value any, ttl time.Duration, err error)

// New validates cfg, fills in defaults and returns a Resolver.
func New(cfg Config) (*Resolver, error) {
	if cfg.Timeout < 0 || cfg.NegativeTTL < 0 || cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.MaxEntries < 0 || cfg.KeyTTL < 0 || cfg.KeyNegativeTTL < 0 {
		return nil, errors.New("discovery: config durations and MaxEntries must not be negative")
	}
	r := &Resolver{
		timeout: orDefault(cfg.Timeout, DefaultTimeout),
		negTTL:  orDefault(cfg.NegativeTTL, DefaultNegativeTTL),
		keyTTL:  orDefault(cfg.KeyTTL, DefaultKeyTTL),
		keyNeg:  orDefault(cfg.KeyNegativeTTL, DefaultKeyNegativeTTL),
		minTTL:  orDefault(cfg.MinTTL, DefaultMinTTL),
		maxTTL:  orDefault(cfg.MaxTTL, DefaultMaxTTL),
		now:     cfg.Now,
		flights: make(map[string]*flight),
	}
	if r.minTTL > r.maxTTL {
		return nil, fmt.Errorf("discovery: MinTTL %v exceeds MaxTTL %v", r.minTTL, r.maxTTL)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.cache = newCache(orDefault(cfg.MaxEntries, DefaultMaxEntries))

	r.server = cfg.Server
	if r.server == "" {
		s, err := systemServer()
		if err != nil {
			return nil, err
		}
		r.server = s
	}
	host, port, err := net.SplitHostPort(r.server)
	if err != nil {
		return nil, fmt.Errorf("discovery: server %q: %w", r.server, err)
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("discovery: server %q must be host:port with a numeric port", r.server)
	}

	r.udp = &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: ednsBufferSize}
	r.tcp = &dns.Client{Net: "tcp", Timeout: r.timeout}
	return r, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func systemServer() (string, error) {
	conf, err := dns.ClientConfigFromFile(resolvConfPath)
	if err != nil {
		return "", fmt.Errorf("discovery: reading system resolver config: %w", err)
	}
	if len(conf.Servers) == 0 {
		return "", fmt.Errorf("discovery: no nameserver in %s", resolvConfPath)
	}
	return net.JoinHostPort(conf.Servers[0], "53"), nil
}

// Lookup discovers the AMTP gateway of domain. A domain without an AMTP
// record is not an error: the Result has AMTP == nil and MX holds its mail
// exchangers (possibly none). Errors are either transient (IsTransient) or
// permanent: an invalid domain (ErrInvalidName) or an invalid published
// record (ErrInvalidRecord).
func (r *Resolver) Lookup(ctx context.Context, domain string) (Result, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return Result{}, err
	}
	v, ttl, err := r.resolve(ctx, "amtp:"+d, func(ctx context.Context) (any, time.Duration, error) {
		return r.lookupAMTP(ctx, d)
	})
	if err != nil {
		return Result{Domain: d}, err
	}
	res := v.(Result).clone()
	res.TTL = ttl
	return res, nil
}

// LookupKey fetches and parses the signing key published at
// <selector>._amtpkey.<domain>. It returns ErrKeyNotFound when there is no
// valid v=amtpkey1 record there and ErrKeyAmbiguous when there are
// several; DNS failures are transient (IsTransient).
func (r *Resolver) LookupKey(ctx context.Context, domain, selector string) (KeyRecord, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return KeyRecord{}, err
	}
	sel, err := normalizeSelector(selector)
	if err != nil {
		return KeyRecord{}, err
	}
	name := sel + "._amtpkey." + d
	if len(name) > maxDomainLen {
		return KeyRecord{}, invalidName("key name %s... is longer than 253 bytes", name[:40])
	}
	v, _, err := r.resolve(ctx, "key:"+name, func(ctx context.Context) (any, time.Duration, error) {
		return r.lookupKey(ctx, name)
	})
	if err != nil {
		return KeyRecord{}, err
	}
	kr := v.(KeyRecord)
	kr.PublicKey = bytes.Clone(kr.PublicKey)
	return kr, nil
}

// HasMailExchangers reports whether domain names a mail exchanger that
// can be connected to (a null MX, RFC 7505, is none). Lookup reports MX
// hosts only for a domain without an AMTP record; the email fallback
// (AGENTRY_SMTP_FALLBACK) asks about a domain that has one, through the
// same server and cache. DNS failures are transient (IsTransient).
func (r *Resolver) HasMailExchangers(ctx context.Context, domain string) (bool, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return false, err
	}
	v, _, err := r.resolve(ctx, "mx:"+d, func(ctx context.Context) (any, time.Duration, error) {
		a, err := r.query(ctx, d, dns.TypeMX)
		if err != nil {
			return nil, 0, err
		}
		if len(mxHosts(a.records)) == 0 {
			return false, r.negativeTTL(a), nil
		}
		return true, r.clamp(a.minTTL), nil
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// resolve serves key from the cache or joins/starts the single in-flight
// fetch for it. The fetch runs detached from ctx so that one impatient
// caller cannot fail the query for everyone else sharing it; each caller
// still stops waiting when its own ctx ends. Per-exchange timeouts bound the
// detached work.
func (r *Resolver) resolve(ctx context.Context, key string, fetch fetchFunc) (any, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("discovery: lookup abandoned: %w", err)
	}
	r.mu.Lock()
	now := r.now()
	if e, ok := r.cache.get(key, now); ok {
		r.mu.Unlock()
		return e.value, e.expires.Sub(now), e.err
	}
	f, ok := r.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		r.flights[key] = f
		go r.fly(context.WithoutCancel(ctx), key, f, fetch)
	}
	r.mu.Unlock()

	select {
	case <-f.done:
		return f.value, f.ttl, f.err
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("discovery: lookup abandoned: %w", ctx.Err())
	}
}

func (r *Resolver) fly(ctx context.Context, key string, f *flight, fetch fetchFunc) {
	cacheable := false
	defer func() {
		// A bug in parsing must not take the gateway down, nor leave the
		// waiters of this flight blocked forever.
		if p := recover(); p != nil {
			f.value, f.ttl, f.err = nil, 0, fmt.Errorf("discovery: internal error resolving %s: %v", key, p)
			cacheable = false
		}
		r.mu.Lock()
		if cacheable {
			now := r.now()
			r.cache.put(key, f.value, f.err, now.Add(f.ttl), now)
		}
		delete(r.flights, key)
		r.mu.Unlock()
		close(f.done)
	}()
	f.value, f.ttl, f.err = fetch(ctx)
	cacheable = f.ttl > 0 && !IsTransient(f.err)
}

func (r *Resolver) lookupAMTP(ctx context.Context, d string) (any, time.Duration, error) {
	txt, err := r.query(ctx, "_amtp."+d, dns.TypeTXT)
	if err != nil {
		return nil, 0, err
	}
	// Other TXT records may share the name (or be a future v=amtp2); the
	// first v=amtp1 one wins and is never skipped for a later valid one,
	// so a broken record is reported instead of silently papered over.
	for _, rr := range txt.records {
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		s := joinTXT(t.Txt)
		if !hasVersion(s) {
			continue
		}
		ttl := r.clamp(txt.minTTL)
		rec, err := ParseTXT(s)
		if err != nil {
			return nil, min(ttl, r.negTTL), fmt.Errorf("discovery: _amtp.%s: %w", d, err)
		}
		return Result{Domain: d, AMTP: rec, TTL: ttl}, ttl, nil
	}

	ttl := r.negativeTTL(txt)
	mx, err := r.query(ctx, d, dns.TypeMX)
	if err != nil {
		return nil, 0, err
	}
	hosts := mxHosts(mx.records)
	if len(hosts) > 0 {
		ttl = min(ttl, r.clamp(mx.minTTL))
	} else {
		ttl = min(ttl, r.negativeTTL(mx))
	}
	return Result{Domain: d, MX: hosts, TTL: ttl}, ttl, nil
}

func (r *Resolver) lookupKey(ctx context.Context, name string) (any, time.Duration, error) {
	a, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, 0, err
	}
	var txts []string
	for _, rr := range a.records {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, joinTXT(t.Txt))
		}
	}
	kr, err := selectKey(txts)
	if err != nil {
		ttl := min(r.keyNeg, r.negTTL)
		if len(txts) == 0 {
			ttl = min(r.keyNeg, r.negativeTTL(a))
		}
		return nil, ttl, fmt.Errorf("discovery: key %s: %w", name, err)
	}
	return kr, min(r.clamp(a.minTTL), r.keyTTL), nil
}

// answer is the part of a DNS response that discovery cares about.
type answer struct {
	rcode   int
	records []dns.RR // RRs of the asked type at the end of any CNAME chain
	minTTL  uint32   // smallest TTL among records and the chain leading to them
	hasSOA  bool
	soaTTL  uint32 // RFC 2308 negative TTL: min(SOA TTL, SOA MINIMUM)
}

func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	fqdn := dns.Fqdn(name)
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsBufferSize, false)

	fail := func(rcode int, err error) error {
		return &TransientError{Name: name, Qtype: qtype, Rcode: rcode, Err: err}
	}
	resp, err := r.exchange(ctx, m)
	if err != nil {
		return nil, fail(-1, err)
	}
	// Servers often drop the question section when refusing or failing, so
	// the rcode is judged before the question is compared.
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, fail(resp.Rcode, fmt.Errorf("server %s answered %s", r.server, rcodeName(resp.Rcode)))
	}
	if !resp.Response || len(resp.Question) != 1 ||
		resp.Question[0].Qtype != qtype || !strings.EqualFold(resp.Question[0].Name, fqdn) {
		return nil, fail(resp.Rcode, fmt.Errorf("server %s sent a response that does not match the query", r.server))
	}

	a := &answer{rcode: resp.Rcode}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			a.hasSOA, a.soaTTL = true, min(soa.Hdr.Ttl, soa.Minttl)
			break
		}
	}
	if resp.Rcode == dns.RcodeSuccess {
		a.records, a.minTTL = collect(resp.Answer, fqdn, qtype)
	}
	return a, nil
}

// exchange sends m over UDP and repeats it over TCP when the answer was
// truncated, each attempt under its own Timeout.
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	resp, err := r.exchangeOnce(ctx, r.udp, m)
	// A truncated datagram may also fail to unpack; either way only TCP
	// can deliver the whole answer.
	if resp != nil && resp.Truncated {
		resp, err = r.exchangeOnce(ctx, r.tcp, m)
		if err != nil {
			return nil, fmt.Errorf("tcp retry after truncated udp answer: %w", err)
		}
		return resp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	return resp, nil
}

func (r *Resolver) exchangeOnce(ctx context.Context, c *dns.Client, m *dns.Msg) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(qctx, m, r.server)
	if err != nil {
		return resp, fmt.Errorf("exchange with %s: %w", r.server, err)
	}
	if resp == nil {
		return nil, fmt.Errorf("exchange with %s: empty response", r.server)
	}
	return resp, nil
}

// collect follows the CNAME chain from owner and returns the RRs of qtype
// found at its end, with the smallest TTL seen along the way.
func collect(rrs []dns.RR, owner string, qtype uint16) ([]dns.RR, uint32) {
	name := owner
	minTTL := uint32(math.MaxUint32)
	for range maxCNAMEHops {
		next := ""
		for _, rr := range rrs {
			if c, ok := rr.(*dns.CNAME); ok && c.Hdr.Class == dns.ClassINET && strings.EqualFold(c.Hdr.Name, name) {
				next, minTTL = c.Target, min(minTTL, c.Hdr.Ttl)
				break
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	var out []dns.RR
	for _, rr := range rrs {
		h := rr.Header()
		if h != nil && h.Class == dns.ClassINET && h.Rrtype == qtype && strings.EqualFold(h.Name, name) {
			out = append(out, rr)
			minTTL = min(minTTL, h.Ttl)
		}
	}
	if len(out) == 0 {
		return nil, 0
	}
	return out, minTTL
}

// mxHosts converts MX RRs to sorted MX values. The null MX "." (RFC 7505)
// and targets that are not valid host names are dropped: neither can be
// connected to.
func mxHosts(rrs []dns.RR) []MX {
	var out []MX
	for _, rr := range rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		host, err := normalizeDomain(mx.Mx)
		if err != nil {
			continue
		}
		out = append(out, MX{Host: host, Preference: mx.Preference})
	}
	slices.SortFunc(out, func(a, b MX) int {
		if c := cmp.Compare(a.Preference, b.Preference); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	return out
}

func (r *Resolver) clamp(ttl uint32) time.Duration {
	return min(max(time.Duration(ttl)*time.Second, r.minTTL), r.maxTTL)
}

// negativeTTL honours a smaller SOA negative TTL, but not below MinTTL: a
// zone advertising 0 would otherwise have us query on every message.
func (r *Resolver) negativeTTL(a *answer) time.Duration {
	ttl := r.negTTL
	if a.hasSOA {
		ttl = min(ttl, max(time.Duration(a.soaTTL)*time.Second, r.minTTL))
	}
	return ttl
}

func (res Result) clone() Result {
	if res.AMTP != nil {
		rec := *res.AMTP
		rec.Auth = slices.Clone(rec.Auth)
		rec.Schemas = slices.Clone(rec.Schemas)
		res.AMTP = &rec
	}
	res.MX = slices.Clone(res.MX)
	return res
}

// joinTXT concatenates the character-strings of one TXT RR. miekg/dns hands
// them over in presentation form (\" \\ \DDD escapes), so they are decoded
// back to the bytes that were published.
func joinTXT(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(unescapeTXT(p))
	}
	return b.String()
}

func unescapeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			if n, _ := strconv.Atoi(s[i+1 : i+4]); n <= 255 {
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

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rc)
}
