package bench

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/runtime/localgw"
)

// The memory scenario re-executes this test binary as a gateway.
func TestMain(m *testing.M) {
	RunChildIfRequested()
	os.Exit(m.Run())
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestEveryScenarioTiny runs the whole tool with tiny durations: it proves
// that every scenario starts what it needs, measures, and reports every
// row. The figures themselves mean nothing at this size.
func TestEveryScenarioTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts seven gateways")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		// lambda and cost have tests of their own (they build binaries
		// and start moto).
		Scenarios: []string{Floor, Accept, Push, Federation, Flood, Memory},
		Warmup:    100 * time.Millisecond, Duration: 300 * time.Millisecond, Concurrency: 4,
		MemoryMessages: 200, Progress: testLog{t}, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"floor/throughput", "floor/p50", "floor/p99",
		"accept/throughput", "accept/p50", "accept/p99",
		"push/delivered", "push/p50", "push/p99",
		"federation-floor/delivered", "federation-floor/p50", "federation-floor/p99",
		"federation/delivered", "federation/p50", "federation/p99",
		"federation-2rcpt/delivered to both", "federation-2rcpt/p50", "federation-2rcpt/p99",
		"flood/peak rss", "flood/healthz idle p99", "flood/healthz p50", "flood/healthz p99", "flood/anonymous posts",
		"flood/large message live heap", "flood/large message allocated",
		"memory/rss per 10k queued", "memory/rss over the first batch", "memory/rss per 10k, no forced GC", "memory/anon rss per 10k",
		"memory/file rss per 10k", "memory/go heap per 10k", "memory/store per message", "memory/store beyond payload",
		"memory/store fixed-size files",
	}
	// Growth of the heap and of anonymous memory over 200 messages is
	// within the noise of the runtime (it can be zero or negative), and
	// so is file-backed memory (Pebble reads with pread: what is mapped
	// is the binary), so those diagnostics are only required to be there.
	noisy := map[string]bool{
		"memory/rss per 10k, no forced GC": true, "memory/anon rss per 10k": true, "memory/go heap per 10k": true,
		"memory/rss over the first batch": true, "memory/file rss per 10k": true,
	}
	for _, key := range want {
		row := rep.Find(key)
		if row == nil {
			t.Errorf("no row %s", key)
			continue
		}
		if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) || (!noisy[key] && row.Value <= 0) {
			t.Errorf("%s = %v %s", key, row.Value, row.Unit)
		}
		if row.Target != nil && row.Pass == nil {
			t.Errorf("%s has a target but no verdict", key)
		}
		if row.Baseline != "" && (row.Ratio == nil || *row.Ratio <= 0) {
			t.Errorf("%s has no ratio to %s", key, row.Baseline)
		}
	}
	if len(rep.Rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rep.Rows), len(want))
	}
	for _, key := range []string{"accept/throughput", "accept/p99", "push/delivered", "push/p99", "federation/delivered", "federation/p99", "memory/rss per 10k queued", "memory/store beyond payload", "flood/peak rss", "flood/healthz p99", "flood/large message live heap"} {
		if row := rep.Find(key); row != nil && row.Target == nil {
			t.Errorf("%s has no target", key)
		}
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	path := filepath.Join(t.TempDir(), "results.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryMeasuresTheStore: the memory scenario measures the store's
// tables and its fixed-size files.
func TestMemoryMeasuresTheStore(t *testing.T) {
	rep, err := Run(t.Context(), Options{Scenarios: []string{Memory}, MemoryMessages: 200, Concurrency: 4,
		Progress: testLog{t}, WorkDir: t.TempDir()})
	require.NoError(t, err)
	for _, key := range []string{"memory/store per message", "memory/store fixed-size files"} {
		row := rep.Find(key)
		require.NotNil(t, row, key)
		assert.Positive(t, row.Value, key)
	}
	assert.Contains(t, rep.Find("memory/store per message").Note, localgw.EnginePebble+" engine")
}

func TestOnlyAddsTheFloorWhenARatioNeedsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway")
	}
	rep, err := Run(context.Background(), Options{
		Scenarios: []string{Accept}, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Concurrency: 2, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Find("floor/throughput") == nil || rep.Find("accept/throughput").Ratio == nil || rep.Find("push/delivered") != nil {
		t.Errorf("rows: %+v", rep.Rows)
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := ParseScenarios(" accept, Memory ,")
	if err != nil || strings.Join(got, ",") != "accept,memory" {
		t.Errorf("%v %v", got, err)
	}
	if got, err := ParseScenarios(""); err != nil || got != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	if _, err := ParseScenarios("accept,nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
	if _, err := Run(context.Background(), Options{Scenarios: []string{"nope"}}); err == nil {
		t.Error("Run accepted an unknown scenario")
	}
}

func TestReadCPUCountsThisProcess(t *testing.T) {
	a, err := readCPU()
	if err != nil {
		// The bench's CPU shares come from /proc; a machine that runs
		// make test has it (Linux), so its absence is a failure, not a skip.
		t.Fatal("reading /proc:", err)
	}
	// Burn a little CPU so that this process's share moves.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	b, err := readCPU()
	if err != nil {
		t.Fatal(err)
	}
	if b.total <= a.total || b.busy < a.busy || b.self <= a.self || b.steal < a.steal {
		t.Errorf("before %+v after %+v", a, b)
	}
}
