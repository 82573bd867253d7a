package archtest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChain: the checker names the shortest offending chain, or none.
func TestChain(t *testing.T) {
	g, err := decodeGraph(strings.NewReader(`
		{"ImportPath": "a", "Imports": ["b", "c"]}
		{"ImportPath": "b", "Imports": ["d"]}
		{"ImportPath": "c", "Imports": ["x"]}
		{"ImportPath": "d", "Imports": ["x"]}
		{"ImportPath": "x"}`))
	require.NoError(t, err)
	isX := func(p string) bool { return p == "x" }
	tests := []struct {
		name   string
		root   string
		direct bool
		want   []string
	}{
		{name: "shortest of two chains", root: "a", want: []string{"a", "c", "x"}},
		{name: "longer chain when it is the only one", root: "b", want: []string{"b", "d", "x"}},
		{name: "the root itself is not an offence", root: "x", want: nil},
		{name: "direct import", root: "c", direct: true, want: []string{"c", "x"}},
		{name: "direct ignores indirect", root: "a", direct: true, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			find := g.chain
			if tc.direct {
				find = g.direct
			}
			assert.Equal(t, tc.want, find(tc.root, isX))
		})
	}
}

// TestViolationsMessage: a failure reads as the module-relative chain.
func TestViolationsMessage(t *testing.T) {
	g := graph{
		ourPath("internal/core/amtp"):      {ourPath("internal/adapter/dynamo")},
		ourPath("internal/adapter/dynamo"): {"github.com/aws/aws-sdk-go-v2/aws"},
		"github.com/aws/aws-sdk-go-v2/aws": nil,
	}
	got := g.violations(houseRules[0])
	assert.Equal(t, []string{"internal/core/amtp → internal/adapter/dynamo"}, got)
}
