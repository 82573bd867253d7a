package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	apidocs "github.com/agentry/agentry/docs"
	"github.com/agentry/agentry/internal/core/amtp"
)

// TestDocumentedCodesMatchTheirStatus: every error response of every
// operation in docs/openapi.yaml lists the AMTP codes it can carry, each
// of them a code this handler answers with exactly that status; and the
// document's ErrorCode enum is every code the handler knows.
func TestDocumentedCodesMatchTheirStatus(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(apidocs.YAML())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))

	var all []string
	for c := range codeStatus {
		all = append(all, string(c))
	}
	slices.Sort(all)
	assert.Equal(t, all, sortedStrings(doc.Components.Schemas["ErrorCode"].Value.Enum), "ErrorCode enum")

	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code, ref := range op.Responses.Map() {
				status, err := strconv.Atoi(code)
				require.NoError(t, err, "%s %s: response %q", method, path, code)
				if status < 400 {
					continue
				}
				where := fmt.Sprintf("%s %s %d", method, path, status)
				codes := documentedCodes(ref.Value)
				require.NotEmpty(t, codes, "%s: the response lists no AMTP codes", where)
				for _, c := range codes {
					assert.True(t, answersWith(amtp.Code(c), status), "%s lists %s, which is answered %d", where, c, statusOf(amtp.Code(c)))
				}
			}
		}
	}
}

// answersWith reports whether the handler answers code c with status:
// its status, or 500 for the TEMPORARY_FAILURE of writeInternal.
func answersWith(c amtp.Code, status int) bool {
	return statusOf(c) == status || (c == amtp.CodeTemporaryFailure && status == http.StatusInternalServerError)
}

// documentedCodes are the codes an error response narrows the error
// body's code to: the enums of its allOf members other than the body.
func documentedCodes(r *openapi3.Response) []string {
	mt := r.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	var out []string
	for _, member := range mt.Schema.Value.AllOf {
		if member.Ref == "#/components/schemas/Error" {
			continue
		}
		e := member.Value.Properties["error"]
		if e == nil || e.Value.Properties["code"] == nil {
			continue
		}
		for _, v := range e.Value.Properties["code"].Value.Enum {
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

func sortedStrings(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, fmt.Sprint(v))
	}
	slices.Sort(out)
	return out
}
