// Package bench is the measuring tool behind `make bench`: it starts what
// each scenario needs in this process (or, for memory, in a child process)
// on loopback with temporary data directories, drives it with the
// closed-loop generator of package load, and reports figures as ratios to
// the physical floor of package floor measured in the same run.
//
// Scenarios:
//
//	floor       the bare JSON-over-HTTP handler, the baseline of every ratio
//	accept      POST /v1/messages on the local gateway as `make run` configures
//	            it (durable store, schema validation and signatures on),
//	            a sender agent writing to a pull agent on the same domain
//	push        end to end: sender → gateway → a push agent's webhook on
//	            loopback; time from the POST to the webhook receiving it
//	federation  the same across two gateways, a.test → b.test, found through
//	            a loopback DNS server, messages signed and verified; its
//	            ratio is to its own floor measured just before it (the
//	            federation-floor rows): a bare two-hop relay that signs and
//	            verifies ES256 and forwards synchronously (floor.StartRelay)
//	flood       anonymous 10 MiB POSTs at a gateway in a child process: its
//	            peak RSS and /healthz latency; and an agent's 10 MiB
//	            messages: the heap each costs
//	memory      a gateway in a child process holding messages queued for a
//	            webhook that is down: RSS growth and store bytes per message
//	lambda      the Lambda functions: bootstrap sizes, init time under the
//	            Runtime API harness, warm api handler latency
//	cost        AWS API calls and DynamoDB write units per message on the
//	            AWS adapters (against moto) and the price per million
//	heat        four mixes of traffic through the AWS adapters (against
//	            moto): DynamoDB units per partition key, the message rate
//	            before the hottest key or an account quota binds
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/kit/bench/load"
	"github.com/agentry/agentry/internal/kit/bench/report"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// Scenario names, in the order they run.
const (
	Floor      = "floor"
	Accept     = "accept"
	Push       = "push"
	Federation = "federation"
	// FederationFloor is the federation scenario's own floor: a bare
	// two-hop relay that signs and verifies (floor.StartRelay), measured
	// first in the same run; federation's ratio is to it.
	FederationFloor = "federation-floor"
	// FederationPair is the federation scenario's second section: each
	// message to two recipients at b.test.
	FederationPair = "federation-2rcpt"
	Flood          = "flood"
	Memory         = "memory"
	Lambda         = "lambda"
	Cost           = "cost"
	Heat           = "heat"
)

// All is every scenario, in run order.
var All = []string{Floor, Accept, Push, Federation, Flood, Memory, Lambda, Cost, Heat}

// Options say what to run and how hard.
type Options struct {
	Scenarios   []string      // default All; floor is added when a ratio needs it
	Warmup      time.Duration // per load scenario, default 2s
	Duration    time.Duration // measured, per load scenario, default 10s
	Concurrency int           // closed-loop workers, default 32
	// PayloadBytes is the size of each message's payload, default 512.
	PayloadBytes int
	// MemoryMessages is how many undeliverable messages the memory
	// scenario queues, default 10000 (figures are scaled to per 10k).
	MemoryMessages int
	// DeliveryTimeout bounds one end-to-end delivery, default 10s.
	DeliveryTimeout time.Duration
	// WorkDir holds the temporary data directories (removed at the end),
	// default the system temp dir. Its file system matters: the store
	// fsyncs every commit.
	WorkDir string
	// ProfileDir, when set, receives a CPU profile of each in-process
	// load scenario (<scenario>.pprof) and a block profile
	// (<scenario>.block.pprof: where goroutines waited). Block profiles
	// accumulate over the run, so compare one with the previous
	// scenario's (go tool pprof -diff_base). Profiling costs a little
	// throughput.
	ProfileDir string
	// Progress receives one line per step; nil for none.
	Progress io.Writer
}

func (o Options) withDefaults() Options {
	if len(o.Scenarios) == 0 {
		o.Scenarios = All
	}
	if o.Warmup <= 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.PayloadBytes <= 0 {
		o.PayloadBytes = 512
	}
	if o.MemoryMessages <= 0 {
		o.MemoryMessages = 10000
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = 10 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// ParseScenarios reads a comma-separated list of scenario names; empty
// means all.
func ParseScenarios(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		if name == "" {
			continue
		}
		if !slices.Contains(All, name) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(All, ", "))
		}
		out = append(out, name)
	}
	return out, nil
}

// run is the state one Run shares between scenarios.
type run struct {
	o   Options
	rep *report.Report
	dir string // temporary, removed at the end
	dns *dnsServer
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "bench: "+format+"\n", args...)
}

// scenarioDir makes a fresh directory for one scenario's data.
func (r *run) scenarioDir(name string) (string, error) {
	return os.MkdirTemp(r.dir, name+"-")
}

// Run runs the scenarios and returns their report. On an error the report
// holds what was measured before it.
func Run(ctx context.Context, o Options) (*report.Report, error) {
	o = o.withDefaults()
	want := map[string]bool{}
	for _, s := range o.Scenarios {
		if !slices.Contains(All, s) {
			return nil, fmt.Errorf("unknown scenario %q", s)
		}
		want[s] = true
	}
	// Ratios are to a floor measured in the same run.
	if want[Accept] || want[Push] || want[Federation] {
		want[Floor] = true
	}
	rep := report.New()
	rep.Settings = map[string]string{
		"warmup":           o.Warmup.String(),
		"duration":         o.Duration.String(),
		"concurrency":      strconv.Itoa(o.Concurrency),
		"payload_bytes":    strconv.Itoa(o.PayloadBytes),
		"memory_messages":  strconv.Itoa(o.MemoryMessages),
		"delivery_timeout": o.DeliveryTimeout.String(),
		// Paired runs against the earlier bbolt engine use a binary
		// built from an earlier commit; this names the engine measured.
		"store_engine": localgw.DefaultEngine,
	}
	dir, err := os.MkdirTemp(o.WorkDir, "agentry-bench-")
	if err != nil {
		return rep, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if fs := fsType(dir); fs != "" {
		rep.Settings["data_fs"] = fs
		if fs == "tmpfs" || fs == "ramfs" {
			rep.Note("the data directories are on %s: fsync costs nothing there, so durable figures are optimistic (-workdir to choose a disk)", fs)
		}
	}
	r := &run{o: o, rep: rep, dir: dir}
	cpu0, _ := readCPU()
	r.dns, err = startDNS()
	if err != nil {
		return rep, err
	}
	defer func() { _ = r.dns.Close() }()

	steps := map[string]func(context.Context) error{
		Floor: r.floor, Accept: r.accept, Push: r.push, Federation: r.federation, Flood: r.flood, Memory: r.memory,
		Lambda: r.lambda, Cost: r.cost, Heat: r.heat,
	}
	for _, name := range All {
		if !want[name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		// Each scenario starts from a collected heap, not the last one's.
		runtime.GC()
		r.logf("%s…", name)
		t0 := time.Now()
		c0, _ := readCPU()
		if err := steps[name](ctx); err != nil {
			return rep, fmt.Errorf("scenario %s: %w", name, err)
		}
		r.cpuShares(c0, name)
		r.logf("%s done in %v", name, time.Since(t0).Round(100*time.Millisecond))
	}
	rep.Finished = time.Now().UTC()
	r.cpuShares(cpu0, "")
	return rep, nil
}

// measure runs one closed-loop load, with a CPU profile when asked.
func (r *run) measure(ctx context.Context, name string, cfg load.Config, op load.Op) (load.Result, error) {
	if r.o.ProfileDir != "" {
		if err := os.MkdirAll(r.o.ProfileDir, 0o755); err != nil {
			return load.Result{}, err
		}
		f, err := os.Create(filepath.Join(r.o.ProfileDir, name+".pprof"))
		if err != nil {
			return load.Result{}, err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return load.Result{}, err
		}
		defer pprof.StopCPUProfile()
		// Where requests wait (the CPU profile only shows where they
		// run): every blocking event of 20 µs or more, shorter ones sampled.
		runtime.SetBlockProfileRate(int(20 * time.Microsecond))
		defer func() {
			runtime.SetBlockProfileRate(0)
			if bf, err := os.Create(filepath.Join(r.o.ProfileDir, name+".block.pprof")); err == nil {
				_ = pprof.Lookup("block").WriteTo(bf, 0)
				_ = bf.Close()
			}
		}()
	}
	res, err := load.Run(ctx, cfg, op)
	if err != nil {
		return res, err
	}
	if res.Requests == 0 {
		return res, errors.New("no operation was started in the measured period")
	}
	if res.Requests == res.Errors {
		return res, fmt.Errorf("every one of %d operations failed; first error: %s", res.Requests, res.FirstError)
	}
	r.logf("%s: %d ops, %d errors, %.0f/s, p50 %v, p99 %v, max %v", name, res.Requests, res.Errors, res.Throughput, res.P50, res.P99, res.Max)
	return res, nil
}

// loadConfig is the duration-bound closed loop of the options.
func (r *run) loadConfig() load.Config {
	return load.Config{Concurrency: r.o.Concurrency, Warmup: r.o.Warmup, Duration: r.o.Duration}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// addLatency adds the throughput, p50 and p99 rows of a load result.
func (r *run) addLatency(section, what, unit string, res load.Result, ratio, p99 *report.Target) {
	baseline := Floor + "/throughput"
	if section == Floor {
		baseline = ""
	}
	r.addLatencyAgainst(section, what, unit, baseline, res, ratio, p99)
}

// addLatencyAgainst is addLatency with the throughput's ratio taken to
// the row named baseline ("" for none).
func (r *run) addLatencyAgainst(section, what, unit, baseline string, res load.Result, ratio, p99 *report.Target) {
	note := fmt.Sprintf("%d ops, %d errors", res.Requests, res.Errors)
	if res.Errors > 0 {
		note += " (first: " + truncate(res.FirstError, 120) + ")"
	}
	r.rep.Add(report.Row{Section: section, Name: what, Value: res.Throughput, Unit: unit, Note: note, Target: ratio, Baseline: baseline})
	r.rep.Add(report.Row{Section: section, Name: "p50", Value: ms(res.P50), Unit: "ms"})
	r.rep.Add(report.Row{Section: section, Name: "p99", Value: ms(res.P99), Unit: "ms", Target: p99, Note: fmt.Sprintf("max %.1f ms", ms(res.Max))})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
