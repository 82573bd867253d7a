// Package netguard builds the HTTP client for every outbound request the
// gateway makes on someone else's say-so (a webhook URL an admin
// registered, a gateway URL from another domain's DNS). It refuses
// non-public addresses at connect time, after resolution, so that a name
// which resolves (or re-resolves) to a private address cannot be used to
// reach the gateway's own network.
package netguard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/agentry/agentry/internal/core/ipclass"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Options configures the client.
type Options struct {
	// AllowInsecure permits plain http and private/loopback targets. For
	// development and tests only.
	AllowInsecure bool
	// Timeout bounds a whole request, default 30s.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// ClientCert is presented to servers that ask for one (other gateways
	// requiring mutual TLS); nil for none.
	ClientCert *tls.Certificate
	// RootCAs replaces the system's trust roots when set.
	RootCAs *x509.CertPool
	// Transport wraps the final RoundTripper (tracing); nil for none.
	Wrap func(http.RoundTripper) http.RoundTripper
}

// ErrBlockedAddress is returned when a connection would reach a
// non-public address.
var ErrBlockedAddress = gateway.ErrBlockedAddress

// NewClient returns a client that adds the AMTP headers, never follows
// redirects (a delivery is a POST to exactly the URL we decided on), never
// uses a proxy from the environment, and speaks TLS 1.3 only.
func NewClient(o Options) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if !o.AllowInsecure {
		dialer.Control = guardConnect
		dial = guardedDial(dialer.DialContext)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.Timeout,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS13},
	}
	tr.TLSClientConfig.RootCAs = o.RootCAs
	if o.ClientCert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*o.ClientCert}
	}
	var rt http.RoundTripper = tr
	if !o.AllowInsecure {
		rt = httpsOnly{tr}
	}
	rt = headers{next: rt, ua: o.UserAgent, timeout: o.Timeout}
	if o.Wrap != nil {
		rt = o.Wrap(rt)
	}
	// No Client.Timeout: with a RoundTripper that is not net/http's own,
	// the client enforces it with a goroutine and a timer per request.
	// headers bounds each request with a context instead, which the
	// transport already watches.
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// guardConnect is the dialer's Control function: it sees every address
// the dialer is about to connect to, after resolution, and refuses the
// non-public ones.
func guardConnect(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, address)
	}
	if !ipclass.Public(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, ap.Addr())
	}
	return nil
}

// guardHost refuses a dial target whose host is a numeric IPv4 spelling
// that is not an IP literal (2852039166, 0xa9fe.0xa9fe): the resolver
// would either read it as an address or look it up in DNS, and neither is
// a delivery to a public host. Refused before resolution, it fails for
// good like any other refused address instead of being retried as a
// failed lookup.
func guardHost(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, address)
	}
	if ipclass.NonCanonicalIPv4(host) {
		return fmt.Errorf("%w: %s is a numeric IPv4 spelling", ErrBlockedAddress, host)
	}
	return nil
}

// guardedDial checks the target's host with guardHost before dialling.
func guardedDial(dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if err := guardHost(address); err != nil {
			return nil, err
		}
		return dial(ctx, network, address)
	}
}

type httpsOnly struct{ next http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, fmt.Errorf("%w: %s is not https", ErrBlockedAddress, r.URL.Redacted())
	}
	return h.next.RoundTrip(r)
}

// headers sets the AMTP headers and bounds the whole exchange, reading
// the body included, by timeout.
type headers struct {
	next    http.RoundTripper
	ua      string
	timeout time.Duration
}

func (h headers) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	r = r.Clone(ctx)
	r.Header.Set("X-AMTP-Version", "1.0")
	if h.ua != "" {
		r.Header.Set("User-Agent", h.ua)
	}
	resp, err := h.next.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose releases the request's deadline when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Blocked reports whether err came from the address guard.
func Blocked(err error) bool { return errors.Is(err, ErrBlockedAddress) }
