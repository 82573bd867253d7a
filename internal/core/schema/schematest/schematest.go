// Package schematest is the contract every schema.Store adapter must pass,
// so that the embedded store and the AWS ones behave the same.
package schematest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/schema"
)

// RunStore runs the Store contract. newStore must return an empty store
// each time it is called; each subtest calls it once.
func RunStore(t *testing.T, newStore func(t *testing.T) schema.Store) {
	t.Helper()

	// Millisecond UTC times: what the Registry writes and every adapter
	// must give back equal.
	t0 := time.Date(2025, 8, 14, 10, 30, 0, 123_000_000, time.UTC)
	t1 := t0.Add(90 * time.Minute)
	rec := func(id, doc string, version int) schema.Record {
		return schema.Record{ID: id, Schema: []byte(doc), CreatedAt: t0, UpdatedAt: t1, Version: version}
	}
	const (
		idA  = "agntcy:commerce.order.v1"
		idB  = "agntcy:commerce.order.v2.1"
		idC  = "acme:billing.invoice.v3"
		docA = `{"type":"object","required":["order_id"]}`
		docB = `{"type":"object","properties":{"n":{"type":"integer"}}}`
		// The Registry's stored form: compact, HTML-sensitive characters
		// escaped, other non-ASCII as is.
		docC = `{"type":"string","description":"\u003cnaïve \u0026 \u2028 日本\u003e"}`
	)

	t.Run("get missing is ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetSchema(t.Context(), idA)
		require.ErrorIs(t, err, schema.ErrNotFound)
	})

	t.Run("put then get round-trips every field", func(t *testing.T) {
		s := newStore(t)
		want := rec(idA, docA, 1)
		require.NoError(t, s.PutSchema(t.Context(), want))

		got, err := s.GetSchema(t.Context(), idA)
		require.NoError(t, err)
		assertRecord(t, want, got)
	})

	t.Run("put replaces", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutSchema(t.Context(), rec(idA, docA, 1)))
		want := rec(idA, docB, 2)
		want.UpdatedAt = t1.Add(time.Hour)
		require.NoError(t, s.PutSchema(t.Context(), want))

		got, err := s.GetSchema(t.Context(), idA)
		require.NoError(t, err)
		assertRecord(t, want, got)

		all, err := s.ListSchemas(t.Context())
		require.NoError(t, err)
		require.Len(t, all, 1, "a replaced record must not be listed twice")
	})

	t.Run("list", func(t *testing.T) {
		s := newStore(t)
		all, err := s.ListSchemas(t.Context())
		require.NoError(t, err)
		assert.Empty(t, all)

		want := []schema.Record{rec(idA, docA, 1), rec(idB, docB, 4), rec(idC, docC, 2)}
		for _, r := range want {
			require.NoError(t, s.PutSchema(t.Context(), r))
		}
		all, err = s.ListSchemas(t.Context())
		require.NoError(t, err)
		require.Len(t, all, len(want))
		byID := make(map[string]schema.Record, len(all))
		for _, r := range all {
			byID[r.ID] = r
		}
		for _, w := range want {
			got, ok := byID[w.ID]
			if assert.True(t, ok, "missing %s", w.ID) {
				assertRecord(t, w, got)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutSchema(t.Context(), rec(idA, docA, 1)))
		require.NoError(t, s.PutSchema(t.Context(), rec(idC, docC, 1)))

		require.NoError(t, s.DeleteSchema(t.Context(), idA))
		_, err := s.GetSchema(t.Context(), idA)
		require.ErrorIs(t, err, schema.ErrNotFound)
		require.ErrorIs(t, s.DeleteSchema(t.Context(), idA), schema.ErrNotFound, "deleting twice")

		got, err := s.GetSchema(t.Context(), idC)
		require.NoError(t, err, "other records survive")
		assert.Equal(t, idC, got.ID)
		all, err := s.ListSchemas(t.Context())
		require.NoError(t, err)
		require.Len(t, all, 1)
	})

	t.Run("delete missing is ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		require.ErrorIs(t, s.DeleteSchema(t.Context(), idA), schema.ErrNotFound)
	})

	t.Run("records are not shared with the caller", func(t *testing.T) {
		s := newStore(t)
		in := rec(idA, docA, 1)
		require.NoError(t, s.PutSchema(t.Context(), in))
		copy(in.Schema, `XXXX`)

		got, err := s.GetSchema(t.Context(), idA)
		require.NoError(t, err)
		assert.JSONEq(t, docA, string(got.Schema), "mutating the put record changed the store")
		copy(got.Schema, `XXXX`)

		again, err := s.GetSchema(t.Context(), idA)
		require.NoError(t, err)
		assert.JSONEq(t, docA, string(again.Schema), "mutating a got record changed the store")
	})
}

func assertRecord(t *testing.T, want, got schema.Record) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, string(want.Schema), string(got.Schema), "schema bytes must round-trip unchanged")
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt), "created_at: want %v, got %v", want.CreatedAt, got.CreatedAt)
	assert.True(t, want.UpdatedAt.Equal(got.UpdatedAt), "updated_at: want %v, got %v", want.UpdatedAt, got.UpdatedAt)
	assert.Equal(t, want.Version, got.Version)
}
