// Command agentry-bench measures the gateway (`make bench`): the
// scenarios of internal/kit/bench, a table on stdout, the figures as JSON.
// Missing a target is a result, not a failure: the exit status is 0 unless
// the run itself failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentry/agentry/internal/kit/bench"
)

func main() {
	// The memory scenario re-executes this binary as a gateway.
	bench.RunChildIfRequested()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentry-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench/results.json", "write the report as JSON to this `path`")
	duration := fs.Duration("duration", 10*time.Second, "measured time of each load scenario")
	warmup := fs.Duration("warmup", 2*time.Second, "uncounted warm-up before each load scenario")
	concurrency := fs.Int("concurrency", 32, "closed-loop connections")
	only := fs.String("only", "", "comma-separated `scenarios` to run ("+strings.Join(bench.All, ",")+"); default all")
	messages := fs.Int("messages", 10000, "messages the memory scenario queues")
	payload := fs.Int("payload", 512, "payload `bytes` of each message")
	workdir := fs.String("workdir", "", "`dir` for the temporary data directories (default the system temp dir)")
	profiles := fs.String("pprof", "", "write a CPU profile of each load scenario into `dir`")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agentry-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	scenarios, err := bench.ParseScenarios(*only)
	if err != nil {
		fmt.Fprintln(stderr, "agentry-bench:", err)
		return 2
	}
	o := bench.Options{
		Scenarios: scenarios, Duration: *duration, Warmup: *warmup, Concurrency: *concurrency,
		MemoryMessages: *messages, PayloadBytes: *payload, WorkDir: *workdir, ProfileDir: *profiles,
	}
	if !*quiet {
		o.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, runErr := bench.Run(ctx, o)
	if rep != nil && len(rep.Rows) > 0 {
		if err := rep.WriteTable(stdout); err != nil {
			fmt.Fprintln(stderr, "agentry-bench:", err)
			return 1
		}
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "agentry-bench:", runErr)
		return 1
	}
	if *out != "" {
		if err := rep.WriteJSON(*out); err != nil {
			fmt.Fprintln(stderr, "agentry-bench:", err)
			return 1
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", *out)
	}
	return 0
}
