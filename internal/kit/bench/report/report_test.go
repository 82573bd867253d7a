package report

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRatiosTargetsTableAndJSON(t *testing.T) {
	r := New()
	r.Add(Row{Section: "floor", Name: "throughput", Value: 20000, Unit: "req/s"})
	acc := r.Add(Row{Section: "accept", Name: "throughput", Value: 12000, Unit: "req/s", Baseline: "floor/throughput", Target: RatioAtLeast(0.5)})
	p99 := r.Add(Row{Section: "accept", Name: "p99", Value: 12.5, Unit: "ms", Target: AtMost(10)})
	info := r.Add(Row{Section: "memory", Name: "heap", Value: 1.5, Unit: "MB"})
	orphan := r.Add(Row{Section: "lambda", Name: "cold start", Value: 120, Unit: "ms", Baseline: "lambda/none", Target: RatioAtMost(2)})
	nan := r.Add(Row{Section: "x", Name: "nan", Value: math.NaN()})

	if acc.Ratio == nil || *acc.Ratio != 0.6 || acc.Pass == nil || !*acc.Pass {
		t.Errorf("accept row: %+v", acc)
	}
	if p99.Pass == nil || *p99.Pass {
		t.Errorf("p99 12.5 must miss ≤ 10: %+v", p99)
	}
	if info.Pass != nil || info.Ratio != nil {
		t.Errorf("info row has no ratio or verdict: %+v", info)
	}
	if orphan.Ratio != nil || orphan.Pass == nil || *orphan.Pass || !strings.Contains(orphan.Note, "not measured") {
		t.Errorf("row with a missing baseline: %+v", orphan)
	}
	if nan.Value != 0 || nan.Note == "" {
		t.Errorf("NaN row: %+v", nan)
	}
	if got := len(r.Misses()); got != 2 {
		t.Errorf("%d misses, want 2", got)
	}
	r.Note("data dir on %s", "ext4")

	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"SECTION", "12000 req/s", "floor/throughput", "0.600", "ratio ≥ 0.50", "PASS", "≤ 10 ms", "MISS", "3 targets: 1 pass, 2 miss", "note: data dir on ext4"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	path := filepath.Join(t.TempDir(), "sub", "results.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Machine.NumCPU <= 0 || back.Machine.GoVersion == "" || back.Machine.GOOS == "" || back.Finished.IsZero() || back.Started.IsZero() {
		t.Errorf("machine and times: %+v", back)
	}
	if len(back.Rows) != 6 || back.Rows[1].Ratio == nil || *back.Rows[1].Ratio != 0.6 || back.Rows[1].Target.Op != ">=" || !back.Rows[1].Target.OnRatio {
		t.Errorf("rows: %+v", back.Rows)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{12345.6: "12346 ms", 42.25: "42.2 ms", 1.234: "1.23 ms", 3: "3 ms", 0: "0 ms"} {
		if got := FormatValue(v, "ms"); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}
