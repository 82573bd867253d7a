package bench

import (
	"errors"
	"fmt"
	"sync"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// dnsServer is the tests' loopback DNS server (dnstest) run outside a
// test: gateways find each other and each other's signing keys the way
// they do in production.
type dnsServer struct {
	*dnstest.Server
	host *dnsHost
}

// dnsHost stands in for testing.TB: a fatal report ends the call that
// made it (as t.Fatalf ends the test), errors are kept for Close.
type dnsHost struct {
	mu       sync.Mutex
	errs     []error
	cleanups []func()
}

type dnsFatal struct{ err error }

func (h *dnsHost) Helper() {}

func (h *dnsHost) Errorf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, fmt.Errorf(format, args...))
}

func (h *dnsHost) Fatalf(format string, args ...any) {
	panic(dnsFatal{fmt.Errorf(format, args...)})
}

func (h *dnsHost) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func startDNS() (s *dnsServer, err error) {
	h := &dnsHost{}
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(dnsFatal)
			if !ok {
				panic(v)
			}
			s, err = nil, f.err
		}
	}()
	return &dnsServer{Server: dnstest.Start(h), host: h}, nil
}

// SetTXT publishes a TXT record with a short TTL (the bench never waits
// for one to expire).
func (s *dnsServer) SetTXT(name, value string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(dnsFatal)
			if !ok {
				panic(v)
			}
			err = f.err
		}
	}()
	s.Server.SetTXT(name, 60, value)
	return nil
}

// Close stops the server and reports what went wrong while it ran.
func (s *dnsServer) Close() error {
	s.host.mu.Lock()
	cleanups := s.host.cleanups
	s.host.cleanups = nil
	s.host.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	s.host.mu.Lock()
	defer s.host.mu.Unlock()
	return errors.Join(s.host.errs...)
}
