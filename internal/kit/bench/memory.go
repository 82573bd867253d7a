package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/kit/bench/load"
	"github.com/agentry/agentry/internal/kit/bench/report"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// procMemory is a process's resident memory from /proc/<pid>/status.
type procMemory struct {
	RSS, Anon, File int64 // bytes: VmRSS, RssAnon, RssFile
}

func readProcMemory(pid int) (procMemory, error) {
	var m procMemory
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS": &m.RSS, "RssAnon": &m.Anon, "RssFile": &m.File}
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status %s: %q", pid, k, v)
		}
		*dst = n << 10
		found++
	}
	if found != len(fields) {
		return m, fmt.Errorf("/proc/%d/status lacks VmRSS, RssAnon or RssFile", pid)
	}
	return m, nil
}

// storeStats measures a closed store: the bytes of its tables after a
// full compaction, by table.
type storeStats struct {
	Alloc   int64
	Buckets map[string]int64 // bytes by table
	// Fixed is the bytes of files that do not grow with the data
	// (Pebble's log segments, manifest and options).
	Fixed int64
}

// queueOp submits a message and insists that it ends up waiting for a
// retry (the first attempt, made in the request, failed): not delivered,
// not refused.
func queueOp(client *http.Client, url, key string, msgs *messages, seqBase int) load.Op {
	return func(ctx context.Context, _, seq int) (time.Duration, error) {
		_, body := msgs.Make(seqBase + seq)
		req, err := post(url, key, body)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return 0, err
		}
		var out struct {
			Recipients []struct {
				Status string `json:"status"`
			} `json:"recipients"`
		}
		_ = json.Unmarshal(answer, &out)
		if resp.StatusCode != http.StatusAccepted || len(out.Recipients) != 1 || (out.Recipients[0].Status != "queued" && out.Recipients[0].Status != "retrying") {
			return 0, fmt.Errorf("want 202 with the recipient queued or retrying, got HTTP %d %.300s", resp.StatusCode, answer)
		}
		return 0, nil
	}
}

// memory queues messages for a push agent whose webhook is unreachable
// (connection refused; the retry is an hour away) in a gateway running as
// a child process, and measures how the child's resident memory and the
// store grow per message.
//
// Why a child process: the load generator, the other scenarios' garbage
// and the test framework would otherwise be in the same RSS. The child is
// this binary re-executed into a plain gateway (RunChildIfRequested), so
// no build of ./cmd/agentry is needed and the code measured is the same.
//
// RSS is read from /proc/<pid>/status after the child ran runtime.GC and
// debug.FreeOSMemory: growth then is memory the gateway holds because the
// messages are queued, not garbage the collector has not returned yet
// (that figure, without the forced collection, is reported beside it).
// RssFile is the file pages the process has mapped and touched.
//
// The store is measured with the gateway stopped (the store locks its
// directory), before and after, as its tables after a full compaction
// (pebblestore.Measure), its log and manifest reported apart as
// fixed-size files. The payloads are random bytes as base64, so that
// compression cannot hide the overhead.
func (r *run) memory(ctx context.Context) (err error) {
	if runtime.GOOS != "linux" {
		return errors.New("the memory scenario reads /proc/<pid>/status, so it runs on Linux only")
	}
	dir, err := r.scenarioDir(Memory)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "data")
	// A webhook nobody listens on: the port was free a moment ago.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	deadAddr := dead.Addr().String()
	deadURL := "http://" + deadAddr + "/hook"
	_ = dead.Close()

	adminKey := randomKey("bench-admin-")
	env := gatewayEnv("localhost", "", dataDir, adminKey, r.dns.Addr(), map[string]string{
		"AGENTRY_ALLOW_INSECURE": "1",
		"AGENTRY_LOG_LEVEL":      "error",
		// Queued means waiting: no retry during the measurement.
		"AGENTRY_RETRY_BASE": "1h",
		"AGENTRY_RETRY_MAX":  "1h",
	})
	delete(env, "AGENTRY_ADDR")
	delete(env, "AGENTRY_PUBLIC_URL")

	n := r.o.MemoryMessages
	warm := max(n/20, 50)
	client := load.NewClient(r.o.Concurrency)
	defer client.CloseIdleConnections()
	// Incompressible payloads (random bytes as base64, new for every
	// message): a compressing store must not pass for a small one.
	msgs := newMessages("alice@localhost", "dave@localhost", r.o.PayloadBytes).incompressible()
	send := func(c *child, key string, count, seqBase int) (load.Result, error) {
		res, err := load.Run(ctx, load.Config{Concurrency: r.o.Concurrency, Count: count}, queueOp(client, c.url+"/v1/messages", key, msgs, seqBase))
		if err == nil && res.Errors == res.Requests {
			err = fmt.Errorf("no message was queued; first error: %s", res.FirstError)
		}
		return res, err
	}

	// First life: agents, a warm-up batch; then the store's baseline.
	c, err := startChild(childGateway, env, deadAddr, nil)
	if err != nil {
		return err
	}
	alice, err := register(c.url, adminKey, "alice", "pull", "")
	if err == nil {
		_, err = register(c.url, adminKey, "dave", "push", deadURL)
	}
	if err == nil {
		_, err = send(c, alice, warm, 0)
	}
	if err = errors.Join(err, c.stop()); err != nil {
		return err
	}
	s0, err := measureStore(ctx, dataDir)
	if err != nil {
		return err
	}

	// Second life on the same data: warm up again, then baseline, the
	// measured batch, and the figures again.
	c, err = startChild(childGateway, env, deadAddr, nil)
	if err != nil {
		return err
	}
	defer func() {
		if c != nil {
			err = errors.Join(err, c.stop())
		}
	}()
	warmRes, err := send(c, alice, warm, warm)
	if err != nil {
		return err
	}
	snapshot := func() (raw, collected procMemory, heap childStats, err error) {
		time.Sleep(500 * time.Millisecond) // let in-flight work and timers settle
		if raw, err = readProcMemory(c.cmd.Process.Pid); err != nil {
			return
		}
		if heap, err = c.gc(); err != nil {
			return
		}
		collected, err = readProcMemory(c.cmd.Process.Pid)
		return
	}
	// Two measured batches of n: the first fills what the engine holds
	// whatever the number of messages (Pebble's memtables and block
	// cache, bounded by their options); the second is the growth per
	// message once those are full — the figure that tells how memory
	// scales with the queue. Both are reported.
	_, memA, _, err := snapshot()
	if err != nil {
		return err
	}
	r.logf("memory: queueing %d messages for an unreachable webhook (first batch)", n)
	first, err := send(c, alice, n, 2*warm)
	if err != nil {
		return err
	}
	raw0, mem0, heap0, err := snapshot()
	if err != nil {
		return err
	}
	r.logf("memory: queueing %d more (second batch, measured)", n)
	res, err := send(c, alice, n, 2*warm+n)
	if err != nil {
		return err
	}
	raw1, mem1, heap1, err := snapshot()
	if err != nil {
		return err
	}
	err, c = c.stop(), nil
	if err != nil {
		return err
	}
	s1, err := measureStore(ctx, dataDir)
	if err != nil {
		return err
	}

	queued := res.Requests - res.Errors
	firstQueued := first.Requests - first.Errors
	stored := queued + firstQueued + warmRes.Requests - warmRes.Errors
	per10k := func(b int64) float64 { return float64(b) / float64(queued) * 10000 / (1 << 20) }
	note := fmt.Sprintf("%d queued", queued)
	if res.Errors > 0 {
		note += fmt.Sprintf(", %d errors (first: %s)", res.Errors, truncate(res.FirstError, 120))
	}
	r.rep.Add(report.Row{Section: Memory, Name: "rss per 10k queued", Value: per10k(mem1.RSS - mem0.RSS), Unit: "MB", Target: report.AtMost(rssPer10kTargetMB),
		Note: note + " after a first batch; child process, after GC"})
	r.rep.Add(report.Row{Section: Memory, Name: "rss over the first batch", Value: float64(mem0.RSS-memA.RSS) / (1 << 20), Unit: "MB",
		Note: fmt.Sprintf("%d queued; includes filling the engine's fixed buffers (%s)", firstQueued, fixedBuffers())})
	r.rep.Add(report.Row{Section: Memory, Name: "rss per 10k, no forced GC", Value: per10k(raw1.RSS - raw0.RSS), Unit: "MB"})
	r.rep.Add(report.Row{Section: Memory, Name: "anon rss per 10k", Value: per10k(mem1.Anon - mem0.Anon), Unit: "MB", Note: "heap, stacks"})
	r.rep.Add(report.Row{Section: Memory, Name: "file rss per 10k", Value: per10k(mem1.File - mem0.File), Unit: "MB", Note: "mapped store pages"})
	r.rep.Add(report.Row{Section: Memory, Name: "go heap per 10k", Value: per10k(int64(heap1.HeapInuse) - int64(heap0.HeapInuse)), Unit: "MB",
		Note: fmt.Sprintf("goroutines %d → %d", heap0.Goroutines, heap1.Goroutines)})
	perMsg := float64(s1.Alloc-s0.Alloc) / float64(stored)
	payload := float64(msgs.PayloadBytes())
	r.rep.Add(report.Row{Section: Memory, Name: "store per message", Value: perMsg, Unit: "B",
		Note: fmt.Sprintf("%d messages, %s engine; tables after a full compaction", stored, localgw.DefaultEngine)})
	r.rep.Add(report.Row{Section: Memory, Name: "store beyond payload", Value: perMsg - payload, Unit: "B", Target: report.AtMost(storeOverheadTarget),
		Note: fmt.Sprintf("payload %.0f B, incompressible", payload)})
	r.rep.Add(report.Row{Section: Memory, Name: "store fixed-size files", Value: float64(s1.Fixed) / (1 << 20), Unit: "MB",
		Note: "log segments, manifest, options"})
	r.rep.Note("memory: store bytes per message by table: %s", bucketGrowth(s0, s1, stored))
	return nil
}

// fixedBuffers names what the store holds in memory whatever the number
// of messages.
func fixedBuffers() string {
	return fmt.Sprintf("Pebble: memtables ≤ %d × %d MiB, block cache ≤ %d MiB",
		pebblestore.MaxMemTables, pebblestore.DefaultMemTableBytes>>20, pebblestore.DefaultCacheBytes>>20)
}

// measureStore measures the closed store of dataDir: its tables after a
// full compaction (pebblestore.Measure).
func measureStore(ctx context.Context, dataDir string) (storeStats, error) {
	fp, err := pebblestore.Measure(ctx, dataDir)
	if err != nil {
		return storeStats{}, err
	}
	return storeStats{Alloc: fp.Tables, Fixed: fp.Fixed, Buckets: fp.ByTable}, nil
}

// bucketGrowth lists the buckets that grew, largest first, in bytes per
// message.
func bucketGrowth(before, after storeStats, messages int64) string {
	type grown struct {
		name  string
		bytes int64
	}
	var list []grown
	for name, b := range after.Buckets {
		if d := b - before.Buckets[name]; d > 0 {
			list = append(list, grown{name, d})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].bytes > list[j].bytes })
	parts := make([]string, 0, len(list))
	for _, g := range list {
		parts = append(parts, fmt.Sprintf("%s %.0f", g.name, float64(g.bytes)/float64(messages)))
	}
	return strings.Join(parts, ", ")
}
