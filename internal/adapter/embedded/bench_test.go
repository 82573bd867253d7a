package embedded

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// BenchmarkAcceptParallel measures durable accepts of a 1 KB message with
// one task, at several numbers of concurrent submitters: grouping writes
// into one log flush is what makes the higher ones cheap per message. It
// also reports what the checkpoints behind them cost.
func BenchmarkAcceptParallel(b *testing.B) {
	body := strings.Repeat("lorem ipsum ", 70) // with the envelope, ~1 KB
	for _, p := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", p*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			db, err := Open(Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			ctx := b.Context()
			var seq atomic.Uint64
			b.SetParallelism(p)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("bench-%012d", seq.Add(1))
					a := gatewaytest.NewAcceptance(id, "alice@a.example", []string{"bob@b.example"}, time.Now().UTC())
					a.Message.Raw = fmt.Appendf(nil, `{"version":"1.0","message_id":%q,"sender":"alice@a.example","recipients":["bob@b.example"],"subject":"bench","payload":{"text":%q}}`, id, body)
					if _, err := db.Accept(ctx, a); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepts/s")
			if err := db.commit.checkpointNow(); err != nil {
				b.Fatal(err)
			}
			if cs := db.CommitStats(); cs.Commits > 0 && cs.Checkpoints > 0 {
				st := db.bolt.Stats().TxStats
				b.ReportMetric(float64(cs.Writes)/float64(cs.Commits), "writes/flush")
				b.ReportMetric(float64(cs.Writes)/float64(cs.Checkpoints), "writes/checkpoint")
				b.ReportMetric(float64(st.GetWrite())/float64(cs.Writes), "pages/write")
			}
		})
	}
}
