package gateway_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxFuncLines bounds a function of the use cases: each reads in one
// sitting, and a longer one is split into named steps.
const maxFuncLines = 60

// parseProduct parses the package's non-test files.
func parseProduct(t *testing.T) (*token.FileSet, []*ast.File) {
	t.Helper()
	names, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := os.ReadFile(n)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, n, src, 0)
		require.NoError(t, err)
		files = append(files, f)
	}
	require.NotEmpty(t, files)
	return fset, files
}

// receiverName is the type name of a method's receiver, "" for a function.
func receiverName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	typ := fd.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func TestFunctionsAreShort(t *testing.T) {
	fset, files := parseProduct(t)
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			assert.LessOrEqualf(t, lines, maxFuncLines, "%s: %s is %d lines", fset.Position(fd.Pos()), fd.Name.Name, lines)
		}
	}
}

// TestServiceHoldsNoLogic: Service only composes the concern services;
// its own methods are the accessors of its configuration.
func TestServiceHoldsNoLogic(t *testing.T) {
	_, files := parseProduct(t)
	var own []string
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && receiverName(fd) == "Service" {
				own = append(own, fd.Name.Name)
			}
		}
	}
	assert.ElementsMatch(t, []string{"Config", "Domain"}, own)
}
