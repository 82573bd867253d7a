package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/stretchr/testify/assert"
)

// BenchmarkPostMessage measures POST /v1/messages as the local gateway
// serves it: an agent key, a pull recipient, a unique message with a
// 512-byte payload per request, and the JSON log line of the production
// logger (to io.Discard). The request, its body and the recorder are made
// outside the timer, so B/op and allocs/op are the handler's, the
// service's and the store's.
//
//   - memory: a store that keeps nothing (agents in a map, Accept a
//     no-op), so that what is measured is the HTTP and accept path alone.
//   - pebble: the local gateway's Pebble store in a temporary directory,
//     with concurrent clients so that group commit amortises fsync as it
//     does under load; its wall time is mostly the disk's.
//
// httptest.ResponseRecorder snapshots the headers of each response (three
// allocations) where net/http's server does not.
func BenchmarkPostMessage(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		st := &memStore{agents: map[string]*gateway.Agent{}}
		benchPost(b, st, nil, false)
	})
	b.Run("pebble", func(b *testing.B) {
		db, err := pebblestore.Open(pebblestore.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { assert.NoError(b, db.Close()) }()
		benchPost(b, db, schema.NewRegistry(db), true)
	})
}

// benchStore is what the benchmark needs of a store.
type benchStore interface {
	gateway.MessageStore
	gateway.InboxStore
	gateway.AgentStore
	gateway.TaskQueue
}

func benchPost(b *testing.B, st benchStore, schemas gateway.SchemaRegistry, parallel bool) {
	ctx := context.Background()
	const (
		sender    = "alice@example.org"
		recipient = "bob@example.org"
		key       = "amtp_benchmarkbenchmarkbenchmarkbenchmark01"
	)
	for _, a := range []*gateway.Agent{
		{Address: sender, DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey(key), CreatedAt: time.Now()},
		{Address: recipient, DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("amtp_other"), CreatedAt: time.Now()},
	} {
		if err := st.PutAgent(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	// The production logger: JSON lines with the correlation ids.
	log := observe.Correlate(slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ports := gateway.Ports{Messages: st, Inbox: st, Agents: st, Queue: st}
	if schemas != nil { // not a nil *schema.Registry in the interface
		ports.Schemas = schemas
	}
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: "admin-key-0123456789abcdef", Logger: log}, ports)
	if err != nil {
		b.Fatal(err)
	}
	h := httpapi.New(svc, httpapi.Options{Logger: log})

	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
	const payloadBytes = 512
	n := payloadBytes - len(`{"seq":"0000000000","text":""}`)
	filler := strings.Repeat(words, n/len(words)+1)[:n]
	var seq int
	var seqMu sync.Mutex
	type call struct {
		req *http.Request
		rec *httptest.ResponseRecorder
	}
	// batch makes n ready requests, each with a unique message.
	batch := func(n int) []call {
		seqMu.Lock()
		defer seqMu.Unlock()
		out := make([]call, n)
		for i := range out {
			seq++
			body := fmt.Appendf(nil,
				`{"version":"1.0","message_id":%q,"idempotency_key":%q,"timestamp":%q,"sender":%q,"recipients":[%q],"subject":"bench","payload":{"seq":"%010d","text":%q}}`,
				amtp.NewUUIDv7(), amtp.NewUUIDv4(), amtp.FormatTime(time.Now()), sender, recipient, seq, filler)
			req := httptest.NewRequest("POST", "/v1/messages", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			out[i] = call{req: req, rec: httptest.NewRecorder()}
		}
		return out
	}
	check := func(c call) {
		if c.rec.Code != http.StatusAccepted {
			b.Fatalf("HTTP %d: %s", c.rec.Code, c.rec.Body)
		}
	}
	const chunk = 256
	b.ReportAllocs()
	if !parallel {
		b.ResetTimer()
		for done := 0; done < b.N; {
			b.StopTimer()
			calls := batch(min(chunk, b.N-done))
			b.StartTimer()
			for _, c := range calls {
				h.ServeHTTP(c.rec, c.req)
			}
			b.StopTimer()
			for _, c := range calls {
				check(c)
			}
			b.StartTimer()
			done += len(calls)
		}
		return
	}
	// Concurrent clients: the requests are still made ahead, but the
	// timer cannot stop per goroutine, so they are made for the whole run
	// before it starts.
	calls := batch(b.N)
	next := make(chan call, len(calls))
	for _, c := range calls {
		next <- c
	}
	close(next)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := <-next
			h.ServeHTTP(c.rec, c.req)
		}
	})
	b.StopTimer()
	for _, c := range calls {
		check(c)
	}
}

// memStore keeps agents and nothing else: Accept succeeds without storing,
// which is enough for unique messages. The embedded interfaces are nil;
// the accept path of a pull recipient calls none of their other methods.
type memStore struct {
	gateway.MessageStore
	gateway.InboxStore
	gateway.TaskQueue
	gateway.AgentStore
	mu     sync.RWMutex
	agents map[string]*gateway.Agent
}

func (s *memStore) PutAgent(_ context.Context, a *gateway.Agent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents[a.Address] = a
	return nil
}

func (s *memStore) GetAgent(_ context.Context, address string) (*gateway.Agent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if a, ok := s.agents[address]; ok {
		c := *a
		return &c, nil
	}
	return nil, gateway.ErrNotFound
}

func (s *memStore) AgentByKeyHash(_ context.Context, h string) (*gateway.Agent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range s.agents {
		if a.APIKeyHash == h {
			c := *a
			return &c, nil
		}
	}
	return nil, gateway.ErrNotFound
}

func (s *memStore) Accept(context.Context, *gateway.Acceptance) (*gateway.IdempotencyRecord, error) {
	return nil, nil
}
