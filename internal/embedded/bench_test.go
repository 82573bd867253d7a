package embedded

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentry/agentry/internal/gateway/gatewaytest"
)

// BenchmarkAcceptParallel measures durable accepts of a 1 KB message with
// one task, at several numbers of concurrent submitters: group commit is
// what makes the higher ones cheap per message.
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
			if cs := db.CommitStats(); cs.Commits > 0 {
				n := cs.Commits
				st := db.bolt.Stats().TxStats
				b.ReportMetric(float64(cs.Writes)/float64(n), "writes/commit")
				b.ReportMetric(float64(st.GetWrite())/float64(n), "pages/commit")
			}
		})
	}
}

// BenchmarkLogGroupFlush measures what a write-ahead log would put on the
// answer's path (docs/performance.md, "Next"): appending a group of
// records to a file and flushing it once, per group of 16, against
// BenchmarkAcceptParallel's bbolt commit of a group.
func BenchmarkLogGroupFlush(b *testing.B) {
	const group = 16
	record := make([]byte, 1200) // a 1 KB message with its keys and statuses
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 0, group*len(record))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		buf = buf[:0]
		for range group {
			buf = append(buf, record...)
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil { // fsync; fdatasync would skip the size update
			b.Fatal(err)
		}
		if i%1000 == 999 { // a rotated log: keep the file small
			if err := f.Truncate(0); err != nil {
				b.Fatal(err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*group)/b.Elapsed().Seconds(), "records/s")
}
