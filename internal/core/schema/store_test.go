package schema_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/schema/schematest"
)

func TestMemoryStoreContract(t *testing.T) {
	schematest.RunStore(t, func(*testing.T) schema.Store { return schema.NewMemoryStore() })
}

func TestMemoryStoreHonoursCancellation(t *testing.T) {
	s := schema.NewMemoryStore()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, s.PutSchema(ctx, schema.Record{ID: "a:b.c.v1"}), context.Canceled)
	_, err := s.GetSchema(ctx, "a:b.c.v1")
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ListSchemas(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.DeleteSchema(ctx, "a:b.c.v1"), context.Canceled)
}
