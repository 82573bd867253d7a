package delivery

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// DomainLimits bound the deliveries in progress to one destination
// domain, to its gateway or bridged to its mail exchangers alike, so that
// one slow peer cannot take every delivery slot (Config.Concurrency) and a
// burst to one domain does not flood it into answering 429 (or its mail
// servers into deferring). A delivery that finds its domain's slots taken waits up
// to Wait for one, then is retried later like any transient failure,
// without having contacted the peer.
//
// The bound is per Worker: in AWS each deliver function instance has its
// own, so a domain sees at most PerDomain times the event source's maximum
// concurrency (docs/scaling.md).
type DomainLimits struct {
	// PerDomain is the most deliveries to one domain at a time, default
	// DefaultPerDomain, at most Config.Concurrency.
	PerDomain int
	// Wait is how long a delivery waits for a slot, default
	// DefaultDomainWait; negative: not at all.
	Wait time.Duration
}

// Defaults of DomainLimits: a quarter of the default 64 slots, and a wait
// short against the first retry's second.
const (
	DefaultPerDomain  = 16
	DefaultDomainWait = 500 * time.Millisecond
)

// WithDefaults fills in the defaults for a worker of this concurrency.
func (l DomainLimits) WithDefaults(concurrency int) DomainLimits {
	if l.PerDomain <= 0 {
		l.PerDomain = DefaultPerDomain
	}
	l.PerDomain = min(l.PerDomain, max(concurrency, 1))
	if l.Wait == 0 {
		l.Wait = DefaultDomainWait
	}
	return l
}

// domainSlots hands out the slots. Its map holds only domains with a
// delivery holding or waiting for a slot, so it is bounded by the
// worker's concurrency, not by the domains ever seen.
type domainSlots struct {
	limits DomainLimits
	mu     sync.Mutex
	byName map[string]*domainSlot
}

type domainSlot struct {
	sem   chan struct{}
	users int // holding or waiting
}

func newDomainSlots(l DomainLimits) *domainSlots {
	return &domainSlots{limits: l, byName: map[string]*domainSlot{}}
}

// acquire takes a slot of domain; it returns the release function, or a
// transient outcome when no slot came free in time.
func (d *domainSlots) acquire(ctx context.Context, domain string) (func(), *outcome) {
	name := strings.ToLower(domain)
	d.mu.Lock()
	s := d.byName[name]
	if s == nil {
		s = &domainSlot{sem: make(chan struct{}, d.limits.PerDomain)}
		d.byName[name] = s
	}
	s.users++
	d.mu.Unlock()

	if d.take(ctx, s) {
		return func() { <-s.sem; d.leave(name, s) }, nil
	}
	d.leave(name, s)
	return nil, &outcome{transient: amtp.Errorf(amtp.CodeTemporaryFailure,
		"%d deliveries to %s are already in progress; retried later", d.limits.PerDomain, domain)}
}

func (d *domainSlots) take(ctx context.Context, s *domainSlot) bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
	}
	if d.limits.Wait < 0 {
		return false
	}
	timer := time.NewTimer(d.limits.Wait)
	defer timer.Stop()
	select {
	case s.sem <- struct{}{}:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

func (d *domainSlots) leave(name string, s *domainSlot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s.users--
	if s.users == 0 {
		delete(d.byName, name)
	}
}
