package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/xeipuuv/gojsonschema"
)

// MaxSchemaSize bounds a schema document as submitted: compiling is
// superlinear in the worst case and compiled schemas stay in memory.
const MaxSchemaSize = 256 << 10

var (
	// ErrInvalidSchema marks a document that is not a usable draft-07
	// schema, including one with a non-local $ref.
	ErrInvalidSchema = errors.New("schema: invalid JSON Schema")
	// ErrSchemaTooLarge marks a document over MaxSchemaSize.
	ErrSchemaTooLarge = errors.New("schema: document too large")
)

const draft07URL = "http://json-schema.org/draft-07/schema#"

// draft07Names are the $schema values accepted: the meta-schema's id, with
// and without the empty fragment and over https.
var draft07Names = map[string]bool{
	"http://json-schema.org/draft-07/schema#":  true,
	"http://json-schema.org/draft-07/schema":   true,
	"https://json-schema.org/draft-07/schema#": true,
	"https://json-schema.org/draft-07/schema":  true,
}

// metaSchema checks documents before compiling them. It is checked here and
// not through SchemaLoader.Validate because that path resolves "$schema" by
// URL and, as a side effect, swaps in the library's fetching loader for the
// rest of the compile. gojsonschema serves the draft-07 meta-schema from an
// embedded copy, so this compile does no network I/O.
//
// A function, not a package-level sync.OnceValues: the closure such a
// variable holds is linked into every binary that imports this package,
// and with it gojsonschema's compiler and template engine (7 MB of the
// deliver function, which only needs this package's types).
func metaSchema() (*gojsonschema.Schema, error) {
	metaState.once.Do(func() {
		sl := gojsonschema.NewSchemaLoader()
		sl.Draft = gojsonschema.Draft7
		sl.AutoDetect = false
		metaState.schema, metaState.err = sl.Compile(gojsonschema.NewReferenceLoader(draft07URL))
	})
	return metaState.schema, metaState.err
}

var metaState struct {
	once   sync.Once
	schema *gojsonschema.Schema
	err    error
}

// compile turns a schema document into a validator, refusing anything that
// would make gojsonschema load a document from elsewhere.
func compile(raw []byte) (*gojsonschema.Schema, error) {
	doc, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %w", ErrInvalidSchema, err)
	}
	if err := checkLocal(doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSchema, err)
	}
	meta, err := metaSchema()
	if err != nil {
		return nil, fmt.Errorf("loading the draft-07 meta-schema: %w", err)
	}
	res, err := meta.Validate(decodedLoader{JSONLoader: gojsonschema.NewBytesLoader(raw), doc: doc})
	if err != nil {
		return nil, fmt.Errorf("checking against the meta-schema: %w", err)
	}
	if !res.Valid() {
		return nil, fmt.Errorf("%w: %s", ErrInvalidSchema, summarize(res.Errors()))
	}
	return compileUnchecked(raw, doc)
}

// compileUnchecked compiles without the pre-checks; only tests call it
// directly, to prove the refusing loader holds on its own.
func compileUnchecked(raw []byte, doc any) (*gojsonschema.Schema, error) {
	sl := gojsonschema.NewSchemaLoader()
	sl.Draft = gojsonschema.Draft7
	// Without auto-detection a "$schema" naming another draft cannot change
	// the semantics the registry promised.
	sl.AutoDetect = false
	s, err := sl.Compile(localOnly{decodedLoader{JSONLoader: gojsonschema.NewBytesLoader(raw), doc: doc}})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSchema, err)
	}
	return s, nil
}

// checkLocal refuses every "$ref" that is not a "#…" fragment of the
// document itself, and a "$schema" other than draft-07. It looks at every
// object, data keywords (enum, const, default, examples) included: being
// stricter than the library's own walk is cheap, being looser is SSRF.
func checkLocal(doc any) error {
	if m, ok := doc.(map[string]any); ok {
		if v, ok := m["$schema"]; ok {
			s, _ := v.(string)
			if !draft07Names[s] {
				return fmt.Errorf("$schema %q: only draft-07 (%s) is supported", truncate(fmt.Sprint(v), 100), draft07URL)
			}
		}
	}
	return walkRefs(doc, "")
}

func walkRefs(node any, at string) error {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok && !strings.HasPrefix(ref, "#") {
			return fmt.Errorf("$ref %q at %q: only local references (\"#...\") are allowed, remote schemas are never fetched",
				truncate(ref, 100), pointer(at))
		}
		// Sorted so that the first offending reference reported is stable.
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := walkRefs(n[k], at+"/"+pointerEscaper.Replace(k)); err != nil {
				return err
			}
		}
	case []any:
		for i, v := range n {
			if err := walkRefs(v, fmt.Sprintf("%s/%d", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func pointer(at string) string {
	if at == "" {
		return "/"
	}
	return at
}

// summarize renders meta-schema errors for the schema's author, a few at a
// time: the document is theirs, so paths are gojsonschema's own.
func summarize(errs []gojsonschema.ResultError) string {
	const show = 5
	parts := make([]string, 0, show)
	for _, e := range errs {
		parts = append(parts, e.Field()+": "+e.Description())
	}
	sort.Strings(parts)
	if len(parts) > show {
		parts = append(parts[:show], fmt.Sprintf("and %d more", len(errs)-show))
	}
	return strings.Join(parts, "; ")
}

// decodeJSON decodes one JSON value the way gojsonschema expects it
// (numbers as json.Number) and refuses trailing data, which the library's
// own loaders would silently ignore.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// decodedLoader hands gojsonschema a document already decoded, so that a
// payload is parsed once and the error paths can be resolved against the
// very same tree.
type decodedLoader struct {
	gojsonschema.JSONLoader
	doc any
}

func (l decodedLoader) LoadJSON() (any, error) { return l.doc, nil }

// localOnly makes every reference the compiler cannot resolve inside the
// document fail instead of being fetched: gojsonschema takes the factory for
// referenced documents from the root loader.
type localOnly struct{ gojsonschema.JSONLoader }

func (localOnly) LoaderFactory() gojsonschema.JSONLoaderFactory { return refusingFactory{} }

type refusingFactory struct{}

func (refusingFactory) New(source string) gojsonschema.JSONLoader {
	return refusedLoader{JSONLoader: gojsonschema.NewReferenceLoader(source), source: source}
}

type refusedLoader struct {
	gojsonschema.JSONLoader
	source string
}

func (l refusedLoader) LoadJSON() (any, error) {
	return nil, fmt.Errorf("reference %q refused: only local references are resolved", truncate(l.source, 100))
}

func (refusedLoader) LoaderFactory() gojsonschema.JSONLoaderFactory { return refusingFactory{} }
