package prom_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe/prom"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// BenchmarkScrapeDeepQueue is one whole scrape (every collector, the
// store's counts included) of a gateway holding 100 000 queued tasks:
// what a deep queue costs the scraper.
func BenchmarkScrapeDeepQueue(b *testing.B) {
	const tasks, batch = 100_000, 1000
	base := time.Now()
	for engine, st := range localStores(b, time.Now) {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < tasks; i += batch {
				ts := make([]gateway.Task, batch)
				for j := range ts {
					id := fmt.Sprintf("m-%07d", i+j)
					ts[j] = gateway.Task{ID: id, MessageID: id, Kind: gateway.TaskLocal, Recipients: []string{"bob@example.org"},
						CreatedAt: base, NotBefore: base.Add(time.Duration(i+j) * time.Millisecond)}
				}
				require.NoError(b, st.Enqueue(ctx, ts...))
			}
			depth, _, err := st.QueueStats(ctx)
			require.NoError(b, err)
			require.Equal(b, tasks, depth)
			h := prom.New(prom.Options{Queue: st, Checks: map[string]func(context.Context) error{"queue": st.CheckQueue}}).Handler()
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				_, _ = io.Copy(io.Discard, rec.Body)
			}
		})
	}
}

// BenchmarkInstrumentAPI is what counting and timing add to one API
// request, against the same handler bare.
func BenchmarkInstrumentAPI(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	for name, h := range map[string]http.Handler{"bare": bare, "instrumented": prom.New(prom.Options{}).InstrumentAPI(bare)} {
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "/v1/messages", nil)
			b.ReportAllocs()
			for range b.N {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
