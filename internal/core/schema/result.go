package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xeipuuv/gojsonschema"

	"github.com/agentry/agentry/internal/core/amtp"
)

// MaxFieldErrors bounds Result.Errors so that a hostile payload cannot make
// the error answer larger than the payload itself.
const MaxFieldErrors = 50

const (
	maxValueLen  = 128 // bytes of a string value echoed in a FieldError
	maxNumberLen = 64  // longer numbers are not echoed at all
)

// FieldError is one entry of the draft §13.2 "validation_errors" list.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"error"`
	// Value is the offending value when it is a scalar, for the sender's
	// convenience; objects and arrays are left out to keep answers small.
	Value any `json:"value,omitempty"`
}

// Result is the outcome of validating one payload. Its JSON form is the
// draft's error "details" object.
type Result struct {
	Valid  bool         `json:"-"`
	Schema string       `json:"schema"`
	Errors []FieldError `json:"validation_errors,omitempty"`
	// Truncated says that Errors was cut at MaxFieldErrors.
	Truncated bool `json:"truncated,omitempty"`
}

// AMTPError is the SCHEMA_VALIDATION_FAILED error for an invalid result,
// in the draft's §13.2 shape; nil when the payload is valid.
func (r *Result) AMTPError() *amtp.Error {
	if r == nil || r.Valid {
		return nil
	}
	e := amtp.Errorf(amtp.CodeSchemaValidationFailed, "Payload validation failed for schema %s", r.Schema).
		WithDetail("schema", r.Schema).
		WithDetail("validation_errors", r.Errors)
	if r.Truncated {
		e = e.WithDetail("truncated", true)
	}
	return e
}

// check validates payload, already known to be meant for schema id.
func check(s *gojsonschema.Schema, id string, payload json.RawMessage) (*Result, error) {
	var doc any
	if len(bytes.TrimSpace(payload)) > 0 {
		var err error
		if doc, err = decodeJSON(payload); err != nil {
			return &Result{Schema: id, Errors: []FieldError{{Message: "payload is not valid JSON"}}}, nil //nolint:nilerr // a payload that is not JSON is an invalid result, not a failure
		}
	}
	// An absent payload is validated as null: a schema that wants an
	// object then says so, one that allows anything accepts it.
	res, err := s.Validate(decodedLoader{JSONLoader: gojsonschema.NewBytesLoader(payload), doc: doc})
	if err != nil {
		return nil, fmt.Errorf("validate %s: %w", id, err)
	}
	if res.Valid() {
		return &Result{Valid: true, Schema: id}, nil
	}
	errs, truncated := fieldErrors(doc, res.Errors())
	return &Result{Schema: id, Errors: errs, Truncated: truncated}, nil
}

func fieldErrors(doc any, in []gojsonschema.ResultError) ([]FieldError, bool) {
	out := make([]FieldError, 0, len(in))
	seen := make(map[[2]string]bool, len(in))
	for _, e := range in {
		fe := toFieldError(doc, e)
		// anyOf/oneOf merge the errors of their branches, which repeat.
		k := [2]string{fe.Field, fe.Message}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, fe)
	}
	// gojsonschema walks objects in map order: sort for stable answers, and
	// before cutting, so that the kept subset is stable too.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Field != out[j].Field {
			return out[i].Field < out[j].Field
		}
		return out[i].Message < out[j].Message
	})
	if len(out) > MaxFieldErrors {
		return out[:MaxFieldErrors], true
	}
	return out, false
}

// ctxSep joins gojsonschema's context segments. A lone 0xFF byte never
// occurs in a member name decoded by encoding/json (invalid UTF-8 becomes
// U+FFFD), so splitting on it is unambiguous even for names with dots.
const ctxSep = "\xff"

func toFieldError(doc any, e gojsonschema.ResultError) FieldError {
	var segs []string
	if c := e.Context(); c != nil {
		// The first segment is always gojsonschema's "(root)".
		segs = strings.Split(c.String(ctxSep), ctxSep)[1:]
	}
	fe := FieldError{Message: e.Description(), Value: scalar(e.Value())}
	prop, _ := e.Details()["property"].(string)
	switch e.Type() {
	case "required":
		// Reported on the parent object by the library; the draft's field
		// is the member that is missing.
		segs = append(segs, prop)
		fe.Message, fe.Value = "is required", nil
	case "additional_property_not_allowed":
		segs = append(segs, prop)
		fe.Message = "is not allowed"
	case "invalid_property_name":
		segs = append(segs, prop)
		fe.Message, fe.Value = "member name does not match the schema", nil
	case "enum":
		// The library's wording embeds its own path notation.
		fe.Message = fmt.Sprintf("must be one of: %v", e.Details()["allowed"])
	case "const":
		fe.Message = fmt.Sprintf("must be %v", e.Details()["allowed"])
	}
	fe.Field = fieldPath(doc, segs)
	return fe
}

// fieldPath renders segments in the draft's notation. Walking the payload
// alongside tells an array index from a member named "0".
func fieldPath(doc any, segs []string) string {
	var b strings.Builder
	node := doc
	for _, seg := range segs {
		if arr, ok := node.([]any); ok {
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(arr) {
				b.WriteString("[" + seg + "]")
				node = arr[i]
				continue
			}
		}
		if obj, ok := node.(map[string]any); ok {
			node = obj[seg]
		} else {
			node = nil
		}
		if plainName(seg) {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(seg)
		} else {
			q, _ := json.Marshal(seg)
			b.WriteString("[" + string(q) + "]")
		}
	}
	return b.String()
}

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if strings.ContainsRune(`.[]"\`, r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func scalar(v any) any {
	switch x := v.(type) {
	case string:
		return truncate(x, maxValueLen)
	case json.Number:
		if len(x) > maxNumberLen {
			return nil
		}
		return x
	case bool:
		return x
	}
	return nil
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
