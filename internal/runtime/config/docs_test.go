package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryVariableIsDocumented: every AGENTRY_* variable the product reads
// is named in README.md, so that an operator can find it. Variables of the
// test and measuring tools (AGENTRY_TEST_*, AGENTRY_BENCH_*, AGENTRY_COVER_*)
// are not the operator's.
func TestEveryVariableIsDocumented(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	name := regexp.MustCompile(`"(AGENTRY_[A-Z0-9_]*[A-Z0-9])"`)
	internal := regexp.MustCompile(`^AGENTRY_(TEST|BENCH|COVER)_`)
	used := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "cdk.out", ".git", "testdata", "bench":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllStringSubmatch(string(src), -1) {
			if !internal.MatchString(m[1]) {
				used[m[1]] = path
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, used, "no AGENTRY_* variable found: is the walk rooted at the repository?")
	var missing []string
	for v, path := range used {
		if !strings.Contains(string(readme), v) {
			missing = append(missing, v+" (read in "+path+")")
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "AGENTRY_* variables read by the product but not in README.md")
}
