package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/kit/bench/report"
)

// Targets of the flood scenario (issue 19): what anonymous callers can cost
// a gateway, and what one large message costs in heap.
const (
	floodRSSTargetMB      = 256
	floodHealthP99TargetM = 50
	largeHeapTarget       = 3 // × the message's size
)

// largeMessageBytes is the size of the flood's bodies: the default maximum.
const largeMessageBytes = 10 << 20

// flood measures what anonymous callers can make a local gateway (a child
// process) hold: Concurrency clients POST 10 MiB bodies without
// credentials for Duration, half of them with an envelope the gateway can
// refuse from the first bytes, half with the envelope after the payload,
// which must be read whole before it is refused. Meanwhile a process of
// its own asks /healthz every 10 ms. Reported: the child's peak RSS (VmHWM), the
// health probe's latency beside the same probe on the idle gateway, and
// the answers by status.
//
// Then an agent sends 10 MiB messages one at a time (largeMessages): the
// heap each holds and what it allocates, as multiples of its size.
func (r *run) flood(ctx context.Context) (err error) {
	if runtime.GOOS != "linux" {
		return errors.New("the flood scenario reads /proc/<pid>/status, so it runs on Linux only")
	}
	dir, err := r.scenarioDir(Flood)
	if err != nil {
		return err
	}
	adminKey := randomKey("bench-admin-")
	env := gatewayEnv("localhost", "", filepath.Join(dir, "data"), adminKey, r.dns.Addr(), map[string]string{
		"AGENTRY_ALLOW_INSECURE": "1",
		"AGENTRY_LOG_LEVEL":      "error",
	})
	delete(env, "AGENTRY_ADDR")
	delete(env, "AGENTRY_PUBLIC_URL")
	if r.o.ProfileDir != "" {
		if err := os.MkdirAll(r.o.ProfileDir, 0o755); err != nil {
			return err
		}
		env[childProfileEnv] = filepath.Join(r.o.ProfileDir, Flood+".gateway.pprof")
	}
	c, err := startChild(childGateway, env, "", nil)
	if err != nil {
		return err
	}
	defer func() {
		if c != nil {
			err = errors.Join(err, c.stop())
		}
	}()
	if _, err := register(c.url, adminKey, "bob", "pull", ""); err != nil {
		return err
	}
	blob := randomText(largeMessageBytes - 512)
	probe, err := startChild(childProber, map[string]string{childProbeURLEnv: c.url}, "", nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, probe.stop()) }()
	var idle, busy probeStats
	if err := probe.ask("probe", &idle); err != nil { // what it saw while starting: discarded
		return err
	}
	time.Sleep(2 * time.Second)
	if err := probe.ask("probe", &idle); err != nil {
		return err
	}
	base, err := readProcMemory(c.cmd.Process.Pid)
	if err != nil {
		return err
	}
	answers := r.floodAnonymous(ctx, c.url, blob)
	if err := probe.ask("probe", &busy); err != nil {
		return err
	}
	hwm, err := readPeakRSS(c.cmd.Process.Pid)
	if err != nil {
		return err
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	r.rep.Add(report.Row{Section: Flood, Name: "peak rss", Value: mb(hwm), Unit: "MB", Target: report.AtMost(floodRSSTargetMB),
		Note: fmt.Sprintf("%d anonymous 10 MiB POSTs at once for %v; %.0f MB before", r.o.Concurrency, r.o.Duration, mb(base.RSS))})
	r.rep.Add(report.Row{Section: Flood, Name: "healthz idle p99", Value: idle.P99, Unit: "ms", Note: fmt.Sprintf("%d probes from a process of their own, %d failed", idle.Probes, idle.Failed)})
	r.rep.Add(report.Row{Section: Flood, Name: "healthz p50", Value: busy.P50, Unit: "ms"})
	r.rep.Add(report.Row{Section: Flood, Name: "healthz p99", Value: busy.P99, Unit: "ms", Baseline: Flood + "/healthz idle p99",
		Target: report.AtMost(floodHealthP99TargetM), Note: fmt.Sprintf("%d probes, %d failed", busy.Probes, busy.Failed)})
	r.rep.Add(report.Row{Section: Flood, Name: "anonymous posts", Value: float64(answers.total()), Unit: "requests", Note: answers.String()})
	if err := c.stop(); err != nil {
		return err
	}
	c = nil
	return r.largeMessages(ctx, filepath.Join(dir, "large"), blob)
}

// largeMessages sends 10 MiB messages from alice to bob one at a time to
// a gateway of its own and reports what each cost its heap: the peak of
// its live heap above idle, found by collecting back to back
// (childGCLoopEnv), which is what a message holds rather than the garbage
// a collector lets pile up between collections (LimitMemory bounds that,
// and the flood's RSS shows it); and everything it allocated.
func (r *run) largeMessages(ctx context.Context, dir, blob string) (err error) {
	adminKey := randomKey("bench-admin-")
	env := gatewayEnv("localhost", "", filepath.Join(dir, "data"), adminKey, r.dns.Addr(), map[string]string{
		"AGENTRY_ALLOW_INSECURE": "1",
		"AGENTRY_LOG_LEVEL":      "error",
		childGCLoopEnv:           "1",
	})
	delete(env, "AGENTRY_ADDR")
	delete(env, "AGENTRY_PUBLIC_URL")
	c, err := startChild(childGateway, env, "", nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.stop()) }()
	key, err := register(c.url, adminKey, "alice", "pull", "")
	if err == nil {
		_, err = register(c.url, adminKey, "bob", "pull", "")
	}
	if err != nil {
		return err
	}
	const n = 6
	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()
	send := func() (int, error) {
		body := largeBody("alice@localhost", "bob@localhost", blob, true)
		req, err := post(c.url+"/v1/messages", key, body)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode != http.StatusAccepted {
			return 0, fmt.Errorf("large message: HTTP %d %s", resp.StatusCode, answer)
		}
		return len(body), nil
	}
	if _, err := send(); err != nil { // warm-up: buffers, pools, the store's file
		return err
	}
	if _, err := c.gc(); err != nil {
		return err
	}
	// The heap's peak over a quiet moment is the idle level.
	var before allocStats
	if err := c.ask("allocs", &before); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.ask("allocs", &before); err != nil {
		return err
	}
	idleHeap := before.PeakLive
	var size int
	var peak uint64
	for range n {
		k, err := send()
		if err != nil {
			return err
		}
		size = k
		time.Sleep(200 * time.Millisecond) // let delivery to the inbox finish
		var st allocStats
		if err := c.ask("allocs", &st); err != nil {
			return err
		}
		peak = max(peak, st.PeakLive)
	}
	var after allocStats
	if err := c.ask("allocs", &after); err != nil {
		return err
	}
	perMsg := float64(after.TotalAlloc-before.TotalAlloc) / n
	held := float64(peak) - float64(idleHeap)
	r.rep.Add(report.Row{Section: Flood, Name: "large message live heap", Value: held / float64(size), Unit: "× size", Target: report.AtMost(largeHeapTarget),
		Note: fmt.Sprintf("an agent's %.1f MiB message, one at a time: live heap peak %.1f MB above idle", float64(size)/(1<<20), held/(1<<20))})
	r.rep.Add(report.Row{Section: Flood, Name: "large message allocated", Value: perMsg / float64(size), Unit: "× size",
		Note: "everything allocated per message, garbage included: accept, store, delivery to the inbox"})
	return nil
}

// answerCounts counts the flood's answers by HTTP status (0: no answer).
type answerCounts struct {
	mu sync.Mutex
	by map[int]int
}

func (a *answerCounts) add(status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.by == nil {
		a.by = map[int]int{}
	}
	a.by[status]++
}

func (a *answerCounts) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, v := range a.by {
		n += v
	}
	return n
}

func (a *answerCounts) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []int
	for k := range a.by {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, a.by[k]))
	}
	return strings.Join(parts, ", ")
}

// floodAnonymous runs Concurrency anonymous senders of 10 MiB bodies for
// Duration. Even-numbered ones put the envelope first (refused from it),
// odd ones after the payload (read whole, then refused).
func (r *run) floodAnonymous(ctx context.Context, base, blob string) *answerCounts {
	early := largeBody("mallory@localhost", "bob@localhost", blob, true)
	late := largeBody("mallory@localhost", "bob@localhost", blob, false)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: r.o.Concurrency}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	var counts answerCounts
	deadline := time.Now().Add(r.o.Duration)
	var wg sync.WaitGroup
	for i := range r.o.Concurrency {
		body := early
		if i%2 == 1 {
			body = late
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/messages", bytes.NewReader(body))
				if err != nil {
					counts.add(0)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					counts.add(0)
					continue
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				_ = resp.Body.Close()
				counts.add(resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	return &counts
}

// largeBody is a message whose payload is blob, with the sender and
// recipients before the payload or after it.
func largeBody(sender, recipient, blob string, envelopeFirst bool) []byte {
	head := fmt.Sprintf(`"version":"1.0","message_id":%q,"idempotency_key":%q,"timestamp":%q,"sender":%q,"recipients":[%q],"subject":"large"`,
		amtp.NewUUIDv7(), amtp.NewUUIDv4(), amtp.FormatTime(time.Now()), sender, recipient)
	payload := `"payload":{"blob":"` + blob + `"}`
	if envelopeFirst {
		return []byte("{" + head + "," + payload + "}")
	}
	return []byte("{" + payload + "," + head + "}")
}

// randomText is n characters of base64 of random bytes: as incompressible
// as JSON text gets.
func randomText(n int) string {
	raw := make([]byte, n*3/4+3)
	_, _ = rand.Read(raw)
	return base64.RawStdEncoding.EncodeToString(raw)[:n]
}

// probeStats is a prober child's answer to "probe": the latencies of the
// /healthz probes since the last "probe".
type probeStats struct {
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Probes int     `json:"probes"`
	Failed int     `json:"failed"`
}

// prober asks base/healthz every 10 ms, one request at a time, on a
// connection of its own.
type prober struct {
	base   string
	mu     sync.Mutex
	lat    []time.Duration
	failed int
}

func (p *prober) run(ctx context.Context) {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t0 := time.Now()
		ok := probeOnce(ctx, client, p.base+"/healthz")
		d := time.Since(t0)
		p.mu.Lock()
		if ok {
			p.lat = append(p.lat, d)
		} else {
			p.failed++
		}
		p.mu.Unlock()
	}
}

func probeOnce(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *prober) take() probeStats {
	p.mu.Lock()
	lat, failed := p.lat, p.failed
	p.lat, p.failed = nil, 0
	p.mu.Unlock()
	slices.Sort(lat)
	q := func(f float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return ms(lat[min(len(lat)-1, int(f*float64(len(lat))))])
	}
	return probeStats{P50: q(0.50), P99: q(0.99), Probes: len(lat), Failed: failed}
}

// readPeakRSS is a process's peak resident memory (VmHWM) in bytes.
func readPeakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status VmHWM: %q", pid, v)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}
