package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/kit/bench/floor"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// Every server the bench measures runs in a process of its own, started
// by the bench: the bench binary (or test binary) itself, re-executed to
// run nothing but that server. A server deployed for real does not share
// its Go runtime with its clients; sharing it would put the load
// generator's goroutines in the same run queue as the gateway's commit
// goroutine (which then waits for a processor after every fsync) and
// their garbage in the same collections. It also lets the memory scenario
// read the gateway's memory from /proc without the load generator's.
const childEnv = "AGENTRY_BENCH_CHILD"

// childProbeURLEnv is the base URL a prober child probes.
const childProbeURLEnv = "AGENTRY_BENCH_PROBE_URL"

// childProfileEnv names the file a child writes its CPU profile to.
const childProfileEnv = "AGENTRY_BENCH_CPUPROFILE"

// What a child runs.
const (
	childGateway = "gateway" // config.FromEnv, localgw.New, Serve: as `agentry serve`
	childFloor   = "floor"   // floor.Handler
	childProber  = "prober"  // GET <childProbeURLEnv>/healthz every 10 ms
)

// RunChildIfRequested turns this process into a server when the bench
// started it as one, and exits when that server stops; otherwise it
// returns at once. Call it first thing in main (and in TestMain).
//
// The child serves the listener passed as file descriptor 3 and reads
// commands on stdin, answering each with one JSON line on stdout:
//   - "ready": {} once serving (the floor; a gateway answers /readyz);
//   - "gc": collects garbage, returns freed memory to the OS, answers
//     runtime memory statistics (childStats);
//   - "commits": the store's group-commit and checkpoint counters (gateway);
//   - "records": the DNS TXT records that publish the gateway (gateway);
//   - "allocs": bytes allocated so far and, in a child started with
//     childGCLoopEnv, the peak live heap since the last "allocs"
//     (allocStats).
//
// End of stdin or "stop" stops it, as SIGTERM does.
func RunChildIfRequested() {
	kind := os.Getenv(childEnv)
	if kind == "" {
		return
	}
	if err := runChild(kind); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childStats is the child's answer to "gc".
type childStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
}

// allocStats is the child's answer to "allocs": what its heap has
// allocated in all, and the most its heap held live since the last
// "allocs" (see liveHeapPeak).
type allocStats struct {
	TotalAlloc uint64 `json:"total_alloc"`
	PeakLive   uint64 `json:"peak_live"`
}

// childGCLoopEnv, set to 1, makes a child collect garbage back to back, so
// that the live heap it reports is sampled every few milliseconds.
const childGCLoopEnv = "AGENTRY_BENCH_GC_LOOP"

// liveHeapPeak collects garbage continuously and keeps the largest live
// heap a collection found (runtime/metrics /gc/heap/live:bytes) since the
// last take: what the gateway holds, without the garbage a collector
// lets pile up between collections. It is a measuring device: it costs
// the child a core.
type liveHeapPeak struct {
	mu   sync.Mutex
	peak uint64
}

func (h *liveHeapPeak) run() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for {
		runtime.GC()
		metrics.Read(sample)
		v := sample[0].Value.Uint64()
		h.mu.Lock()
		h.peak = max(h.peak, v)
		h.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

func (h *liveHeapPeak) take() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peak
	h.peak = 0
	return p
}

// storeCommits reads the store's group-commit counters: a group is one
// log sync.
func storeCommits(db localgw.Store) commitStats {
	if db, ok := db.(*pebblestore.DB); ok {
		st := db.CommitStats()
		return commitStats{Commits: st.Syncs, Writes: st.Writes}
	}
	return commitStats{}
}

// commitStats is a gateway child's answer to "commits".
type commitStats struct {
	Commits int64 `json:"commits"`
	Writes  int64 `json:"writes"`
}

// txtRecord is one record of a gateway child's answer to "records".
type txtRecord struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

func runChild(kind string) error {
	if path := os.Getenv(childProfileEnv); path != "" {
		pf, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = pf.Close()
		}()
		// Where its goroutines wait, beside where they run.
		runtime.SetBlockProfileRate(int(20 * time.Microsecond))
		defer func() {
			if bf, err := os.Create(strings.TrimSuffix(path, ".pprof") + ".block.pprof"); err == nil {
				_ = pprof.Lookup("block").WriteTo(bf, 0)
				_ = bf.Close()
			}
		}()
	}
	f := os.NewFile(3, "listener")
	l, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("listener on fd 3: %w", err)
	}
	_ = f.Close()
	answers := map[string]func() (any, error){
		"ready": func() (any, error) { return struct{}{}, nil },
		"gc": func() (any, error) {
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return childStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}, nil
		},
	}
	peak := &liveHeapPeak{}
	if os.Getenv(childGCLoopEnv) == "1" {
		go peak.run()
	}
	answers["allocs"] = func() (any, error) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return allocStats{TotalAlloc: ms.TotalAlloc, PeakLive: peak.take()}, nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var serve func(context.Context) error
	switch kind {
	case childFloor:
		srv := floor.Serve(l, floor.Handler())
		serve = func(ctx context.Context) error {
			<-ctx.Done()
			return srv.Close()
		}
	case childProber:
		// A process of its own, so that its latencies are not the load
		// generator's scheduling delays.
		p := &prober{base: os.Getenv(childProbeURLEnv)}
		answers["probe"] = func() (any, error) { return p.take(), nil }
		serve = func(ctx context.Context) error {
			p.run(ctx)
			return nil
		}
	case childGateway:
		localgw.TuneGC() // as `agentry serve` does
		cfg, err := config.FromEnv(nil)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		localgw.LimitMemory(cfg.MaxInflightBytes)
		var level slog.Level
		_ = level.UnmarshalText([]byte(cfg.LogLevel))
		log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		g, err := localgw.New(cfg, localgw.Options{Listener: l, Logger: log})
		if err != nil {
			return err
		}
		answers["commits"] = func() (any, error) { return storeCommits(g.DB), nil }
		answers["records"] = func() (any, error) {
			s := g.Signer
			key, err := signature.PublicKeyTXT(s.Public())
			if err != nil {
				return nil, err
			}
			return []txtRecord{
				{Name: "_amtp." + cfg.Domain, Text: g.Service.TXTRecord()},
				{Name: s.Selector() + "._amtpkey." + s.Domain(), Text: key},
			}, nil
		}
		serve = g.Serve
	default:
		return fmt.Errorf("unknown child kind %q", kind)
	}
	go func() {
		defer stop() // the parent went away, or asked us to stop
		in := bufio.NewScanner(os.Stdin)
		out := json.NewEncoder(os.Stdout)
		for in.Scan() {
			cmd := strings.TrimSpace(in.Text())
			if cmd == "stop" {
				return
			}
			answer, ok := answers[cmd]
			if !ok {
				_ = out.Encode(map[string]string{"error": "unknown command " + cmd})
				continue
			}
			v, err := answer()
			if err != nil {
				v = map[string]string{"error": err.Error()}
			}
			_ = out.Encode(v)
		}
	}()
	return serve(ctx)
}

// child is a server in a child process (see RunChildIfRequested).
type child struct {
	cmd    *exec.Cmd
	url    string
	stdin  io.WriteCloser
	stdout *bufio.Reader
	// stdoutFile is the pipe under stdout, for read deadlines.
	stdoutFile *os.File
	// stderr is where the child's log went: the last of it, or the file.
	stderr fmt.Stringer
	done   chan error
}

// tail keeps the last bytes a child wrote, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-4<<10:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// logFile names the file a child logs to, for error messages.
type logFile string

func (f logFile) String() string { return "see " + string(f) }

// startChild re-executes this binary as a server of the given kind,
// configured by env (plus the listener it is handed), without any
// AGENTRY_* variable of ours. avoid is an address the child must not
// listen on (a dead webhook's). The child's stderr (its log) goes to log
// when given, which the child then writes directly, or else is kept in
// memory for error messages.
func startChild(kind string, env map[string]string, avoid string, log *os.File) (*child, error) {
	if os.Getenv(childEnv) != "" {
		return nil, errors.New("already a bench child: the binary does not call bench.RunChildIfRequested first")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if l.Addr().String() == avoid {
		// The kernel handed out the port just released; take another
		// while this one is still held.
		again, err := net.Listen("tcp", "127.0.0.1:0")
		_ = l.Close()
		if err != nil {
			return nil, err
		}
		l = again
	}
	lf, err := l.(*net.TCPListener).File()
	_ = l.Close() // the child gets the duplicate
	if err != nil {
		return nil, err
	}
	defer func() { _ = lf.Close() }()
	addr := l.Addr().String()
	c := &child{url: "http://" + addr, done: make(chan error, 1)}
	c.cmd = exec.Command(exe)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTRY_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	for k, v := range env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Env = append(c.cmd.Env, childEnv+"="+kind, "AGENTRY_ADDR="+addr, "AGENTRY_PUBLIC_URL="+c.url)
	c.cmd.ExtraFiles = []*os.File{lf}
	if log != nil {
		c.cmd.Stderr, c.stderr = log, logFile(log.Name())
	} else {
		t := &tail{}
		c.cmd.Stderr, c.stderr = t, t
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.stdoutFile, _ = out.(*os.File)
	c.stdout = bufio.NewReader(out)
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	pid := c.cmd.Process.Pid
	liveChildren.Store(pid, struct{}{})
	go func() {
		err := c.cmd.Wait()
		liveChildren.Delete(pid)
		c.done <- err
	}()
	if kind == childGateway {
		err = waitReady(c.url, 30*time.Second)
	} else {
		err = c.ask("ready", &struct{}{})
	}
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("%s child: %w; its stderr: %s", kind, err, c.stderr)
	}
	return c, nil
}

// ask sends the child a command and decodes its one-line answer into v.
func (c *child) ask(cmd string, v any) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return err
	}
	if c.stdoutFile != nil {
		_ = c.stdoutFile.SetReadDeadline(time.Now().Add(30 * time.Second))
	}
	line, err := c.stdout.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("child %q: %w; its stderr: %s", cmd, err, c.stderr)
	}
	var failed struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(line, &failed) == nil && failed.Error != "" {
		return fmt.Errorf("child %q: %s", cmd, failed.Error)
	}
	return json.Unmarshal(line, v)
}

// gc asks the child to collect garbage and return free memory to the OS.
func (c *child) gc() (childStats, error) {
	var st childStats
	err := c.ask("gc", &st)
	return st, err
}

// stop ends the child gracefully (SIGTERM), killing it after 45 s.
func (c *child) stop() error {
	if c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			return fmt.Errorf("child: %w; its stderr: %s", err, c.stderr)
		}
		return nil
	case <-time.After(45 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done //nolint:errcheck // killed on purpose: its exit status says nothing
		return errors.New("child did not stop within 45s; killed")
	}
}
