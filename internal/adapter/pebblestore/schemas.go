package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

var _ schema.Store = (*DB)(nil)

func schemaKey(id string) []byte { return append(key(tSchema, len(id)), id...) }

// PutSchema creates or replaces a schema record.
func (db *DB) PutSchema(ctx context.Context, rec schema.Record) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("put schema %s: %w", rec.ID, err)
	}
	defer release()
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("put schema %s: %w", rec.ID, err)
	}
	b := db.pdb.NewBatch()
	_ = b.Set(schemaKey(rec.ID), v, nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("put schema %s: %w", rec.ID, err)
	}
	return nil
}

// GetSchema returns a record matching schema.ErrNotFound for an unknown id.
func (db *DB) GetSchema(ctx context.Context, id string) (schema.Record, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return schema.Record{}, fmt.Errorf("get schema %s: %w", id, err)
	}
	defer release()
	v, err := db.get(schemaKey(id))
	if errors.Is(err, gateway.ErrNotFound) {
		return schema.Record{}, fmt.Errorf("get schema %s: %w", id, schema.ErrNotFound)
	}
	if err != nil {
		return schema.Record{}, fmt.Errorf("get schema %s: %w", id, err)
	}
	var rec schema.Record
	if err := json.Unmarshal(v, &rec); err != nil {
		return schema.Record{}, fmt.Errorf("get schema %s: %w: %v", id, errCorrupt, err)
	}
	return rec, nil
}

// ListSchemas returns every record, ordered by id; one that cannot be
// decoded is logged and left out.
func (db *DB) ListSchemas(ctx context.Context) (out []schema.Record, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tSchema}, []byte{tSchema + 1})
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	defer closeIter(it, &err)
	out = []schema.Record{}
	for ok := it.First(); ok; ok = it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			return nil, fmt.Errorf("list schemas: %w", verr)
		}
		var rec schema.Record
		if jerr := json.Unmarshal(v, &rec); jerr != nil {
			db.corrupt("schema", it.Key(), jerr)
			continue
		}
		out = append(out, rec)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	return out, nil
}

// DeleteSchema removes a record; schema.ErrNotFound for an unknown id.
func (db *DB) DeleteSchema(ctx context.Context, id string) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("delete schema %s: %w", id, err)
	}
	defer release()
	unlock := db.lock("c" + id)
	defer unlock()
	k := schemaKey(id)
	if ok, err := db.has(k); err != nil {
		return fmt.Errorf("delete schema %s: %w", id, err)
	} else if !ok {
		return fmt.Errorf("delete schema %s: %w", id, schema.ErrNotFound)
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(k, nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("delete schema %s: %w", id, err)
	}
	return nil
}
