package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"time"
)

// ErrNotFound is what a Store returns, possibly wrapped, for an id it does
// not hold (the Registry adds the id to the message). Every adapter must return an error matching it with errors.Is,
// because the Registry tells "unknown schema" from a failing store by it.
var ErrNotFound = errors.New("schema: record not found")

// Record is one registered schema document.
type Record struct {
	ID        string          `json:"id"`
	Schema    json.RawMessage `json:"schema"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Version starts at 1 and grows by one on every change of Schema.
	Version int `json:"version"`
}

// Store persists Records. Implementations are dumb key-value maps: the
// Registry does all checking and versioning.
//
// Contract (schematest.RunStore checks it):
//   - PutSchema creates or replaces the record with rec.ID as given.
//   - GetSchema and DeleteSchema return an error matching ErrNotFound when
//     the id is absent.
//   - ListSchemas returns every record, in any order; none is an empty or
//     nil slice.
//   - Schema bytes round-trip unchanged: the Registry's cache and its
//     no-op detection compare them byte for byte. The Registry writes
//     compact JSON with <, >, & escaped, which survives json.Marshal of
//     the whole Record; storing it as a parsed document would not.
//   - Times round-trip at least to the millisecond.
//   - Records handed in or out are not retained by reference.
type Store interface {
	PutSchema(ctx context.Context, rec Record) error
	GetSchema(ctx context.Context, id string) (Record, error)
	ListSchemas(ctx context.Context) ([]Record, error)
	DeleteSchema(ctx context.Context, id string) error
}

// MemoryStore is a Store in process memory, for tests and single-process
// setups that need no durability.
type MemoryStore struct {
	mu   sync.RWMutex
	recs map[string]Record
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{recs: make(map[string]Record)}
}

var _ Store = (*MemoryStore)(nil)

// PutSchema implements Store.
func (s *MemoryStore) PutSchema(ctx context.Context, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec.Schema = bytes.Clone(rec.Schema)
	s.mu.Lock()
	s.recs[rec.ID] = rec
	s.mu.Unlock()
	return nil
}

// GetSchema implements Store.
func (s *MemoryStore) GetSchema(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	s.mu.RLock()
	rec, ok := s.recs[id]
	s.mu.RUnlock()
	if !ok {
		return Record{}, ErrNotFound
	}
	rec.Schema = bytes.Clone(rec.Schema)
	return rec, nil
}

// ListSchemas implements Store; the result is sorted by ID.
func (s *MemoryStore) ListSchemas(ctx context.Context) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := make([]Record, 0, len(s.recs))
	for _, rec := range s.recs {
		rec.Schema = bytes.Clone(rec.Schema)
		out = append(out, rec)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteSchema implements Store.
func (s *MemoryStore) DeleteSchema(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[id]; !ok {
		return ErrNotFound
	}
	delete(s.recs, id)
	return nil
}
