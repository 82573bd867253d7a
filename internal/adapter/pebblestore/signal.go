package pebblestore

import (
	"sync"
	"time"
)

// signal wakes the receivers waiting for work. Waking them is not free:
// each runs a lease scan under queueState's
// mutex, which every settle then waits for. The Immediate Path stores a task
// with every pushed message, due only after its window; a receiver already
// asleep until something earlier has nothing to gain from it. So added
// wakes the receivers only when one of them would otherwise sleep past the
// new work's due time.
//
// A round is the life of one channel: wait hands it out, a broadcast closes
// it and the next wait makes a new one.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
	// asleep holds the wake time of each receiver asleep on ch (zero: it
	// has no wake time, it waits for work).
	asleep map[uint64]time.Time
	nextID uint64
	// early is the earliest due time of the work added on this round
	// without closing ch: a receiver whose scan began on the round may have
	// missed it.
	early time.Time
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// broadcast wakes every receiver.
func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broadcastLocked()
}

func (s *signal) broadcastLocked() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	clear(s.asleep)
	s.early = time.Time{}
}

// added reports that work due at `due` was stored (answered).
func (s *signal) added(due time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		// No receiver took this round: the next one to scan sees the work.
		return
	}
	for _, wake := range s.asleep {
		if wake.IsZero() || due.Before(wake) {
			s.broadcastLocked()
			return
		}
	}
	if s.early.IsZero() || due.Before(s.early) {
		s.early = due
	}
}

// sleep registers a receiver that took ch before its scan and found its
// next wake at `wake` (zero: none). ok is false when the receiver must scan
// again instead: ch was closed, or work that its scan may have missed is
// due before wake. A registered receiver calls awake(id) when it wakes.
func (s *signal) sleep(ch <-chan struct{}, wake time.Time) (id uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != ch {
		return 0, false
	}
	if !s.early.IsZero() && (wake.IsZero() || s.early.Before(wake)) {
		// Which receivers scanned before that work was stored is not
		// known, so all of them look again.
		s.broadcastLocked()
		return 0, false
	}
	if s.asleep == nil {
		s.asleep = make(map[uint64]time.Time)
	}
	s.nextID++
	s.asleep[s.nextID] = wake
	return s.nextID, true
}

func (s *signal) awake(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.asleep, id)
}
