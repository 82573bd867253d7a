package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fixedClock(t *time.Time) func() time.Time { return func() time.Time { return *t } }

func TestRegistryCRUD(t *testing.T) {
	ctx := t.Context()
	r := NewRegistry(NewMemoryStore())
	now := time.Date(2025, 8, 14, 10, 30, 0, 123_456_789, time.FixedZone("CEST", 2*3600))
	r.now = fixedClock(&now)
	const id = "agntcy:finance.payment.v1"

	rec, created, err := r.Put(ctx, id, json.RawMessage("{ \"type\" : \"object\" }\n"))
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, id, rec.ID)
	assert.Equal(t, `{"type":"object"}`, string(rec.Schema), "stored compacted")
	assert.Equal(t, 1, rec.Version)
	want := time.Date(2025, 8, 14, 8, 30, 0, 123_000_000, time.UTC)
	assert.Equal(t, want, rec.CreatedAt, "UTC, milliseconds")
	assert.Equal(t, want, rec.UpdatedAt)

	t.Run("same document again is a no-op", func(t *testing.T) {
		now = now.Add(time.Minute)
		again, created, err := r.Put(ctx, id, json.RawMessage(`{"type":"object"}`))
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, rec, again)
	})

	var v2 Record
	t.Run("new document is a new version", func(t *testing.T) {
		now = now.Add(time.Minute)
		v2, created, err = r.Put(ctx, id, json.RawMessage(`{"type":"object","required":["amount"]}`))
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, 2, v2.Version)
		assert.Equal(t, rec.CreatedAt, v2.CreatedAt)
		assert.True(t, v2.UpdatedAt.After(rec.UpdatedAt))
	})

	t.Run("get", func(t *testing.T) {
		got, err := r.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, v2, got)
		_, err = r.Get(ctx, "agntcy:finance.payment.v9")
		assert.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("list is sorted", func(t *testing.T) {
		for _, other := range []string{"zeta:a.b.v1", "acme:a.b.v1", "agntcy:finance.payment.v1.1"} {
			_, _, err := r.Put(ctx, other, json.RawMessage(`{}`))
			require.NoError(t, err)
		}
		all, err := r.List(ctx)
		require.NoError(t, err)
		ids := make([]string, len(all))
		for i, rec := range all {
			ids[i] = rec.ID
		}
		assert.Equal(t, []string{"acme:a.b.v1", id, "agntcy:finance.payment.v1.1", "zeta:a.b.v1"}, ids)
	})

	t.Run("delete", func(t *testing.T) {
		require.NoError(t, r.Delete(ctx, id))
		_, err := r.Get(ctx, id)
		assert.ErrorIs(t, err, ErrNotFound)
		assert.ErrorIs(t, r.Delete(ctx, id), ErrNotFound)
		_, err = r.Validate(ctx, id, json.RawMessage(`{}`))
		assert.ErrorIs(t, err, ErrUnknownSchema, "a deleted schema is not served from the cache")

		rec, created, err := r.Put(ctx, id, json.RawMessage(`{"type":"string"}`))
		require.NoError(t, err)
		assert.True(t, created, "re-created after delete")
		assert.Equal(t, 1, rec.Version)
	})
}

// jsonStore persists whole Records as JSON, like the bbolt and DynamoDB
// adapters do.
type jsonStore struct {
	mu   sync.Mutex
	recs map[string][]byte
}

func (s *jsonStore) PutSchema(_ context.Context, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[rec.ID] = b
	return nil
}

func (s *jsonStore) GetSchema(_ context.Context, id string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.recs[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	var rec Record
	err := json.Unmarshal(b, &rec)
	return rec, err
}

func (s *jsonStore) ListSchemas(context.Context) ([]Record, error) { return nil, nil }
func (s *jsonStore) DeleteSchema(context.Context, string) error    { return nil }

func TestStoredFormSurvivesJSONStores(t *testing.T) {
	ctx := t.Context()
	r := NewRegistry(&jsonStore{recs: map[string][]byte{}})
	const id = "acme:escape.test.v1"
	doc := json.RawMessage("{\"description\": \"a<b && c>d \u2028 é\", \"pattern\": \"^<[a-z]+>$\"}")

	first, created, err := r.Put(ctx, id, doc)
	require.NoError(t, err)
	require.True(t, created)
	assert.Equal(t, `{"description":"a\u003cb \u0026\u0026 c\u003ed \u2028 é","pattern":"^\u003c[a-z]+\u003e$"}`,
		string(first.Schema))

	got, err := r.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, string(first.Schema), string(got.Schema), "bytes survive json.Marshal of the Record")

	again, created, err := r.Put(ctx, id, doc)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, 1, again.Version, "the same document is recognised as unchanged")

	res, err := r.Validate(ctx, id, json.RawMessage(`"<ok>"`))
	require.NoError(t, err)
	assert.True(t, res.Valid, "escaping changes bytes, not meaning")
}

func TestRegistryRejectsInvalidIDs(t *testing.T) {
	ctx := t.Context()
	r := NewRegistry(NewMemoryStore())
	const bad = "Agntcy:Commerce.Order"
	_, _, err := r.Put(ctx, bad, json.RawMessage(`{}`))
	assert.ErrorIs(t, err, ErrInvalidID)
	_, err = r.Get(ctx, bad)
	assert.ErrorIs(t, err, ErrInvalidID)
	assert.ErrorIs(t, r.Delete(ctx, bad), ErrInvalidID)
	_, err = r.Validate(ctx, bad, json.RawMessage(`{}`))
	assert.ErrorIs(t, err, ErrInvalidID)
	assert.NotErrorIs(t, err, ErrUnknownSchema)
}

func TestValidateUnknownSchema(t *testing.T) {
	r := NewRegistry(NewMemoryStore())
	res, err := r.Validate(t.Context(), "agntcy:nobody.knows.v1", json.RawMessage(`{}`))
	require.ErrorIs(t, err, ErrUnknownSchema)
	assert.Nil(t, res)
	assert.Contains(t, err.Error(), "agntcy:nobody.knows.v1")
}

// failingStore fails every call, to tell store failures from unknown ids.
type failingStore struct{ Store }

var errStoreDown = errors.New("store down")

func (failingStore) GetSchema(context.Context, string) (Record, error) { return Record{}, errStoreDown }
func (failingStore) PutSchema(context.Context, Record) error           { return errStoreDown }
func (failingStore) ListSchemas(context.Context) ([]Record, error)     { return nil, errStoreDown }
func (failingStore) DeleteSchema(context.Context, string) error        { return errStoreDown }

func TestStoreFailuresAreNotUnknownSchema(t *testing.T) {
	ctx := t.Context()
	r := NewRegistry(failingStore{})
	_, err := r.Validate(ctx, orderID, json.RawMessage(`{}`))
	require.ErrorIs(t, err, errStoreDown)
	assert.NotErrorIs(t, err, ErrUnknownSchema)

	_, _, err = r.Put(ctx, orderID, json.RawMessage(`{}`))
	assert.ErrorIs(t, err, errStoreDown)
	_, err = r.List(ctx)
	assert.ErrorIs(t, err, errStoreDown)
	assert.ErrorIs(t, r.Delete(ctx, orderID), errStoreDown)
}

func TestPutNewVersionIsUsedAtOnce(t *testing.T) {
	ctx := t.Context()
	r := NewRegistry(NewMemoryStore())
	const id = "agentry:test.cache.v1"
	_, _, err := r.Put(ctx, id, json.RawMessage(`{"required":["a"]}`))
	require.NoError(t, err)

	res, err := r.Validate(ctx, id, json.RawMessage(`{"a":1}`))
	require.NoError(t, err)
	require.True(t, res.Valid)

	_, _, err = r.Put(ctx, id, json.RawMessage(`{"required":["b"]}`))
	require.NoError(t, err)
	res, err = r.Validate(ctx, id, json.RawMessage(`{"a":1}`))
	require.NoError(t, err)
	assert.Equal(t, []FieldError{{Field: "b", Message: "is required"}}, res.Errors)
}

func TestCacheFollowsOtherWriters(t *testing.T) {
	ctx := t.Context()
	store := NewMemoryStore()
	reader, writer := NewRegistry(store), NewRegistry(store)
	const id = "agentry:test.shared.v1"
	_, _, err := writer.Put(ctx, id, json.RawMessage(`{"required":["a"]}`))
	require.NoError(t, err)
	res, err := reader.Validate(ctx, id, json.RawMessage(`{"a":1}`))
	require.NoError(t, err)
	require.True(t, res.Valid, "reader has compiled and cached version 1")

	t.Run("another process puts a new version", func(t *testing.T) {
		_, _, err := writer.Put(ctx, id, json.RawMessage(`{"required":["b"]}`))
		require.NoError(t, err)
		res, err := reader.Validate(ctx, id, json.RawMessage(`{"a":1}`))
		require.NoError(t, err)
		assert.False(t, res.Valid)
	})

	t.Run("a racing writer reuses the version number", func(t *testing.T) {
		cur, err := store.GetSchema(ctx, id)
		require.NoError(t, err)
		cur.Schema = json.RawMessage(`{"required":["c"]}`)
		require.NoError(t, store.PutSchema(ctx, cur))

		res, err := reader.Validate(ctx, id, json.RawMessage(`{"b":1}`))
		require.NoError(t, err)
		assert.Equal(t, []FieldError{{Field: "c", Message: "is required"}}, res.Errors)
	})

	t.Run("a stored document that does not compile is an error", func(t *testing.T) {
		cur, err := store.GetSchema(ctx, id)
		require.NoError(t, err)
		cur.Schema, cur.Version = json.RawMessage(`{"$ref":"http://169.254.169.254/latest"}`), cur.Version+1
		require.NoError(t, store.PutSchema(ctx, cur))

		_, err = reader.Validate(ctx, id, json.RawMessage(`{}`))
		assert.ErrorIs(t, err, ErrInvalidSchema)
	})
}

func TestCacheIsBounded(t *testing.T) {
	ctx := t.Context()
	r := NewRegistry(NewMemoryStore())
	r.cacheSize = 3
	for i := range 10 {
		id := fmt.Sprintf("acme:bounded.s%d.v1", i)
		_, _, err := r.Put(ctx, id, json.RawMessage(fmt.Sprintf(`{"required":["f%d"]}`, i)))
		require.NoError(t, err)
	}
	for i := range 10 {
		id := fmt.Sprintf("acme:bounded.s%d.v1", i)
		res, err := r.Validate(ctx, id, json.RawMessage(`{}`))
		require.NoError(t, err)
		assert.Equal(t, []FieldError{{Field: fmt.Sprintf("f%d", i), Message: "is required"}}, res.Errors)
		r.mu.RLock()
		n := len(r.cache)
		r.mu.RUnlock()
		assert.LessOrEqual(t, n, 3)
	}
}

// tripwire is an HTTP server that counts requests: schemas refer to it, and
// a refused reference must never reach it.
func tripwire(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"type":"string","definitions":{"x":{"type":"string"}}}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

func TestPutRefusesNonLocalReferences(t *testing.T) {
	base, hits := tripwire(t)
	tests := []struct {
		name, doc, want string
	}{
		{"http", `{"$ref":"` + base + `/s.json"}`, "$ref"},
		{"https", `{"$ref":"https://schemas.example.com/order.json"}`, "$ref"},
		{"http with fragment", `{"$ref":"` + base + `/s.json#/definitions/x"}`, "$ref"},
		{"file", `{"$ref":"file:///etc/passwd"}`, "$ref"},
		{"relative file", `{"$ref":"other.json#/x"}`, "$ref"},
		{"network-path", `{"$ref":"//169.254.169.254/latest/meta-data"}`, "$ref"},
		{"nested in properties", `{"properties":{"a":{"items":{"$ref":"` + base + `/a"}}}}`, `"/properties/a/items"`},
		{"nested in an array keyword", `{"anyOf":[{"type":"string"},{"$ref":"` + base + `/b"}]}`, `"/anyOf/1"`},
		{"relative to a remote $id", `{"$id":"` + base + `/root.json","$ref":"item.json"}`, "$ref"},
		{"$schema elsewhere", `{"$schema":"` + base + `/meta.json"}`, "$schema"},
		{"$schema of another draft", `{"$schema":"http://json-schema.org/draft-04/schema#"}`, "only draft-07"},
		{"$schema not a string", `{"$schema":7}`, "only draft-07"},
	}
	r := NewRegistry(NewMemoryStore())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.Put(t.Context(), "acme:ssrf.probe.v1", json.RawMessage(tt.doc))
			require.ErrorIs(t, err, ErrInvalidSchema)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Zero(t, hits.Load(), "nothing may be fetched")
	all, err := r.List(t.Context())
	require.NoError(t, err)
	assert.Empty(t, all, "nothing refused was stored")
}

func TestLocalReferencesWork(t *testing.T) {
	base, hits := tripwire(t)
	r := NewRegistry(NewMemoryStore())
	const id = "acme:local.refs.v1"
	// An absolute $id is common in published schemas; local fragments
	// resolve against the document itself, never by fetching the $id.
	_, _, err := r.Put(t.Context(), id, json.RawMessage(`{
	  "$id": "`+base+`/order.json",
	  "type": "object",
	  "properties": {"a": {"$ref": "#/definitions/pos"}, "self": {"$ref": "#"}},
	  "definitions": {"pos": {"type": "integer", "minimum": 1}}
	}`))
	require.NoError(t, err)

	res, err := r.Validate(t.Context(), id, json.RawMessage(`{"a":0,"self":{"a":"x"}}`))
	require.NoError(t, err)
	assert.Equal(t, []FieldError{
		{Field: "a", Message: "Must be greater than or equal to 1", Value: json.Number("0")},
		{Field: "self.a", Message: "Invalid type. Expected: integer, given: string", Value: "x"},
	}, res.Errors)
	assert.Zero(t, hits.Load())
}

func TestCompilerNeverFetchesOnItsOwn(t *testing.T) {
	// Bypass the pre-checks: the refusing loader alone must hold.
	base, hits := tripwire(t)
	for _, doc := range []string{
		`{"$ref":"` + base + `/s.json"}`,
		`{"properties":{"a":{"$ref":"` + base + `/s.json#/definitions/x"}}}`,
		`{"$id":"` + base + `/root.json","properties":{"a":{"$ref":"item.json"}}}`,
	} {
		raw := []byte(doc)
		parsed, err := decodeJSON(raw)
		require.NoError(t, err)
		_, err = compileUnchecked(raw, parsed)
		require.ErrorIs(t, err, ErrInvalidSchema, doc)
		assert.Contains(t, err.Error(), "refused")
	}
	assert.Zero(t, hits.Load())
}

func TestPutRefusesBadDocuments(t *testing.T) {
	big := `{"description":"` + strings.Repeat("x", MaxSchemaSize) + `"}`
	tests := []struct {
		name, doc string
		is        error
		want      string
	}{
		{"oversize", big, ErrSchemaTooLarge, "at most 262144"},
		{"empty", ``, ErrInvalidSchema, "not valid JSON"},
		{"not JSON", `{"type":`, ErrInvalidSchema, "not valid JSON"},
		{"trailing data", `{} {}`, ErrInvalidSchema, "not valid JSON"},
		{"not a schema", `"string"`, ErrInvalidSchema, "Invalid type"},
		{"unknown type", `{"type":"nope"}`, ErrInvalidSchema, "type"},
		{"bad keyword value", `{"minLength":-1}`, ErrInvalidSchema, "minLength"},
		{"bad regex", `{"pattern":"("}`, ErrInvalidSchema, "pattern"},
		{"dangling local ref", `{"$ref":"#/definitions/missing"}`, ErrInvalidSchema, "definitions"},
	}
	r := NewRegistry(NewMemoryStore())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.Put(t.Context(), "acme:bad.doc.v1", json.RawMessage(tt.doc))
			require.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), tt.want)
			assert.Less(t, len(err.Error()), 2000, "error messages stay bounded")
		})
	}

	t.Run("exactly the limit is accepted", func(t *testing.T) {
		pad := MaxSchemaSize - len(`{"description":""}`)
		doc := `{"description":"` + strings.Repeat("x", pad) + `"}`
		require.Len(t, doc, MaxSchemaSize)
		_, _, err := r.Put(t.Context(), "acme:big.doc.v1", json.RawMessage(doc))
		require.NoError(t, err)
	})
}

func TestConcurrentValidate(t *testing.T) {
	ctx := t.Context()
	r := newOrderRegistry(t)
	r.cacheSize = 4 // force evictions while validating
	const other = "acme:churn.doc.v1"

	valid := json.RawMessage(`{"order_id":"PO-1","items":[{"sku":"A","price":1}]}`)
	invalid := json.RawMessage(`{"items":[{"sku":"A","price":"1"}],"x":1}`)
	wantInvalid := []FieldError{
		{Field: "items[0].price", Message: "Invalid type. Expected: number, given: string", Value: "1"},
		{Field: "order_id", Message: "is required"},
		{Field: "x", Message: "is not allowed", Value: json.Number("1")},
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				res, err := r.Validate(ctx, orderID, valid)
				if err != nil || !res.Valid {
					errs <- fmt.Errorf("valid payload: %v %+v", err, res) //nolint:errorlint // err may be nil: a message for the log
					return
				}
				res, err = r.Validate(ctx, orderID, invalid)
				if err != nil || res.Valid || !assert.ObjectsAreEqual(wantInvalid, res.Errors) {
					errs <- fmt.Errorf("invalid payload: %v %+v", err, res) //nolint:errorlint // err may be nil: a message for the log
					return
				}
				if g%4 == 0 {
					// Churn: new versions and other ids next to the readers.
					doc := fmt.Sprintf(`{"required":["f%d"]}`, i%3)
					if _, _, err := r.Put(ctx, other, json.RawMessage(doc)); err != nil {
						errs <- err
						return
					}
					if _, err := r.Validate(ctx, other, json.RawMessage(`{}`)); err != nil {
						errs <- err
						return
					}
					id := fmt.Sprintf("acme:churn.n%d.v1", i%8)
					if _, _, err := r.Put(ctx, id, json.RawMessage(`{}`)); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
