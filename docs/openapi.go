// Package apidocs carries the REST API's OpenAPI document into the binary.
//
// docs/openapi.yaml is the canonical document: people read and review it
// in YAML, next to the guides. Go embeds only files below a package's own
// directory, so this package lives beside it rather than the YAML being
// copied into the handler's package, where two copies could drift apart.
package apidocs

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var yamlDoc []byte

// YAML is the document as written.
func YAML() []byte { return bytes.Clone(yamlDoc) }

// JSON is the document as JSON, converted once per process. Callers must
// not change the slice.
var JSON = sync.OnceValues(func() ([]byte, error) { return toJSON(yamlDoc) })

// maxDocumentBytes bounds what toJSON converts: the document is ours and
// far smaller, so more means something is wrong.
const maxDocumentBytes = 4 << 20

// toJSON converts one YAML document to JSON. Only what JSON can say is
// accepted: mapping keys must be strings (write response codes quoted,
// '200', as OpenAPI asks of YAML documents anyway).
func toJSON(doc []byte) ([]byte, error) {
	if len(doc) > maxDocumentBytes {
		return nil, fmt.Errorf("openapi document: %d bytes, more than %d", len(doc), maxDocumentBytes)
	}
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	v, err := jsonValue(v, "")
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	return out, nil
}

// jsonValue checks that v, as yaml.v3 decodes into an any, holds only
// what JSON can carry, and returns it ready for encoding/json. at is the
// path to v, for the error.
func jsonValue(v any, at string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			conv, err := jsonValue(e, at+"/"+k)
			if err != nil {
				return nil, err
			}
			x[k] = conv
		}
		return x, nil
	case map[any]any:
		return nil, fmt.Errorf("%s: a mapping with a key that is not a string (quote it)", orRoot(at))
	case []any:
		for i, e := range x {
			conv, err := jsonValue(e, fmt.Sprintf("%s/%d", at, i))
			if err != nil {
				return nil, err
			}
			x[i] = conv
		}
		return x, nil
	case nil, string, bool, int, int64, uint64, float64:
		return x, nil
	default:
		return nil, fmt.Errorf("%s: a %T, which JSON cannot carry (quote it)", orRoot(at), v)
	}
}

func orRoot(at string) string {
	if at == "" {
		return "/"
	}
	return at
}
