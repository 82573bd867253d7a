package observe_test

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe"
)

// repoRoot is two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "repository root not found from %s", root)
	return root
}

// emittedMetrics drives every EMF event and collects the metric names and
// units the lines declare, with their dimension sets.
func emittedMetrics(t *testing.T) (units map[string]string, dims map[string][]string) {
	t.Helper()
	var out bytes.Buffer
	e, err := observe.NewEMF(&out, "agentry-test")
	require.NoError(t, err)
	ctx := context.Background()
	e.MessageAccepted(ctx, "m", 1)
	e.MessageDelivered(ctx, "m", "bob@example.org", "webhook", 1)
	e.DeliveryRetried(ctx, "m", 1, "X")
	e.DeliveryFailed(ctx, "m", "bob@example.org", "X")
	e.DeadLettered(ctx, "m", "X")
	e.SenderUnverified(ctx, "unsigned")
	e.ColdStart("api")
	units, dims = map[string]string{}, map[string][]string{}
	for _, l := range parseLines(t, out.String()) {
		for _, d := range l.AWS.CloudWatchMetrics {
			for _, m := range d.Metrics {
				units[m.Name] = m.Unit
				dims[m.Name] = d.Dimensions[0]
			}
		}
	}
	return units, dims
}

var docRow = regexp.MustCompile("^\\|\\s*`([A-Za-z]+)`\\s*\\|\\s*([A-Za-z]+)\\s*\\|")

// docMetrics reads the table under "## Metrics" in docs/metrics.md: the
// contract the dashboard is built on.
func docMetrics(t *testing.T) (doc string, units map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "metrics.md"))
	require.NoError(t, err)
	doc = string(data)
	units = map[string]string{}
	in := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Metrics"
			continue
		}
		if m := docRow.FindStringSubmatch(line); in && m != nil {
			units[m[1]] = m[2]
		}
	}
	require.NotEmpty(t, units, "no metric table found in docs/metrics.md")
	return doc, units
}

// infraConsts reads the string constants of infra/observability.go (a
// main package, so parsed rather than imported).
func infraConsts(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot(t), "infra", "observability.go"), nil, 0)
	require.NoError(t, err)
	out := map[string]string{}
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					out[name.Name] = v
				}
			}
		}
	}
	return out
}

// TestMetricNamesMatchTheContract: what EMF emits is exactly what
// docs/metrics.md lists (names and units) and exactly what the CDK
// dashboard and alarms read, in the same namespace with the same
// dimensions.
func TestMetricNamesMatchTheContract(t *testing.T) {
	units, dims := emittedMetrics(t)
	doc, docUnits := docMetrics(t)
	infra := infraConsts(t)

	t.Run("docs/metrics.md", func(t *testing.T) {
		assert.Equal(t, docUnits, units, "metric names and units")
		assert.Contains(t, doc, "Namespace: `"+observe.Namespace+"`")
		assert.Contains(t, doc, "Dimension `"+observe.DimDeployment+"` on every metric")
		assert.Contains(t, doc, "`"+observe.MetricColdStart+"` additionally carries `"+observe.DimFunction+"`")
	})
	t.Run("infra/observability.go", func(t *testing.T) {
		infraMetrics := map[string]bool{}
		for name, v := range infra {
			if strings.HasPrefix(name, "Metric") && name != "MetricsNamespace" {
				infraMetrics[v] = true
			}
		}
		require.NotEmpty(t, infraMetrics, "no Metric* constants found in infra/observability.go")
		ours := map[string]bool{}
		for name := range units {
			ours[name] = true
		}
		assert.Equal(t, infraMetrics, ours, "metric names")
		assert.Equal(t, observe.Namespace, infra["MetricsNamespace"])
		assert.Equal(t, observe.DimDeployment, infra["DimDeployment"])
		assert.Equal(t, observe.DimFunction, infra["DimFunction"])
	})
	t.Run("dimensions", func(t *testing.T) {
		for name, d := range dims {
			want := []string{observe.DimDeployment}
			if name == observe.MetricColdStart {
				want = append(want, observe.DimFunction)
			}
			assert.Equal(t, want, d, name)
		}
	})
}
