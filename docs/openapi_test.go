package apidocs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocumentIsValidOpenAPI31: the embedded document loads and validates
// as OpenAPI 3.1 in kin-openapi (JSON Schema 2020-12 for its schemas), and
// its JSON form is the same document.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	fromYAML := load(t, YAML())
	assert.True(t, fromYAML.IsOpenAPI31OrLater(), "openapi: %s", fromYAML.OpenAPI)
	require.NoError(t, fromYAML.Validate(context.Background()))

	data, err := JSON()
	require.NoError(t, err)
	fromJSON := load(t, data)
	require.NoError(t, fromJSON.Validate(context.Background()))
	a, err := json.Marshal(fromYAML)
	require.NoError(t, err)
	b, err := json.Marshal(fromJSON)
	require.NoError(t, err)
	assert.JSONEq(t, string(a), string(b))
}

func load(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(data)
	require.NoError(t, err)
	return doc
}

// TestToJSONKeepsOnlyWhatJSONCarries: the conversion refuses YAML that
// JSON cannot say the same way rather than guessing.
func TestToJSONKeepsOnlyWhatJSONCarries(t *testing.T) {
	cases := []struct {
		name, yaml, want, wantErr string
	}{
		{name: "plain", yaml: "a: [1, 2.5, true, null, x]\nb: {'200': ok}", want: `{"a":[1,2.5,true,null,"x"],"b":{"200":"ok"}}`},
		{name: "unquoted status code", yaml: "responses:\n  200: ok\n", wantErr: "/responses: a mapping with a key that is not a string"},
		{name: "timestamp", yaml: "x:\n  - 2026-01-02T03:04:05Z\n", wantErr: "/x/0: a time.Time"},
		{name: "not yaml", yaml: "a: [", wantErr: "openapi document: yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toJSON([]byte(tc.yaml))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got))
		})
	}
}
