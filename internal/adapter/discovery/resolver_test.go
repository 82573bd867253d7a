package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

const fullRecord = "v=amtp1;gateway=https://amtp.example.com:443;auth=cert,oauth;max-size=50000000;schemas=agntcy:commerce.*"

var fullRecordParsed = &Record{
	Version: "amtp1", Gateway: "https://amtp.example.com:443", Auth: []string{"cert", "oauth"},
	MaxSize: 50000000, Schemas: []string{"agntcy:commerce.*"},
}

// fakeClock lets tests move time past TTLs without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestResolver(t *testing.T, srv *dnstest.Server, mutate func(*Config)) (*Resolver, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	cfg := Config{Server: srv.Addr(), Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg)
	require.NoError(t, err)
	return r, clk
}

func TestLookupPositive(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("_amtp.example.com", 300, "google-site-verification=abc")
	srv.SetTXT("_amtp.example.com", 300, "v=amtp2;gateway=https://future.example.com")
	srv.SetTXT("_amtp.example.com", 300, fullRecord)
	srv.SetMX("example.com", 300, "mx.example.com", 10)
	r, _ := newTestResolver(t, srv, nil)

	res, err := r.Lookup(context.Background(), "Example.COM.")
	require.NoError(t, err)
	assert.Equal(t, "example.com", res.Domain)
	assert.Equal(t, fullRecordParsed, res.AMTP)
	assert.Nil(t, res.MX, "MX is only consulted without an AMTP record")
	assert.Equal(t, 300*time.Second, res.TTL)
	assert.Equal(t, 0, srv.Queries("example.com", dns.TypeMX))
}

func TestLookupFirstAMTPRecordWins(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("_amtp.example.com", 300, "v=amtp1;gateway=https://first.example.com")
	srv.SetTXT("_amtp.example.com", 300, "v=amtp1;gateway=https://second.example.com")
	r, _ := newTestResolver(t, srv, nil)

	res, err := r.Lookup(context.Background(), "example.com")
	require.NoError(t, err)
	require.NotNil(t, res.AMTP)
	assert.Equal(t, "https://first.example.com", res.AMTP.Gateway)
}

func TestLookupJoinsSplitAndEscapedStrings(t *testing.T) {
	srv := dnstest.Start(t)
	// The tab and quotes travel as \009 and \" escapes inside miekg/dns and
	// must be decoded before parsing.
	srv.SetTXT("_amtp.example.com", 300, "v=amtp1;note=say \"hi\" \\o/;\tgate", "way=https://gw.example.com/a")
	r, _ := newTestResolver(t, srv, nil)

	res, err := r.Lookup(context.Background(), "example.com")
	require.NoError(t, err)
	require.NotNil(t, res.AMTP)
	assert.Equal(t, "https://gw.example.com/a", res.AMTP.Gateway)
}

func TestUnescapeTXT(t *testing.T) {
	tests := []struct{ in, want string }{
		{`plain`, `plain`},
		{`a\"b`, `a"b`},
		{`a\\b`, `a\b`},
		{`\009x`, "\tx"},
		{`\255`, "\xff"},
		{`\256`, "256"},
		{`\12`, "12"},
		{`end\`, `end\`},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, unescapeTXT(tc.in), "%q", tc.in)
	}
}

func TestLookupTTLHonoured(t *testing.T) {
	tests := []struct {
		name      string
		recordTTL uint32
		wantTTL   time.Duration
	}{
		{"record TTL", 300, 300 * time.Second},
		{"clamped up to MinTTL", 1, 5 * time.Second},
		{"zero TTL clamped up", 0, 5 * time.Second},
		{"clamped down to MaxTTL", 86400, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.Start(t)
			srv.SetTXT("_amtp.example.com", tc.recordTTL, fullRecord)
			r, clk := newTestResolver(t, srv, nil)
			ctx := context.Background()
			queries := func() int { return srv.Queries("_amtp.example.com", dns.TypeTXT) }

			res, err := r.Lookup(ctx, "example.com")
			require.NoError(t, err)
			assert.Equal(t, tc.wantTTL, res.TTL)
			require.Equal(t, 1, queries())

			clk.Advance(tc.wantTTL - time.Second)
			res, err = r.Lookup(ctx, "example.com")
			require.NoError(t, err)
			assert.Equal(t, 1, queries(), "still cached one second before expiry")
			assert.Equal(t, time.Second, res.TTL, "a cached answer reports its remaining TTL")
			assert.Equal(t, fullRecordParsed, res.AMTP)

			clk.Advance(time.Second)
			_, err = r.Lookup(ctx, "example.com")
			require.NoError(t, err)
			assert.Equal(t, 2, queries(), "queried again once the TTL ran out")
		})
	}
}

func TestLookupNegativeCaching(t *testing.T) {
	tests := []struct {
		name        string
		negativeTTL time.Duration
		wantTTL     time.Duration
	}{
		{"configured NegativeTTL below the SOA minimum", 10 * time.Second, 10 * time.Second},
		{"SOA minimum below the default NegativeTTL", 0, dnstest.NegativeTTL * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.Start(t)
			r, clk := newTestResolver(t, srv, func(c *Config) { c.NegativeTTL = tc.negativeTTL })
			ctx := context.Background()

			res, err := r.Lookup(ctx, "example.com")
			require.NoError(t, err, "NXDOMAIN is an answer, not an error")
			assert.Nil(t, res.AMTP)
			assert.Empty(t, res.MX)
			assert.Equal(t, tc.wantTTL, res.TTL)

			srv.SetTXT("_amtp.example.com", 300, fullRecord)
			clk.Advance(tc.wantTTL - time.Second)
			res, err = r.Lookup(ctx, "example.com")
			require.NoError(t, err)
			assert.Nil(t, res.AMTP, "negative answer still cached")
			assert.Equal(t, 1, srv.Queries("_amtp.example.com", dns.TypeTXT))
			assert.Equal(t, 1, srv.Queries("example.com", dns.TypeMX))

			clk.Advance(time.Second)
			res, err = r.Lookup(ctx, "example.com")
			require.NoError(t, err)
			assert.Equal(t, fullRecordParsed, res.AMTP)
			assert.Equal(t, 2, srv.Queries("_amtp.example.com", dns.TypeTXT))
		})
	}
}

func TestLookupMXFallback(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(s *dnstest.Server)
		wantMX  []MX
		wantTTL time.Duration
	}{
		{
			name: "NXDOMAIN for _amtp, MX sorted by preference then host",
			setup: func(s *dnstest.Server) {
				s.SetMX("example.com", 40, "b.mx.example.com", 20)
				s.SetMX("example.com", 40, "z.mx.example.com", 10)
				s.SetMX("example.com", 40, "A.MX.example.com", 10)
			},
			wantMX:  []MX{{"a.mx.example.com", 10}, {"z.mx.example.com", 10}, {"b.mx.example.com", 20}},
			wantTTL: 30 * time.Second, // SOA negative TTL is below the MX TTL
		},
		{
			name: "only foreign TXT records, MX TTL is the smallest",
			setup: func(s *dnstest.Server) {
				s.SetTXT("_amtp.example.com", 300, "v=spf1 -all")
				s.SetTXT("_amtp.example.com", 300, "v=amtp2;gateway=https://gw.example.com")
				s.SetMX("example.com", 12, "mx.example.com", 5)
			},
			wantMX:  []MX{{"mx.example.com", 5}},
			wantTTL: 12 * time.Second,
		},
		{
			name:    "no MX either",
			setup:   func(s *dnstest.Server) { s.SetA("example.com", 300, "192.0.2.1") },
			wantTTL: 30 * time.Second,
		},
		{
			name:    "null MX means no mail",
			setup:   func(s *dnstest.Server) { s.SetMX("example.com", 300, ".", 0) },
			wantTTL: 30 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.Start(t)
			tc.setup(srv)
			r, _ := newTestResolver(t, srv, nil)

			res, err := r.Lookup(context.Background(), "example.com")
			require.NoError(t, err)
			assert.Nil(t, res.AMTP)
			assert.Equal(t, tc.wantMX, res.MX)
			assert.Equal(t, tc.wantTTL, res.TTL)
		})
	}
}

func TestLookupTransientNotCached(t *testing.T) {
	for _, rc := range []int{dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNotImplemented} {
		t.Run(dns.RcodeToString[rc], func(t *testing.T) {
			srv := dnstest.Start(t)
			srv.SetTXT("_amtp.example.com", 300, fullRecord)
			srv.SetRcode("_amtp.example.com", rc)
			r, _ := newTestResolver(t, srv, nil)
			ctx := context.Background()

			for i := 1; i <= 2; i++ {
				_, err := r.Lookup(ctx, "example.com")
				require.Error(t, err)
				assert.True(t, IsTransient(err), "%v", err)
				var te *TransientError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, rc, te.Rcode)
				assert.Equal(t, dns.TypeTXT, te.Qtype)
				assert.Equal(t, i, srv.Queries("_amtp.example.com", dns.TypeTXT), "failures must not be cached")
			}

			srv.SetRcode("_amtp.example.com", dns.RcodeSuccess)
			res, err := r.Lookup(ctx, "example.com")
			require.NoError(t, err)
			assert.Equal(t, fullRecordParsed, res.AMTP)
		})
	}
}

func TestLookupMXFailureIsTransient(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetRcode("example.com", dns.RcodeServerFailure)
	r, _ := newTestResolver(t, srv, nil)

	_, err := r.Lookup(context.Background(), "example.com")
	require.Error(t, err)
	assert.True(t, IsTransient(err))
	_, err = r.Lookup(context.Background(), "example.com")
	require.Error(t, err)
	assert.Equal(t, 2, srv.Queries("example.com", dns.TypeMX))
}

func TestLookupTimeout(t *testing.T) {
	// A socket nobody reads: queries vanish like packets to a dead server.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })

	const timeout = 300 * time.Millisecond
	r, err := New(Config{Server: pc.LocalAddr().String(), Timeout: timeout})
	require.NoError(t, err)

	start := time.Now()
	_, err = r.Lookup(context.Background(), "example.com")
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.True(t, IsTransient(err), "%v", err)
	assert.GreaterOrEqual(t, elapsed, timeout-50*time.Millisecond)
	// Bounded by the default rather than by a little more than timeout:
	// the slack is there for a busy machine, and the default is what a
	// resolver ignoring its configuration would wait.
	assert.Less(t, elapsed, DefaultTimeout, "the configured timeout bounds the wait, not the default")

	// Nothing may have been cached: the next attempt waits again.
	start = time.Now()
	_, err = r.Lookup(context.Background(), "example.com")
	require.Error(t, err)
	assert.GreaterOrEqual(t, time.Since(start), timeout-50*time.Millisecond)
}

func TestLookupTCPRetryAfterTruncation(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetMaxUDPSize(512)
	padding := "pad=" + strings.Repeat("p", 700)
	srv.SetTXT("_amtp.example.com", 300, "v=amtp1;gateway=https://gw.example.com;"+padding)
	r, _ := newTestResolver(t, srv, nil)

	res, err := r.Lookup(context.Background(), "example.com")
	require.NoError(t, err)
	require.NotNil(t, res.AMTP)
	assert.Equal(t, "https://gw.example.com", res.AMTP.Gateway)
	assert.Equal(t, 2, srv.Queries("_amtp.example.com", dns.TypeTXT))
	assert.Equal(t, 1, srv.TCPQueries("_amtp.example.com", dns.TypeTXT))
}

func TestLookupConcurrentCallsShareOneQuery(t *testing.T) {
	tests := []struct {
		name  string
		rcode int
	}{
		{"positive answer", dns.RcodeSuccess},
		// A failure is not cached, so only collapsing can keep this at one.
		{"transient failure", dns.RcodeServerFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.Start(t)
			srv.SetTXT("_amtp.example.com", 300, fullRecord)
			srv.SetRcode("_amtp.example.com", tc.rcode)
			// Every caller must join before the answer comes: a delay
			// that starting 32 goroutines never outlasts, even on a busy
			// machine, under a query timeout that it never reaches.
			srv.SetDelay("_amtp.example.com", 2*time.Second)
			r, _ := newTestResolver(t, srv, func(c *Config) { c.Timeout = 30 * time.Second })

			const callers = 32
			var (
				wg      sync.WaitGroup
				release = make(chan struct{})
				results = make([]Result, callers)
				errs    = make([]error, callers)
			)
			for i := range callers {
				wg.Go(func() {
					<-release
					results[i], errs[i] = r.Lookup(context.Background(), "example.com")
				})
			}
			close(release)
			wg.Wait()

			assert.Equal(t, 1, srv.Queries("_amtp.example.com", dns.TypeTXT))
			for i := range callers {
				if tc.rcode == dns.RcodeSuccess {
					require.NoError(t, errs[i])
					assert.Equal(t, fullRecordParsed, results[i].AMTP)
				} else {
					assert.True(t, IsTransient(errs[i]), "caller %d: %v", i, errs[i])
				}
			}
		})
	}
}

func TestLookupCallerDeadlineDoesNotCancelSharedQuery(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("_amtp.example.com", 300, fullRecord)
	// The answer comes long after the impatient caller's deadline (and
	// before the query's own timeout), so that "before the answer" is a
	// wide window even on a busy machine.
	const delay = 3 * time.Second
	srv.SetDelay("_amtp.example.com", delay)
	r, _ := newTestResolver(t, srv, func(c *Config) { c.Timeout = 30 * time.Second })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Lookup(ctx, "example.com")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, IsTransient(err))
	assert.Less(t, time.Since(start), delay, "the impatient caller returns on its own deadline, before the answer")

	res, err := r.Lookup(context.Background(), "example.com")
	require.NoError(t, err)
	assert.Equal(t, fullRecordParsed, res.AMTP)
	assert.Equal(t, 1, srv.Queries("_amtp.example.com", dns.TypeTXT), "the second caller joined the first query")
}

func TestLookupInvalidRecordIsPermanentAndCached(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("_amtp.example.com", 300, "v=amtp1;gateway=ftp://gw.example.com")
	srv.SetTXT("_amtp.example.com", 300, "v=amtp1;gateway=https://valid.example.com")
	r, clk := newTestResolver(t, srv, nil)

	for range 2 {
		res, err := r.Lookup(context.Background(), "example.com")
		require.ErrorIs(t, err, ErrInvalidRecord)
		assert.False(t, IsTransient(err))
		assert.Nil(t, res.AMTP)
		assert.Equal(t, "example.com", res.Domain)
	}
	assert.Equal(t, 1, srv.Queries("_amtp.example.com", dns.TypeTXT))
	assert.Equal(t, 0, srv.Queries("example.com", dns.TypeMX), "an invalid record is not a missing one")

	clk.Advance(DefaultNegativeTTL)
	_, err := r.Lookup(context.Background(), "example.com")
	require.ErrorIs(t, err, ErrInvalidRecord)
	assert.Equal(t, 2, srv.Queries("_amtp.example.com", dns.TypeTXT), "re-checked after NegativeTTL")
}

func TestLookupInvalidDomain(t *testing.T) {
	srv := dnstest.Start(t)
	r, _ := newTestResolver(t, srv, nil)
	for _, d := range []string{"", "a..b", "192.0.2.1", "[::1]", "exa_mple.com", strings.Repeat("a", 64) + ".com"} {
		t.Run(d, func(t *testing.T) {
			_, err := r.Lookup(context.Background(), d)
			require.ErrorIs(t, err, ErrInvalidName)
			assert.False(t, IsTransient(err))
		})
	}
}

func TestLookupCacheIsBounded(t *testing.T) {
	srv := dnstest.Start(t)
	const max = 3
	domains := make([]string, 10)
	for i := range domains {
		domains[i] = fmt.Sprintf("d%d.example.com", i)
		srv.SetTXT("_amtp."+domains[i], 300, fullRecord)
	}
	r, _ := newTestResolver(t, srv, func(c *Config) { c.MaxEntries = max })
	ctx := context.Background()

	for _, d := range domains {
		_, err := r.Lookup(ctx, d)
		require.NoError(t, err)
		r.mu.Lock()
		n := r.cache.len()
		r.mu.Unlock()
		require.LessOrEqual(t, n, max)
	}

	last := domains[len(domains)-1]
	_, err := r.Lookup(ctx, last)
	require.NoError(t, err)
	assert.Equal(t, 1, srv.Queries("_amtp."+last, dns.TypeTXT), "the newest entry survives")

	_, err = r.Lookup(ctx, domains[0])
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Queries("_amtp."+domains[0], dns.TypeTXT), "the oldest entry was evicted")
}

func TestLookupResultIsACopy(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("_amtp.example.com", 300, fullRecord)
	r, _ := newTestResolver(t, srv, nil)

	res, err := r.Lookup(context.Background(), "example.com")
	require.NoError(t, err)
	res.AMTP.Auth[0] = "tampered"
	res.AMTP.Gateway = "https://evil.example"

	res, err = r.Lookup(context.Background(), "example.com")
	require.NoError(t, err)
	assert.Equal(t, fullRecordParsed, res.AMTP)
}

func TestLookupKey(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("sel1._amtpkey.example.com", 300, "v=amtpkey1;alg=ES256;p=AAECAwQ=")
	srv.SetTXT("split._amtpkey.example.com", 300, "v=amtpkey1;alg=RS256;p=AAEC", "AwQ=")
	srv.SetTXT("old._amtpkey.example.com", 300, "v=amtpkey1;alg=ES256;p=")
	srv.SetTXT("odd._amtpkey.example.com", 300, "v=amtpkey1;alg=EdDSA;p=AAAA")
	srv.SetTXT("other._amtpkey.example.com", 300, "v=DKIM1;k=rsa;p=AAAA")
	srv.SetTXT("oldformat._amtpkey.example.com", 300, "v=amtp1;k=ec;p=AAAA")
	srv.SetTXT("two._amtpkey.example.com", 300, "v=amtpkey1;alg=ES256;p=AAAA")
	srv.SetTXT("two._amtpkey.example.com", 300, "v=amtpkey1;alg=ES256;p=BBBB")
	srv.SetRcode("broken._amtpkey.example.com", dns.RcodeServerFailure)
	r, _ := newTestResolver(t, srv, nil)

	tests := []struct {
		selector      string
		domain        string
		want          KeyRecord
		wantErr       error
		wantTransient bool
	}{
		{selector: "sel1", domain: "example.com", want: KeyRecord{Algorithm: "ES256", PublicKey: []byte{0, 1, 2, 3, 4}}},
		{selector: "SEL1", domain: "EXAMPLE.com", want: KeyRecord{Algorithm: "ES256", PublicKey: []byte{0, 1, 2, 3, 4}}},
		{selector: "split", domain: "example.com", want: KeyRecord{Algorithm: "RS256", PublicKey: []byte{0, 1, 2, 3, 4}}},
		{selector: "old", domain: "example.com", wantErr: ErrKeyNotFound},
		{selector: "odd", domain: "example.com", wantErr: ErrKeyNotFound},
		{selector: "oldformat", domain: "example.com", wantErr: ErrKeyNotFound},
		{selector: "two", domain: "example.com", wantErr: ErrKeyAmbiguous},
		{selector: "other", domain: "example.com", wantErr: ErrKeyNotFound},
		{selector: "missing", domain: "example.com", wantErr: ErrKeyNotFound},
		{selector: "broken", domain: "example.com", wantTransient: true},
		{selector: "bad_sel", domain: "example.com", wantErr: ErrInvalidName},
		{selector: "a.b", domain: "example.com", wantErr: ErrInvalidName},
		{selector: "sel1", domain: "192.0.2.1", wantErr: ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(tc.selector+"@"+tc.domain, func(t *testing.T) {
			got, err := r.LookupKey(context.Background(), tc.domain, tc.selector)
			switch {
			case tc.wantTransient:
				require.Error(t, err)
				assert.True(t, IsTransient(err), "%v", err)
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
				assert.False(t, IsTransient(err))
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			}
		})
	}
	assert.Equal(t, 1, srv.Queries("sel1._amtpkey.example.com", dns.TypeTXT), "key answers are cached")
	assert.Equal(t, 1, srv.Queries("missing._amtpkey.example.com", dns.TypeTXT))

	// The caller owns the returned bytes.
	kr, err := r.LookupKey(context.Background(), "example.com", "sel1")
	require.NoError(t, err)
	kr.PublicKey[0] = 0xff
	kr, err = r.LookupKey(context.Background(), "example.com", "sel1")
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 2, 3, 4}, kr.PublicKey)
}

func TestNewConfig(t *testing.T) {
	dir := t.TempDir()
	withServer := filepath.Join(dir, "resolv.conf")
	require.NoError(t, os.WriteFile(withServer, []byte("# test\nsearch example.com\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), 0o600))
	withV6 := filepath.Join(dir, "resolv6.conf")
	require.NoError(t, os.WriteFile(withV6, []byte("nameserver 2001:db8::53\n"), 0o600))
	empty := filepath.Join(dir, "empty.conf")
	require.NoError(t, os.WriteFile(empty, []byte("search example.com\n"), 0o600))

	tests := []struct {
		name       string
		cfg        Config
		resolvConf string
		wantServer string
		wantErr    bool
	}{
		{name: "explicit server", cfg: Config{Server: "127.0.0.1:5353"}, wantServer: "127.0.0.1:5353"},
		{name: "system resolver", resolvConf: withServer, wantServer: "192.0.2.53:53"},
		{name: "system resolver IPv6", resolvConf: withV6, wantServer: "[2001:db8::53]:53"},
		{name: "resolv.conf without nameserver", resolvConf: empty, wantErr: true},
		{name: "resolv.conf missing", resolvConf: filepath.Join(dir, "nope"), wantErr: true},
		{name: "server without port", cfg: Config{Server: "127.0.0.1"}, wantErr: true},
		{name: "server with bad port", cfg: Config{Server: "127.0.0.1:dns"}, wantErr: true},
		{name: "negative timeout", cfg: Config{Server: "127.0.0.1:53", Timeout: -1}, wantErr: true},
		{name: "negative MaxEntries", cfg: Config{Server: "127.0.0.1:53", MaxEntries: -1}, wantErr: true},
		{name: "MinTTL above MaxTTL", cfg: Config{Server: "127.0.0.1:53", MinTTL: time.Hour, MaxTTL: time.Minute}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.resolvConf != "" {
				old := resolvConfPath
				resolvConfPath = tc.resolvConf
				t.Cleanup(func() { resolvConfPath = old })
			}
			r, err := New(tc.cfg)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantServer, r.server)
		})
	}

	r, err := New(Config{Server: "127.0.0.1:53"})
	require.NoError(t, err)
	assert.Equal(t, DefaultTimeout, r.timeout)
	assert.Equal(t, DefaultNegativeTTL, r.negTTL)
	assert.Equal(t, DefaultMinTTL, r.minTTL)
	assert.Equal(t, DefaultMaxTTL, r.maxTTL)
	assert.Equal(t, DefaultMaxEntries, r.cache.max)
	assert.NotNil(t, r.now)
}

func TestIsTransient(t *testing.T) {
	te := &TransientError{Name: "x", Qtype: dns.TypeTXT, Rcode: -1, Err: errors.New("boom")}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"transient", te, true},
		{"wrapped transient", fmt.Errorf("outer: %w", te), true},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"invalid record", fmt.Errorf("x: %w", ErrInvalidRecord), false},
		{"invalid name", ErrInvalidName, false},
		{"key not found", ErrKeyNotFound, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, IsTransient(tc.err))
		})
	}
	assert.Contains(t, te.Error(), "TXT x")
}

func TestLookupSurvivesGarbageResponses(t *testing.T) {
	tests := []struct {
		name  string
		reply func(query []byte) []byte
	}{
		{"short header", func(q []byte) []byte { return q[:2] }},
		{"answer rdata length beyond the packet", func(q []byte) []byte {
			m := new(dns.Msg)
			if err := m.Unpack(q); err != nil {
				return nil
			}
			resp := new(dns.Msg)
			resp.SetReply(m)
			resp.Answer = []dns.RR{&dns.TXT{
				Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{"x"},
			}}
			b, err := resp.Pack()
			if err != nil {
				return nil
			}
			// The TXT RR is last; its RDLENGTH sits just before the two
			// bytes of RDATA ("\x01x").
			b[len(b)-4], b[len(b)-3] = 0xff, 0xff
			return b
		}},
		{"random tail", func(q []byte) []byte {
			b := append([]byte(nil), q[:12]...)
			b[2] |= 0x80
			b[5], b[7] = 1, 1
			return append(b, 0xc0, 0x0c, 0xc0, 0x0c, 0xff, 0xff, 0x00, 0x01, 0x00)
		}},
		{"wrong question", func(q []byte) []byte {
			m := new(dns.Msg)
			if err := m.Unpack(q); err != nil {
				return nil
			}
			resp := new(dns.Msg)
			resp.SetReply(m)
			resp.Question[0].Name = "_amtp.other.example."
			b, _ := resp.Pack()
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { _ = pc.Close() })
			go func() {
				buf := make([]byte, 1500)
				for {
					n, addr, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					if out := tc.reply(buf[:n]); out != nil {
						_, _ = pc.WriteTo(out, addr)
					}
				}
			}()
			r, err := New(Config{Server: pc.LocalAddr().String(), Timeout: 300 * time.Millisecond})
			require.NoError(t, err)

			_, err = r.Lookup(context.Background(), "example.com")
			require.Error(t, err)
			assert.True(t, IsTransient(err), "%v", err)
		})
	}
}

// Key records are cached for at most DefaultKeyTTL however long their DNS
// TTL, and their absence for at most DefaultKeyNegativeTTL (draft §3.2.3),
// so a rotated or newly published key is used soon.
func TestLookupKeyCacheTimes(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetTXT("k1._amtpkey.example.com", 86400, "v=amtpkey1;alg=ES256;p=AAAA")
	r, clk := newTestResolver(t, srv, nil)
	ctx := context.Background()

	_, err := r.LookupKey(ctx, "example.com", "k1")
	require.NoError(t, err)
	clk.Advance(DefaultKeyTTL - time.Second)
	_, err = r.LookupKey(ctx, "example.com", "k1")
	require.NoError(t, err)
	assert.Equal(t, 1, srv.Queries("k1._amtpkey.example.com", dns.TypeTXT), "cached within the key TTL")
	clk.Advance(2 * time.Second)
	_, err = r.LookupKey(ctx, "example.com", "k1")
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Queries("k1._amtpkey.example.com", dns.TypeTXT), "a day's DNS TTL is capped at the key TTL")

	_, err = r.LookupKey(ctx, "example.com", "k2")
	require.ErrorIs(t, err, ErrKeyNotFound)
	srv.SetTXT("k2._amtpkey.example.com", 300, "v=amtpkey1;alg=ES256;p=AAAA")
	clk.Advance(DefaultKeyNegativeTTL + time.Second)
	_, err = r.LookupKey(ctx, "example.com", "k2")
	require.NoError(t, err, "a key published after a miss is found once the negative TTL passes")
}
