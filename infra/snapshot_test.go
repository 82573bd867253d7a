package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// SnapshotPath is the dev stack's synthesized template, committed so that
// tests elsewhere (internal/kit/awstest via internal/kit/cfntemplate) create the
// real definitions in moto without paying for a CDK synth.
const SnapshotPath = "testdata/agentry-dev.template.json"

var update = flag.Bool("update", false, "rewrite "+SnapshotPath+" from the stack (make snapshot)")

// assetHash matches the content hashes of Lambda code assets: they follow
// the bytes of whatever bootstrap files were synthesized, which is not
// what the snapshot is about.
var assetHash = regexp.MustCompile(`[0-9a-f]{64}`)

func normalize(b []byte) []byte {
	return assetHash.ReplaceAll(b, []byte("<asset-hash>"))
}

func TestSnapshotUpToDate(t *testing.T) {
	dev, _ := stacks(t)
	fresh, err := json.MarshalIndent(dev.json, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fresh = append(fresh, '\n')
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(SnapshotPath, fresh, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", SnapshotPath)
		return
	}
	old, err := os.ReadFile(SnapshotPath)
	if err != nil {
		t.Fatalf("%v\nCreate it with: make snapshot", err)
	}
	a, b := normalize(old), normalize(fresh)
	if bytes.Equal(a, b) {
		return
	}
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	line := 0
	for line < len(al) && line < len(bl) && al[line] == bl[line] {
		line++
	}
	show := func(l []string) string {
		end := min(line+3, len(l))
		return strings.Join(l[line:end], "\n")
	}
	t.Fatalf("%s is out of date with the stack (first difference at line %d):\n--- snapshot\n%s\n+++ stack\n%s\n"+
		"Refresh it with: make snapshot   (go test ./infra -run TestSnapshotUpToDate -args -update)",
		SnapshotPath, line+1, show(al), show(bl))
}

// TestMetricsDocumented: docs/metrics.md is the contract the functions
// emit against; it must name every metric the dashboard and alarms read.
func TestMetricsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range append([]string{"`" + MetricsNamespace + "`", "`" + DimDeployment + "`", "`" + DimFunction + "`"}, AllMetrics...) {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/metrics.md does not mention %s", want)
		}
	}
}
