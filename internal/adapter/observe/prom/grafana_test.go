package prom_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// grafanaPanel is what the test reads of a panel of docs/grafana-local.json.
type grafanaPanel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

var (
	// What a PromQL expression holds besides metric names: strings,
	// numbers and durations, range selectors, and the label lists of
	// by/without.
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promNumber   = regexp.MustCompile(`\b\d[\d.]*(?:ms|[smhdwy])*\b`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// metricsOf returns the metric names expr reads, and the label names its
// selectors match on, by metric.
func metricsOf(expr string) map[string][]string {
	expr = promGrouping.ReplaceAllString(expr, " ")
	out := map[string][]string{}
	for _, m := range promSelector.FindAllStringSubmatch(expr, -1) {
		for _, l := range promMatcher.FindAllStringSubmatch(promString.ReplaceAllString(m[2], `""`), -1) {
			out[m[1]] = append(out[m[1]], l[1])
		}
	}
	expr = promSelector.ReplaceAllString(expr, "$1")
	expr = promRange.ReplaceAllString(promString.ReplaceAllString(expr, " "), " ")
	expr = promNumber.ReplaceAllString(expr, " ")
	for _, m := range promIdent.FindAllStringSubmatch(expr, -1) {
		name := strings.TrimSpace(m[0])
		if m[1] != "" || promKeywords[strings.ToLower(name)] {
			continue // a function call, or an operator
		}
		if _, ok := out[name]; !ok {
			out[name] = nil
		}
	}
	return out
}

// familyOf maps a series name to its family: a histogram's _bucket, _sum
// and _count are series of the histogram.
func familyOf(fams map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, bool) {
	if f, ok := fams[name]; ok {
		return f, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := fams[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) &&
			(f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
			return f, true
		}
	}
	return nil, false
}

func labelNames(f *dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			names[l.GetName()] = true
		}
	}
	return names
}

func TestMetricsOfPromQL(t *testing.T) {
	got := metricsOf(`histogram_quantile(0.99, sum by (le, via) (rate(agentry_delivery_latency_seconds_bucket{via!="inbox", code=~"4.."}[$__rate_interval]))) / on (x) go_goroutines offset 5m and bool process_open_fds`)
	assert.Equal(t, map[string][]string{
		"agentry_delivery_latency_seconds_bucket": {"via", "code"}, "go_goroutines": nil, "process_open_fds": nil,
	}, got)
}

// TestGrafanaDashboardUsesRegisteredMetrics: every query of
// docs/grafana-local.json reads metrics the local gateway registers, by
// labels they have, from the dashboard's Prometheus data source; and the
// dashboard shows every agentry_* metric somewhere.
func TestGrafanaDashboardUsesRegisteredMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "grafana-local.json"))
	require.NoError(t, err)
	var dash struct {
		UID    string         `json:"uid"`
		Title  string         `json:"title"`
		Panels []grafanaPanel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.UID)
	fams := scrape(t, allEvents(t).Handler())

	shown := map[string]bool{}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "text" {
			continue
		}
		require.NotNil(t, p.Datasource, "panel %q has no data source", p.Title)
		assert.Equal(t, "prometheus", p.Datasource.Type, p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, target := range p.Targets {
			queries++
			used := metricsOf(target.Expr)
			require.NotEmpty(t, used, "panel %q: %q reads no metric", p.Title, target.Expr)
			for name, labels := range used {
				f, ok := familyOf(fams, name)
				if !assert.True(t, ok, "panel %q reads %s, which is not registered", p.Title, name) {
					continue
				}
				shown[f.GetName()] = true
				have := labelNames(f)
				for _, l := range labels {
					assert.True(t, have[l], "panel %q matches %s on label %q, which it does not have", p.Title, name, l)
				}
			}
		}
	}
	assert.Greater(t, queries, 10)
	for name := range docPromMetrics(t) {
		assert.True(t, shown[name], "%s is on no panel", name)
	}
}
