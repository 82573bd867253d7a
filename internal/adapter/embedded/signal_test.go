package embedded

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestSignal(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name string
		// run drives a signal with one receiver that took ch; it reports
		// whether that receiver ends up woken or sent to scan again.
		run  func(s *signal, ch <-chan struct{}) bool
		want bool
	}{
		{"work due after the sleeper's wake leaves it asleep", func(s *signal, ch <-chan struct{}) bool {
			_, ok := s.sleep(ch, at(10))
			require.True(t, ok)
			s.added(at(20))
			return closed(ch)
		}, false},
		{"work due at the sleeper's wake leaves it asleep", func(s *signal, ch <-chan struct{}) bool {
			_, ok := s.sleep(ch, at(10))
			require.True(t, ok)
			s.added(at(10))
			return closed(ch)
		}, false},
		{"work due before the sleeper's wake wakes it", func(s *signal, ch <-chan struct{}) bool {
			_, ok := s.sleep(ch, at(10))
			require.True(t, ok)
			s.added(at(5))
			return closed(ch)
		}, true},
		{"any work wakes a sleeper without a wake time", func(s *signal, ch <-chan struct{}) bool {
			_, ok := s.sleep(ch, time.Time{})
			require.True(t, ok)
			s.added(at(1000))
			return closed(ch)
		}, true},
		{"one early sleeper among late ones is enough", func(s *signal, ch <-chan struct{}) bool {
			for _, w := range []int{1, 2, 30} {
				_, ok := s.sleep(ch, at(w))
				require.True(t, ok)
			}
			s.added(at(20))
			return closed(ch)
		}, true},
		{"a sleeper that woke no longer counts", func(s *signal, ch <-chan struct{}) bool {
			early, ok := s.sleep(ch, at(5))
			require.True(t, ok)
			_, ok = s.sleep(ch, at(50))
			require.True(t, ok)
			s.awake(early)
			s.added(at(20))
			return closed(ch)
		}, true},
		{"work added during a scan that its wake passes sends it back", func(s *signal, ch <-chan struct{}) bool {
			s.added(at(5)) // stored after the scan read
			_, ok := s.sleep(ch, at(10))
			return !ok && closed(ch)
		}, true},
		{"work added during a scan of an empty queue sends it back", func(s *signal, ch <-chan struct{}) bool {
			s.added(at(500))
			_, ok := s.sleep(ch, time.Time{})
			return !ok
		}, true},
		{"work added during a scan due after its wake does not", func(s *signal, ch <-chan struct{}) bool {
			s.added(at(50))
			_, ok := s.sleep(ch, at(10))
			return !ok || closed(ch)
		}, false},
		{"a receiver that took a closed round scans again", func(s *signal, ch <-chan struct{}) bool {
			s.broadcast()
			_, ok := s.sleep(ch, at(10))
			return !ok
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s signal
			ch := s.wait()
			assert.Equal(t, tt.want, tt.run(&s, ch))
		})
	}
}

// TestLaterWorkLeavesReceiverAsleep is the Immediate Path's case: every
// pushed message stores a task due after its window, and a receiver asleep
// until an earlier task must not scan again for each of them.
func TestLaterWorkLeavesReceiverAsleep(t *testing.T) {
	var clockReads atomic.Int64
	db := openDB(t, Options{Dir: t.TempDir(), Now: func() time.Time {
		clockReads.Add(1)
		return time.Now()
	}})
	ctx := t.Context()
	newTask := func(due time.Time) gateway.Task {
		task := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, time.Now()).Tasks[0]
		task.NotBefore = due
		return task
	}
	require.NoError(t, db.Enqueue(ctx, newTask(time.Now().Add(time.Hour))))

	// The receiver waits far longer than the test needs, however busy the
	// machine, and is then called off: a wait ending on its own first
	// would leave nobody asleep to test.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		got, err := db.Receive(rctx, 1, time.Minute)
		if len(got) > 0 {
			err = assert.AnError
		}
		done <- err
	}()
	require.Eventually(t, func() bool {
		db.queue.work.mu.Lock()
		defer db.queue.work.mu.Unlock()
		return len(db.queue.work.asleep) == 1
	}, 5*time.Second, time.Millisecond, "the receiver never went to sleep")

	const later = 50
	clockReads.Store(0)
	for range later {
		require.NoError(t, db.Enqueue(ctx, newTask(time.Now().Add(2*time.Hour))))
	}
	// Each Enqueue reads the clock once, each scan at least once.
	assert.LessOrEqual(t, clockReads.Load(), int64(later+2), "the receiver scanned again for work due after its wake")
	stop()
	require.ErrorIs(t, <-done, context.Canceled, "the receiver slept until called off")
}

// TestWakesAreNotLost runs receivers and producers together. The producers
// pause between tasks, so the queue keeps running empty and the receivers
// keep going to sleep, with and without a wake time; tasks are due at once
// or a little later. Each must be received soon after it is due, long
// before a receiver's wait would end on its own: that wait is a minute,
// so that "soon" can be half of it, which no busy machine takes.
func TestWakesAreNotLost(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	ctx := t.Context()
	const (
		producers = 2
		each      = 40
		wait      = time.Minute
	)
	var (
		mu     sync.Mutex
		dueOf  = map[string]time.Time{}
		latest time.Duration
		got    int
	)
	rctx, stop := context.WithCancel(ctx)
	var receivers sync.WaitGroup
	for range 3 {
		receivers.Add(1)
		go func() {
			defer receivers.Done()
			for rctx.Err() == nil {
				tasks, err := db.Receive(rctx, 4, wait)
				if rctx.Err() != nil || !assert.NoError(t, err) {
					return
				}
				now := time.Now()
				mu.Lock()
				for _, task := range tasks {
					latest = max(latest, now.Sub(dueOf[task.ID]))
					got++
				}
				mu.Unlock()
				for _, task := range tasks {
					assert.NoError(t, db.Ack(ctx, task))
				}
			}
		}()
	}
	var producing sync.WaitGroup
	for p := range producers {
		producing.Add(1)
		go func() {
			defer producing.Done()
			for i := range each {
				task := gatewaytest.NewAcceptance(gatewaytest.NewID("msg"), "alice@a.example", []string{"bob@b.example"}, time.Now()).Tasks[0]
				due := time.Now()
				if (p+i)%3 != 0 {
					due = due.Add(time.Duration(i%4) * 10 * time.Millisecond)
				}
				task.NotBefore = due
				mu.Lock()
				dueOf[task.ID] = due
				mu.Unlock()
				assert.NoError(t, db.Enqueue(ctx, task))
				time.Sleep(time.Duration(10+i%3*10) * time.Millisecond)
			}
		}()
	}
	producing.Wait()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got == producers*each
	}, 2*wait, 10*time.Millisecond, "not every task was received")
	stop()
	receivers.Wait()
	mu.Lock()
	defer mu.Unlock()
	assert.Less(t, latest, wait/2, "a task waited for a receiver's wait to end: a wake was lost")
}
