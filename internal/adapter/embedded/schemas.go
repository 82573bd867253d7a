package embedded

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agentry/agentry/internal/core/schema"
)

var _ schema.Store = (*DB)(nil)

// PutSchema creates or replaces a schema record. Like every write it goes
// through the committer, so that the redo log has it.
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
	if err := db.commit.do(func(tx *wtx) error { return tx.Bucket(bucketSchemas).Put([]byte(rec.ID), v) }); err != nil {
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
	var rec schema.Record
	err = db.read(func(r reader) error {
		v := r.bucket(bucketSchemas).Get([]byte(id))
		if v == nil {
			return schema.ErrNotFound
		}
		return json.Unmarshal(v, &rec) // copies: v is only valid in the transaction
	})
	if err != nil {
		return schema.Record{}, fmt.Errorf("get schema %s: %w", id, err)
	}
	return rec, nil
}

// ListSchemas returns every record, ordered by id.
func (db *DB) ListSchemas(ctx context.Context) ([]schema.Record, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	defer release()
	out := []schema.Record{}
	err = db.readLong(func(r reader) error {
		out = out[:0]
		c := r.bucket(bucketSchemas).Cursor()
		for _, v := c.First(); v != nil; _, v = c.Next() {
			var rec schema.Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("corrupt schema record: %w", err)
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
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
	err = db.commit.do(func(tx *wtx) error {
		b := tx.Bucket(bucketSchemas)
		if b.Get([]byte(id)) == nil {
			return schema.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete schema %s: %w", id, err)
	}
	return nil
}
