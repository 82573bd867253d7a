// Package report holds benchmark figures as rows — a value with its unit,
// optionally a ratio to a baseline row measured in the same run, and
// optionally a target the value (or the ratio) must meet — and renders them
// as a table for people and as JSON for tools.
//
// Sections are free-form ("floor", "accept", "lambda", "cost", …): whoever
// measures something adds rows under its own section name.
package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Target is the bound a row must meet.
type Target struct {
	Op    string  `json:"op"` // ">=" or "<="
	Limit float64 `json:"limit"`
	// OnRatio applies the limit to the row's Ratio instead of its Value.
	OnRatio bool `json:"on_ratio,omitempty"`
}

// AtLeast is value ≥ v.
func AtLeast(v float64) *Target { return &Target{Op: ">=", Limit: v} }

// AtMost is value ≤ v.
func AtMost(v float64) *Target { return &Target{Op: "<=", Limit: v} }

// RatioAtLeast is ratio ≥ v.
func RatioAtLeast(v float64) *Target { return &Target{Op: ">=", Limit: v, OnRatio: true} }

// RatioAtMost is ratio ≤ v.
func RatioAtMost(v float64) *Target { return &Target{Op: "<=", Limit: v, OnRatio: true} }

func (t *Target) met(v float64) bool {
	switch t.Op {
	case ">=":
		return v >= t.Limit
	case "<=":
		return v <= t.Limit
	}
	return false
}

// Row is one figure.
type Row struct {
	Section string  `json:"section"`
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	// Baseline is the Key ("section/name") of an earlier row; Ratio is
	// Value divided by that row's value.
	Baseline string   `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   *Target  `json:"target,omitempty"`
	// Pass is set when there is a target.
	Pass *bool  `json:"pass,omitempty"`
	Note string `json:"note,omitempty"`
}

// Key names the row for Baseline references: "section/name".
func (r Row) Key() string { return r.Section + "/" + r.Name }

// Machine describes where the figures were measured.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	CPUModel   string `json:"cpu_model,omitempty"`
	MemTotalMB int64  `json:"mem_total_mb,omitempty"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute load averages when
	// the report was started: on a shared machine, a hint of how noisy
	// the figures are.
	LoadAvg string `json:"load_avg,omitempty"`
}

// ThisMachine describes the running machine (CPU model and memory from
// /proc where there is one).
func ThisMachine() Machine {
	m := Machine{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name", ":")
	if v := procField("/proc/meminfo", "MemTotal", ":"); v != "" {
		var kb int64
		if _, err := fmt.Sscanf(v, "%d", &kb); err == nil {
			m.MemTotalMB = kb / 1024
		}
	}
	m.LoadAvg = LoadAvg()
	return m
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg,
// or "" where there is none.
func LoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first line "name<sep>value" of a
// /proc file, or "".
func procField(path, name, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Report is a run's figures.
type Report struct {
	Machine  Machine           `json:"machine"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Settings map[string]string `json:"settings,omitempty"`
	Notes    []string          `json:"notes,omitempty"`
	Rows     []Row             `json:"rows"`
}

// New starts a report on this machine, now.
func New() *Report {
	return &Report{Machine: ThisMachine(), Started: time.Now().UTC(), Settings: map[string]string{}, Rows: []Row{}}
}

// Add appends a row, computing its Ratio from its Baseline and its Pass
// from its Target, and returns the row as stored. A value that is not a
// finite number is stored as 0 with a note (JSON has no NaN); a missing
// baseline leaves Ratio unset, and a target on that ratio is then missed.
func (r *Report) Add(row Row) Row {
	if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) {
		row.Note = join(row.Note, fmt.Sprintf("not a number (%v)", row.Value))
		row.Value = 0
	}
	row.Ratio, row.Pass = nil, nil
	if row.Baseline != "" {
		base := r.Find(row.Baseline)
		switch {
		case base == nil:
			row.Note = join(row.Note, "baseline "+row.Baseline+" was not measured")
		case base.Value == 0:
			row.Note = join(row.Note, "baseline "+row.Baseline+" is zero")
		default:
			ratio := row.Value / base.Value
			row.Ratio = &ratio
		}
	}
	if row.Target != nil {
		pass := false
		switch {
		case row.Target.OnRatio && row.Ratio != nil:
			pass = row.Target.met(*row.Ratio)
		case !row.Target.OnRatio:
			pass = row.Target.met(row.Value)
		}
		row.Pass = &pass
	}
	r.Rows = append(r.Rows, row)
	return row
}

// Note adds a line printed under the table.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Find returns the row with this Key, or nil.
func (r *Report) Find(key string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Key() == key {
			return &r.Rows[i]
		}
	}
	return nil
}

// Misses returns the rows whose target was missed.
func (r *Report) Misses() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Pass != nil && !*row.Pass {
			out = append(out, row)
		}
	}
	return out
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "%s %s/%s, %d CPU (GOMAXPROCS %d)", m.GoVersion, m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS)
	if m.CPUModel != "" {
		fmt.Fprintf(w, ", %s", m.CPUModel)
	}
	if m.MemTotalMB > 0 {
		fmt.Fprintf(w, ", %d MB", m.MemTotalMB)
	}
	if m.LoadAvg != "" {
		fmt.Fprintf(w, ", load %s", m.LoadAvg)
	}
	fmt.Fprintf(w, ", %s\n\n", r.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tFIGURE\tVALUE\tVS\tRATIO\tTARGET\tRESULT\tNOTE")
	targets, passed := 0, 0
	for _, row := range r.Rows {
		ratio := ""
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.3f", *row.Ratio)
		}
		target, result := "", ""
		if row.Target != nil {
			target = row.Target.describe(row.Unit)
			targets++
			result = "MISS"
			if *row.Pass {
				result = "PASS"
				passed++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Section, row.Name, FormatValue(row.Value, row.Unit), row.Baseline, ratio, target, result, row.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d targets: %d pass, %d miss\n", targets, passed, targets-passed)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func (t *Target) describe(unit string) string {
	op := map[string]string{">=": "≥", "<=": "≤"}[t.Op]
	if op == "" {
		op = t.Op
	}
	if t.OnRatio {
		return fmt.Sprintf("ratio %s %s", op, formatNumber(t.Limit))
	}
	return fmt.Sprintf("%s %s", op, FormatValue(t.Limit, unit))
}

// FormatValue renders a value with its unit, to about three significant
// digits.
func FormatValue(v float64, unit string) string {
	s := formatNumber(v)
	if unit == "" {
		return s
	}
	return s + " " + unit
}

func formatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100 || a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// WriteJSON writes the report as indented JSON to path, creating its
// directory; Finished is set to now if it is still zero.
func (r *Report) WriteJSON(path string) error {
	if r.Finished.IsZero() {
		r.Finished = time.Now().UTC()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep ">=" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
