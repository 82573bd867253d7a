package amtp

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// declaredCodes reads the package source and returns every exported
// constant declared with type Code, so a code added later without a status
// makes the test below fail instead of silently answering 500.
func declaredCodes(t *testing.T) map[string]Code {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	out := map[string]Code{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, name, src, 0)
		require.NoError(t, err, name)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				typ, ok := vs.Type.(*ast.Ident)
				if !ok || typ.Name != "Code" {
					continue
				}
				for i, id := range vs.Names {
					if !id.IsExported() {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					require.True(t, ok, "%s is not a string literal", id.Name)
					v, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					out[id.Name] = Code(v)
				}
			}
		}
	}
	return out
}

// TestCodesListsEveryCode: Codes is what the HTTP handler maps to
// statuses, so a declared code missing from it would answer 500.
func TestCodesListsEveryCode(t *testing.T) {
	declared := declaredCodes(t)
	// the draft's 13 and its 5 sender verification codes (§13.1.4), plus
	// the 7 of shared/PROTOCOL.md
	require.Len(t, declared, 25)
	want := make([]Code, 0, len(declared))
	for name, c := range declared {
		want = append(want, c)
		assert.True(t, c.Known(), "%s (%s) is missing from codes", name, c)
		assert.Equal(t, strings.ToUpper(string(c)), string(c), "codes are upper-case")
	}
	assert.ElementsMatch(t, want, Codes(), "codes lists exactly the declared codes, once each")
}

func TestCodeStrings(t *testing.T) {
	// These strings go on the wire; other gateways match on them.
	want := map[Code]string{
		CodeInvalidMessageFormat:    "INVALID_MESSAGE_FORMAT",
		CodeUnsupportedVersion:      "UNSUPPORTED_VERSION",
		CodeSchemaValidationFailed:  "SCHEMA_VALIDATION_FAILED",
		CodeMessageTooLarge:         "MESSAGE_TOO_LARGE",
		CodeInvalidRecipient:        "INVALID_RECIPIENT",
		CodeRecipientUnavailable:    "RECIPIENT_UNAVAILABLE",
		CodeRecipientNotFound:       "RECIPIENT_NOT_FOUND",
		CodeAuthenticationFailed:    "AUTHENTICATION_FAILED",
		CodeRateLimitExceeded:       "RATE_LIMIT_EXCEEDED",
		CodeTemporaryFailure:        "TEMPORARY_FAILURE",
		CodeWorkflowTimeout:         "WORKFLOW_TIMEOUT",
		CodeRequiredResponseMissing: "REQUIRED_RESPONSE_MISSING",
		CodeCoordinationFailed:      "COORDINATION_FAILED",
		CodeAgentUnknown:            "AGENT_UNKNOWN",
		CodeIdempotencyConflict:     "IDEMPOTENCY_CONFLICT",
		CodeAuthenticationRequired:  "AUTHENTICATION_REQUIRED",
		CodeForbidden:               "FORBIDDEN",
		CodeNotFound:                "NOT_FOUND",
		CodeMethodNotAllowed:        "METHOD_NOT_ALLOWED",
		CodeSignatureInvalid:        "SIGNATURE_INVALID",
		CodePolicyDenied:            "POLICY_DENIED",
	}
	for c, s := range want {
		assert.Equal(t, s, string(c))
	}
}

func TestUnknownCodeIsNotKnown(t *testing.T) {
	assert.False(t, Code("SOMETHING_NEW").Known())
	assert.False(t, Code("").Known())
}

func TestCodesIsACopy(t *testing.T) {
	c := Codes()
	c[0] = "CHANGED"
	assert.Equal(t, CodeInvalidMessageFormat, Codes()[0])
}

func TestErrorf(t *testing.T) {
	e := Errorf(CodeInvalidRecipient, "address %q has %d problems", "x@y", 2)
	assert.Equal(t, CodeInvalidRecipient, e.Code)
	assert.Equal(t, `address "x@y" has 2 problems`, e.Message)
	assert.Equal(t, `INVALID_RECIPIENT: address "x@y" has 2 problems`, e.Error())
	assert.Nil(t, e.Details)

	// a format string without arguments is taken literally
	assert.Equal(t, "100% sure", Errorf(CodeForbidden, "100%% sure").Message)
}

func TestWithDetail(t *testing.T) {
	e := Errorf(CodeInvalidMessageFormat, "bad")
	got := e.WithDetail("field", "sender")
	assert.Same(t, e, got, "WithDetail mutates and returns the receiver")
	assert.Same(t, e, e.WithDetail("max", 100).WithDetail("field", "recipients"))
	assert.Equal(t, map[string]any{"field": "recipients", "max": 100}, e.Details)
}

func TestFieldError(t *testing.T) {
	e := FieldError("recipients[3]", "recipient %d is bad", 3)
	assert.Equal(t, CodeInvalidMessageFormat, e.Code)
	assert.Equal(t, "recipient 3 is bad", e.Message)
	assert.Equal(t, map[string]any{"field": "recipients[3]"}, e.Details)
}

func TestAsErrorAndIsCode(t *testing.T) {
	base := Errorf(CodeIdempotencyConflict, "key reused").WithDetail("idempotency_key", "k1")
	wrapped := fmt.Errorf("store: %w", base)
	twice := fmt.Errorf("gateway: %w", wrapped)
	joined := errors.Join(errors.New("other"), twice)

	for name, err := range map[string]error{"bare": base, "wrapped": wrapped, "twice": twice, "joined": joined} {
		t.Run(name, func(t *testing.T) {
			e, ok := AsError(err)
			require.True(t, ok)
			assert.Same(t, base, e, "the original *Error, not a copy")
			assert.Equal(t, CodeIdempotencyConflict, e.Code)
			assert.Equal(t, "k1", e.Details["idempotency_key"])
			assert.True(t, IsCode(err, CodeIdempotencyConflict))
			assert.False(t, IsCode(err, CodeInvalidMessageFormat))
		})
	}

	for name, err := range map[string]error{
		"nil":         nil,
		"plain":       errors.New("INVALID_MESSAGE_FORMAT: looks like one but is not"),
		"wrapped":     fmt.Errorf("x: %w", errors.New("y")),
		"not %w":      fmt.Errorf("x: %v", base), //nolint:errorlint // the case of an error not wrapped
		"wrapped nil": fmt.Errorf("x: %w", error(nil)),
	} {
		t.Run("not/"+name, func(t *testing.T) {
			e, ok := AsError(err)
			assert.False(t, ok)
			assert.Nil(t, e)
			assert.False(t, IsCode(err, CodeIdempotencyConflict))
			assert.False(t, IsCode(err, CodeInvalidMessageFormat))
		})
	}
}

func TestErrorSatisfiesErrorsAs(t *testing.T) {
	err := fmt.Errorf("wrap: %w", Errorf(CodeForbidden, "relay denied"))
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, CodeForbidden, e.Code)
	assert.Contains(t, err.Error(), "FORBIDDEN: relay denied")
}
