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

	"github.com/agentry/agentry/internal/kit/awstest"
)

// TestLambdaScenarioTiny runs the lambda scenario alone with two inits per
// function and a few invocations: it builds the functions, starts them
// against moto and reports every row. The figures mean nothing at this
// size.
func TestLambdaScenarioTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the functions twice and starts moto")
	}
	inits, invocations := lambdaInitRuns, lambdaInvocations
	lambdaInitRuns, lambdaInvocations = 2, 5
	defer func() { lambdaInitRuns, lambdaInvocations = inits, invocations }()

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Scenarios: []string{Lambda}, Progress: testLog{t}, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, fn := range lambdaFunctions {
		want = append(want, "lambda/"+fn+" size", "lambda/"+fn+" init")
	}
	want = append(want, "lambda/api first POST",
		"lambda/api POST /v1/messages p50", "lambda/api POST /v1/messages p99",
		"lambda/api POST /v1/messages own p50", "lambda/api POST /v1/messages own p99",
		"lambda/api GET /.well-known/amtp p50", "lambda/api GET /.well-known/amtp p99")
	for _, key := range want {
		row := rep.Find(key)
		if row == nil {
			t.Errorf("no row %s", key)
			continue
		}
		if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) || row.Value <= 0 {
			t.Errorf("%s = %v %s", key, row.Value, row.Unit)
		}
		if row.Target != nil && row.Pass == nil {
			t.Errorf("%s has a target but no verdict", key)
		}
		if strings.HasSuffix(key, " size") || strings.HasSuffix(key, " init") {
			if row.Target == nil {
				t.Errorf("%s has no target", key)
			}
		}
		if strings.HasSuffix(key, " p50") && strings.Contains(row.Note, "errors (first") {
			t.Errorf("%s: %s", key, row.Note)
		}
	}
	if len(rep.Rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rep.Rows), len(want))
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
}

// The sizes are only worth reporting if they are of what `make lambdas`
// deploys.
func TestLambdaBuildFlagsAreTheMakefiles(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(awstest.RepoRoot(), "mk", "infra.mk"))
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for i := 0; i < len(lambdaBuildFlags); i++ {
		f := lambdaBuildFlags[i]
		if f == "-ldflags" && i+1 < len(lambdaBuildFlags) {
			i++
			f += ` "` + lambdaBuildFlags[i] + `"`
		}
		flags = append(flags, f)
	}
	line := "GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build " + strings.Join(flags, " ")
	if !bytes.Contains(mk, []byte(line)) {
		t.Errorf("mk/infra.mk's lambdas target does not build with %q: keep lambdaBuildFlags in step with it", line)
	}
	if !bytes.Contains(mk, []byte("LAMBDAS    := "+strings.Join(lambdaFunctions, " "))) {
		t.Errorf("mk/infra.mk's LAMBDAS is not %v", lambdaFunctions)
	}
}
