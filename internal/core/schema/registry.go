package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/xeipuuv/gojsonschema"
)

// DefaultCacheSize bounds the compiled schemas a Registry keeps.
const DefaultCacheSize = 1024

// ErrUnknownSchema is returned by Validate for an id nobody registered.
// It is not a validation failure: policy decides whether such a message
// passes unchecked or is refused.
var ErrUnknownSchema = errors.New("schema: unknown schema")

// Registry checks, stores and applies schemas. The Store is the source of
// truth; the Registry only caches compiled forms, so several processes
// (Lambdas) over one Store stay consistent. It is safe for concurrent use.
type Registry struct {
	store     Store
	now       func() time.Time
	cacheSize int

	mu    sync.RWMutex
	cache map[string]*compiled
}

// compiled is a cache entry. It is valid for a record only when both the
// version and the bytes match: the Store has no compare-and-set, so two
// concurrent writers can produce the same version number with different
// documents, and comparing bytes is far cheaper than compiling.
type compiled struct {
	version int
	raw     []byte
	schema  *gojsonschema.Schema
}

// NewRegistry returns a Registry over store.
func NewRegistry(store Store) *Registry {
	return &Registry{
		store:     store,
		now:       time.Now,
		cacheSize: DefaultCacheSize,
		cache:     make(map[string]*compiled),
	}
}

// Put registers or replaces the schema id. The document must be a draft-07
// schema of at most MaxSchemaSize bytes with local references only; it is
// stored normalised (see normalize). created reports a new id. Putting the
// same document again changes nothing and returns the current record, so
// retries are harmless.
func (r *Registry) Put(ctx context.Context, id string, doc json.RawMessage) (rec Record, created bool, err error) {
	if _, err := ParseID(id); err != nil {
		return Record{}, false, err
	}
	if len(doc) > MaxSchemaSize {
		return Record{}, false, fmt.Errorf("put %s: %w: %d bytes, at most %d", id, ErrSchemaTooLarge, len(doc), MaxSchemaSize)
	}
	raw, err := normalize(doc)
	if err != nil {
		return Record{}, false, fmt.Errorf("put %s: %w: not valid JSON: %w", id, ErrInvalidSchema, err)
	}
	s, err := compile(raw)
	if err != nil {
		return Record{}, false, fmt.Errorf("put %s: %w", id, err)
	}

	// Milliseconds, UTC: what every store adapter can round-trip.
	now := r.now().UTC().Truncate(time.Millisecond)
	prev, err := r.store.GetSchema(ctx, id)
	switch {
	case err == nil:
		if bytes.Equal(prev.Schema, raw) {
			r.remember(prev.ID, prev.Version, raw, s)
			return prev, false, nil
		}
		rec = Record{ID: id, Schema: raw, CreatedAt: prev.CreatedAt, UpdatedAt: now, Version: prev.Version + 1}
	case errors.Is(err, ErrNotFound):
		rec = Record{ID: id, Schema: raw, CreatedAt: now, UpdatedAt: now, Version: 1}
		created = true
	default:
		return Record{}, false, fmt.Errorf("put %s: reading the current version: %w", id, err)
	}

	if err := r.store.PutSchema(ctx, rec); err != nil {
		// The write may have happened all the same; the next Validate
		// re-reads the store either way.
		r.forget(id)
		return Record{}, false, fmt.Errorf("put %s: storing: %w", id, err)
	}
	r.remember(id, rec.Version, raw, s)
	return rec, created, nil
}

// normalize gives the stored form: compact, with <, >, &, U+2028 and U+2029
// escaped. That is exactly what encoding/json makes of a json.RawMessage,
// so adapters that persist the Record as JSON give the bytes back unchanged
// and the byte comparisons above keep working.
func normalize(doc []byte) ([]byte, error) {
	var compact, escaped bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return nil, err
	}
	json.HTMLEscape(&escaped, compact.Bytes())
	return escaped.Bytes(), nil
}

// Get returns the record for id; errors match ErrInvalidID or ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (Record, error) {
	if _, err := ParseID(id); err != nil {
		return Record{}, err
	}
	rec, err := r.store.GetSchema(ctx, id)
	if err != nil {
		return Record{}, fmt.Errorf("get %s: %w", id, err)
	}
	return rec, nil
}

// List returns every record, sorted by id whatever the store's order.
func (r *Registry) List(ctx context.Context) ([]Record, error) {
	recs, err := r.store.ListSchemas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	return recs, nil
}

// Delete removes id; errors match ErrInvalidID or ErrNotFound.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if _, err := ParseID(id); err != nil {
		return err
	}
	if err := r.store.DeleteSchema(ctx, id); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	r.forget(id)
	return nil
}

// Validate checks payload against the schema registered as id (exact id:
// resolving compatible versions is the caller's policy). The error is for
// what prevents validating at all: ErrInvalidID, ErrUnknownSchema, a store
// failure, or a stored document that no longer compiles; a payload that
// does not match is a Result with Valid false.
func (r *Registry) Validate(ctx context.Context, id string, payload json.RawMessage) (*Result, error) {
	if _, err := ParseID(id); err != nil {
		return nil, err
	}
	rec, err := r.store.GetSchema(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("validate %s: %w", id, ErrUnknownSchema)
	}
	if err != nil {
		return nil, fmt.Errorf("validate %s: loading: %w", id, err)
	}
	s, err := r.compiled(rec)
	if err != nil {
		return nil, err
	}
	return check(s, id, payload)
}

func (r *Registry) compiled(rec Record) (*gojsonschema.Schema, error) {
	r.mu.RLock()
	c := r.cache[rec.ID]
	r.mu.RUnlock()
	if c != nil && c.version == rec.Version && bytes.Equal(c.raw, rec.Schema) {
		return c.schema, nil
	}
	// Stored documents are checked again: the store may have been written
	// by something other than a Registry.
	s, err := compile(rec.Schema)
	if err != nil {
		return nil, fmt.Errorf("validate %s: version %d: %w", rec.ID, rec.Version, err)
	}
	r.remember(rec.ID, rec.Version, rec.Schema, s)
	return s, nil
}

func (r *Registry) remember(id string, version int, raw []byte, s *gojsonschema.Schema) {
	c := &compiled{version: version, raw: bytes.Clone(raw), schema: s}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cache[id]; !ok && len(r.cache) >= r.cacheSize {
		// Evict an arbitrary entry (map order is randomised): a miss costs
		// one compile, which does not justify LRU bookkeeping on every hit.
		for k := range r.cache {
			delete(r.cache, k)
			break
		}
	}
	r.cache[id] = c
}

func (r *Registry) forget(id string) {
	r.mu.Lock()
	delete(r.cache, id)
	r.mu.Unlock()
}
