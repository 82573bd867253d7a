package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
)

const orderID = "agntcy:commerce.order.v2"

const orderSchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["order_id", "items"],
  "additionalProperties": false,
  "properties": {
    "order_id": {"type": "string"},
    "currency": {"enum": ["USD", "EUR"]},
    "kind": {"const": "purchase"},
    "items": {
      "type": "array",
      "items": {"$ref": "#/definitions/item"}
    },
    "meta": {"type": "object", "additionalProperties": {"type": "string"}}
  },
  "definitions": {
    "item": {
      "type": "object",
      "required": ["sku", "price"],
      "properties": {
        "sku": {"type": "string", "minLength": 1},
        "price": {"type": "number", "exclusiveMinimum": 0}
      }
    }
  }
}`

func newOrderRegistry(t testing.TB) *Registry {
	t.Helper()
	r := NewRegistry(NewMemoryStore())
	_, _, err := r.Put(t.Context(), orderID, json.RawMessage(orderSchema))
	require.NoError(t, err)
	return r
}

func TestValidatePayloads(t *testing.T) {
	r := newOrderRegistry(t)
	tests := []struct {
		name    string
		payload string
		want    []FieldError // nil: valid
	}{
		{
			name:    "valid",
			payload: `{"order_id":"PO-1","currency":"USD","items":[{"sku":"W-1","price":29.99}],"meta":{"a":"b"}}`,
		},
		{
			name:    "valid empty items",
			payload: `{"order_id":"PO-1","items":[]}`,
		},
		{
			name:    "missing required at root",
			payload: `{"items":[]}`,
			want:    []FieldError{{Field: "order_id", Message: "is required"}},
		},
		{
			name:    "missing required nested in an array",
			payload: `{"order_id":"PO-1","items":[{"sku":"A","price":1},{"price":2}]}`,
			want:    []FieldError{{Field: "items[1].sku", Message: "is required"}},
		},
		{
			name:    "wrong type nested in an array",
			payload: `{"order_id":"PO-1","items":[{"sku":"A","price":"12"}]}`,
			want: []FieldError{{
				Field: "items[0].price", Message: "Invalid type. Expected: number, given: string", Value: "12",
			}},
		},
		{
			name:    "range",
			payload: `{"order_id":"PO-1","items":[{"sku":"A","price":0}]}`,
			want:    []FieldError{{Field: "items[0].price", Message: "Must be greater than 0", Value: json.Number("0")}},
		},
		{
			name:    "enum",
			payload: `{"order_id":"PO-1","items":[],"currency":"GBP"}`,
			want:    []FieldError{{Field: "currency", Message: `must be one of: "USD", "EUR"`, Value: "GBP"}},
		},
		{
			name:    "const",
			payload: `{"order_id":"PO-1","items":[],"kind":"sale"}`,
			want:    []FieldError{{Field: "kind", Message: `must be "purchase"`, Value: "sale"}},
		},
		{
			name:    "additionalProperties",
			payload: `{"order_id":"PO-1","items":[],"extra":true}`,
			want:    []FieldError{{Field: "extra", Message: "is not allowed", Value: true}},
		},
		{
			name:    "member names that need quoting",
			payload: `{"order_id":"PO-1","items":[],"meta":{"a.b":1,"":null,"ok":"x"}}`,
			want: []FieldError{
				{Field: `meta[""]`, Message: "Invalid type. Expected: string, given: null"},
				{Field: `meta["a.b"]`, Message: "Invalid type. Expected: string, given: integer", Value: json.Number("1")},
			},
		},
		{
			name:    "object value is not echoed",
			payload: `{"order_id":{"n":1},"items":[]}`,
			want:    []FieldError{{Field: "order_id", Message: "Invalid type. Expected: string, given: object"}},
		},
		{
			name:    "several errors sorted by field",
			payload: `{"items":[{"sku":"","price":1}],"zz":1,"currency":"X"}`,
			want: []FieldError{
				{Field: "currency", Message: `must be one of: "USD", "EUR"`, Value: "X"},
				{Field: "items[0].sku", Message: "String length must be greater than or equal to 1", Value: ""},
				{Field: "order_id", Message: "is required"},
				{Field: "zz", Message: "is not allowed", Value: json.Number("1")},
			},
		},
		{
			name:    "root of the wrong type",
			payload: `[1,2]`,
			want:    []FieldError{{Field: "", Message: "Invalid type. Expected: object, given: array"}},
		},
		{
			name:    "absent payload is null",
			payload: ``,
			want:    []FieldError{{Field: "", Message: "Invalid type. Expected: object, given: null"}},
		},
		{
			name:    "not JSON",
			payload: `{"order_id":`,
			want:    []FieldError{{Field: "", Message: "payload is not valid JSON"}},
		},
		{
			name:    "trailing data",
			payload: `{"order_id":"PO-1","items":[]} {}`,
			want:    []FieldError{{Field: "", Message: "payload is not valid JSON"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Validate(t.Context(), orderID, json.RawMessage(tt.payload))
			require.NoError(t, err)
			assert.Equal(t, orderID, res.Schema)
			if tt.want == nil {
				assert.True(t, res.Valid, "errors: %v", res.Errors)
				assert.Empty(t, res.Errors)
				assert.Nil(t, res.AMTPError())
				return
			}
			assert.False(t, res.Valid)
			assert.False(t, res.Truncated)
			assert.Equal(t, tt.want, res.Errors)
		})
	}
}

func TestValidateArrayIndexVersusMemberNamedLikeOne(t *testing.T) {
	r := NewRegistry(NewMemoryStore())
	const id = "acme:test.grid.v1"
	_, _, err := r.Put(t.Context(), id, json.RawMessage(`{
	  "type": "object",
	  "properties": {
	    "rows": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
	    "byname": {"type": "object", "properties": {"0": {"type": "integer"}}}
	  }
	}`))
	require.NoError(t, err)

	res, err := r.Validate(t.Context(), id, json.RawMessage(`{"rows":[[1],[2,"x"]],"byname":{"0":"y"}}`))
	require.NoError(t, err)
	assert.Equal(t, []FieldError{
		{Field: "byname.0", Message: "Invalid type. Expected: integer, given: string", Value: "y"},
		{Field: "rows[1][1]", Message: "Invalid type. Expected: integer, given: string", Value: "x"},
	}, res.Errors)
}

func TestValidateErrorsAreBoundedAndStable(t *testing.T) {
	r := newOrderRegistry(t)
	items := make([]string, 3*MaxFieldErrors)
	for i := range items {
		items[i] = `{"sku":"A","price":"free"}`
	}
	payload := json.RawMessage(`{"order_id":"PO-1","items":[` + strings.Join(items, ",") + `]}`)

	first, err := r.Validate(t.Context(), orderID, payload)
	require.NoError(t, err)
	assert.False(t, first.Valid)
	assert.True(t, first.Truncated)
	require.Len(t, first.Errors, MaxFieldErrors)
	for range 5 {
		again, err := r.Validate(t.Context(), orderID, payload)
		require.NoError(t, err)
		require.Equal(t, first.Errors, again.Errors, "the kept subset must not depend on map order")
	}
}

func TestValidateLongStringValueIsCut(t *testing.T) {
	r := newOrderRegistry(t)
	long := strings.Repeat("é", 200)
	res, err := r.Validate(t.Context(), orderID, json.RawMessage(`{"order_id":"1","items":[],"currency":"`+long+`"}`))
	require.NoError(t, err)
	require.Len(t, res.Errors, 1)
	v, ok := res.Errors[0].Value.(string)
	require.True(t, ok)
	assert.LessOrEqual(t, len(v), maxValueLen+len("…"))
	assert.True(t, strings.HasSuffix(v, "…"))
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(v, "…")), "cut on a rune boundary")
}

func TestResultAMTPError(t *testing.T) {
	r := newOrderRegistry(t)
	res, err := r.Validate(t.Context(), orderID, json.RawMessage(`{"items":[{"sku":"A","price":"12"}]}`))
	require.NoError(t, err)

	e := res.AMTPError()
	require.NotNil(t, e)
	assert.Equal(t, amtp.CodeSchemaValidationFailed, e.Code)
	assert.Equal(t, "Payload validation failed for schema "+orderID, e.Message)

	details, err := json.Marshal(e.Details)
	require.NoError(t, err)
	assert.JSONEq(t, `{
	  "schema": "agntcy:commerce.order.v2",
	  "validation_errors": [
	    {"field": "items[0].price", "error": "Invalid type. Expected: number, given: string", "value": "12"},
	    {"field": "order_id", "error": "is required"}
	  ]
	}`, string(details))

	// The Result itself marshals as the same details object.
	direct, err := json.Marshal(res)
	require.NoError(t, err)
	assert.JSONEq(t, string(details), string(direct))
}

func TestFieldPath(t *testing.T) {
	doc := map[string]any{
		"a":   []any{map[string]any{"b c": []any{"x"}}},
		"0":   "zero",
		"q\"": 1,
	}
	tests := []struct {
		segs []string
		want string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "0"}, "a[0]"},
		{[]string{"a", "0", "b c", "0"}, `a[0]["b c"][0]`},
		{[]string{"0"}, "0"},
		{[]string{`q"`}, `["q\""]`},
		{[]string{"a", "7"}, "a.7"}, // out of range: not an index of this array
		{[]string{"missing", "x"}, "missing.x"},
		{[]string{"a", "0", "new"}, "a[0].new"},
		{[]string{"a\nb"}, `["a\nb"]`},
		{[]string{"ünï-cödé_$"}, "ünï-cödé_$"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.segs), func(t *testing.T) {
			assert.Equal(t, tt.want, fieldPath(doc, tt.segs))
		})
	}
}
