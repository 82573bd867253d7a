package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/localgw"
)

// childEnv marks a process started by the memory scenario: it is the
// bench binary (or test binary) itself, re-executed to run nothing but a
// gateway, so that the gateway's memory can be read from /proc without
// the load generator's in it, and without building ./cmd/agentry first.
const childEnv = "AGENTRY_BENCH_CHILD"

// RunChildIfRequested turns this process into a gateway when the memory
// scenario started it, and exits when that gateway stops; otherwise it
// returns at once. Call it first thing in main (and in TestMain).
//
// The child is composed as `agentry serve` composes a gateway
// (config.FromEnv, localgw.New, Serve), serving the listener passed as
// file descriptor 3. It reads commands on stdin: "gc" collects garbage,
// returns freed memory to the OS and answers one JSON line of runtime
// memory statistics on stdout. End of stdin stops it, as SIGTERM does.
func RunChildIfRequested() {
	if os.Getenv(childEnv) != "gateway" {
		return
	}
	if err := runChild(); err != nil {
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

func runChild() error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	f := os.NewFile(3, "listener")
	l, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("listener on fd 3: %w", err)
	}
	_ = f.Close()
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	g, err := localgw.New(cfg, localgw.Options{Listener: l, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		defer stop() // the parent went away, or asked us to stop
		in := bufio.NewScanner(os.Stdin)
		out := json.NewEncoder(os.Stdout)
		for in.Scan() {
			switch strings.TrimSpace(in.Text()) {
			case "gc":
				runtime.GC()
				debug.FreeOSMemory()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				_ = out.Encode(childStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()})
			case "stop":
				return
			}
		}
	}()
	return g.Serve(ctx)
}
