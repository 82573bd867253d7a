package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// module is the import path of this repository's module.
const module = "github.com/agentry/agentry"

// graph is the import graph go list reports: each package's direct
// (non-test) imports.
type graph map[string][]string

// listedPackage is the part of `go list -json` the rules read.
type listedPackage struct {
	ImportPath string
	Imports    []string
}

// loadGraph runs `go list -deps -json` over patterns in the module root,
// with extra build flags (the Lambda functions are built with
// -tags lambda.norpc, so their graph is read the same way).
func loadGraph(t *testing.T, flags []string, patterns ...string) graph {
	t.Helper()
	args := append(append([]string{"list", "-deps", "-json"}, flags...), patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	g, err := decodeGraph(bytes.NewReader(out))
	require.NoError(t, err)
	return g
}

// decodeGraph reads the stream of JSON objects go list -json prints.
func decodeGraph(r io.Reader) (graph, error) {
	g := graph{}
	dec := json.NewDecoder(r)
	for {
		var p listedPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return g, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		g[p.ImportPath] = p.Imports
	}
}

// repoRoot is the module root: two levels above this file's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok, "locate the test source")
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// ours lists the graph's packages of this module, sorted.
func (g graph) ours() []string {
	var pkgs []string
	for p := range g {
		if p == module || strings.HasPrefix(p, module+"/") {
			pkgs = append(pkgs, p)
		}
	}
	sort.Strings(pkgs)
	return pkgs
}

// chain is the shortest import chain from root to a package for which
// bad holds, or nil when root reaches none. Breadth first, so the chain
// named in a failure is the most direct one; neighbours in go list's
// (sorted) order, so it is the same one every run.
func (g graph) chain(root string, bad func(string) bool) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && bad(p) {
			return pathTo(parent, p)
		}
		for _, imp := range g[p] {
			if _, seen := parent[imp]; !seen {
				parent[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func pathTo(parent map[string]string, p string) []string {
	var rev []string
	for ; p != ""; p = parent[p] {
		rev = append(rev, p)
	}
	out := make([]string, len(rev))
	for i, p := range rev {
		out[len(rev)-1-i] = p
	}
	return out
}

// direct is the first of root's own imports for which bad holds, as a
// two-element chain, or nil.
func (g graph) direct(root string, bad func(string) bool) []string {
	for _, imp := range g[root] {
		if bad(imp) {
			return []string{root, imp}
		}
	}
	return nil
}

// short drops the module prefix so that chains read easily.
func short(chain []string) string {
	s := make([]string, len(chain))
	for i, p := range chain {
		s[i] = strings.TrimPrefix(p, module+"/")
	}
	return strings.Join(s, " → ")
}
