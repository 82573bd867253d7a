package bench

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCostTiny runs the cost scenario alone with a few messages: it proves
// that the scenario drives the AWS adapters end to end against moto,
// counts their calls and reports every row with a sensible value. The
// figures themselves are the scenario's business, not this test's.
func TestCostTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto and runs the gateway against it")
	}
	defer func(n int) { costMessages = n }(costMessages)
	costMessages = 3
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Scenarios: []string{Cost}, Progress: testLog{t}, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())

	perFlow := []string{"AWS calls/msg", "DynamoDB WRU/msg", "DynamoDB RRU/msg", "$/M msgs", "api ms/invocation"}
	sent := []string{"SQS sends/msg", "$/M API Gateway", "$/M Lambda", "$/M SQS", "$/M DynamoDB", "$/M CloudWatch Logs"}
	var want []string
	for _, flow := range []string{"push", "pull", "pull read"} {
		names := perFlow
		if flow != "pull read" {
			names = append(append([]string{}, perFlow...), sent...)
		}
		for _, name := range names {
			want = append(want, "cost/"+flow+" "+name)
		}
	}
	want = append(want, "cost/push deliver ms/invocation")
	// Nothing is queued for a pull recipient: its inbox is written with
	// the message.
	mayBeZero := map[string]bool{"cost/pull SQS sends/msg": true, "cost/pull $/M SQS": true}
	for _, key := range want {
		row := rep.Find(key)
		if row == nil {
			t.Errorf("no row %s", key)
			continue
		}
		if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) || row.Value < 0 || (row.Value == 0 && !mayBeZero[key]) {
			t.Errorf("%s = %v %s", key, row.Value, row.Unit)
		}
		if row.Target != nil && row.Pass == nil {
			t.Errorf("%s has a target but no verdict", key)
		}
	}
	for _, flow := range []string{"push", "pull"} {
		for _, name := range []string{"DynamoDB WRU/msg", "SQS sends/msg", "$/M msgs"} {
			if row := rep.Find("cost/" + flow + " " + name); row != nil && row.Target == nil {
				t.Errorf("cost/%s %s has no target", flow, name)
			}
		}
		// The totals are the sums of the services (the target's without
		// the logs).
		total, withLogs := rep.Find("cost/"+flow+" $/M msgs"), rep.Find("cost/"+flow+" $/M msgs with logs")
		sum := 0.0
		for _, svc := range []string{"API Gateway", "Lambda", "SQS", "DynamoDB", "S3"} {
			if row := rep.Find("cost/" + flow + " $/M " + svc); row != nil {
				sum += row.Value
			}
		}
		logs := rep.Find("cost/" + flow + " $/M CloudWatch Logs")
		if total == nil || withLogs == nil || logs == nil {
			t.Fatalf("%s: total, total with logs or logs row missing", flow)
		}
		if math.Abs(total.Value-sum) > 1e-9 || math.Abs(withLogs.Value-sum-logs.Value) > 1e-9 {
			t.Errorf("%s: total %v and %v with logs, services sum to %v + logs %v", flow, total.Value, withLogs.Value, sum, logs.Value)
		}
	}
	// Every call a message makes goes through DynamoDB at least once, and
	// the push message's queued copy through SQS.
	if row := rep.Find("cost/push AWS calls/msg"); row != nil && (!strings.Contains(row.Note, "dynamodb:") || !strings.Contains(row.Note, "sqs:")) {
		t.Errorf("push calls: %s", row.Note)
	}
	if row := rep.Find("cost/push SQS sends/msg"); row != nil && row.Value == 0 {
		t.Error("the push message queued nothing (the Immediate Path holds back a copy)")
	}
	if len(rep.Rows) < len(want) {
		t.Errorf("%d rows, want at least %d", len(rep.Rows), len(want))
	}
	if err := rep.WriteJSON(filepath.Join(t.TempDir(), "results.json")); err != nil {
		t.Fatal(err)
	}
}
