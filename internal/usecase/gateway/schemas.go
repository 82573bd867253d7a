package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
)

// Schemas owns the admin API of the schema registry (/v1/admin/schemas):
// register, read, list, delete, and validate a payload without sending
// it. Its port is the SchemaRegistry; checking submitted payloads against
// it is the Submission's.
type Schemas struct {
	registry SchemaRegistry // nil: no registry (validation off)
	log      opsLog
}

// PutSchema registers (create) or replaces a schema document.
func (s *Schemas) PutSchema(ctx context.Context, p Principal, id string, doc json.RawMessage) (schema.Record, bool, error) {
	if err := RequireAdmin(p); err != nil {
		return schema.Record{}, false, err
	}
	if s.registry == nil {
		return schema.Record{}, false, amtp.Errorf(amtp.CodeNotFound, "this gateway has no schema registry")
	}
	rec, created, err := s.registry.Put(ctx, id, doc)
	switch {
	case errors.Is(err, schema.ErrInvalidID):
		return rec, false, amtp.FieldError("id", "%s", err.Error())
	case errors.Is(err, schema.ErrSchemaTooLarge):
		return rec, false, amtp.Errorf(amtp.CodeMessageTooLarge, "%s", err.Error()).WithDetail("max_size", schema.MaxSchemaSize)
	case errors.Is(err, schema.ErrInvalidSchema):
		return rec, false, amtp.FieldError("schema", "%s", err.Error())
	case err != nil:
		return rec, false, s.log.unavailable("put schema", err)
	}
	s.log.InfoContext(ctx, "audit: schema registered", "schema", id, "version", rec.Version, "created", created)
	return rec, created, nil
}

// GetSchema returns one registered schema.
func (s *Schemas) GetSchema(ctx context.Context, p Principal, id string) (schema.Record, error) {
	if err := RequireAdmin(p); err != nil {
		return schema.Record{}, err
	}
	if s.registry == nil {
		return schema.Record{}, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	rec, err := s.registry.Get(ctx, id)
	if notFoundSchema(err) {
		return rec, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	if err != nil {
		return rec, s.log.unavailable("get schema", err)
	}
	return rec, nil
}

// ListSchemas lists the registry.
func (s *Schemas) ListSchemas(ctx context.Context, p Principal) ([]schema.Record, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	if s.registry == nil {
		return []schema.Record{}, nil
	}
	out, err := s.registry.List(ctx)
	if err != nil {
		return nil, s.log.unavailable("list schemas", err)
	}
	return out, nil
}

// DeleteSchema removes a schema; messages naming it are refused afterwards.
func (s *Schemas) DeleteSchema(ctx context.Context, p Principal, id string) error {
	if err := RequireAdmin(p); err != nil {
		return err
	}
	if s.registry == nil {
		return amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	if err := s.registry.Delete(ctx, id); err != nil {
		if notFoundSchema(err) {
			return amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
		}
		return s.log.unavailable("delete schema", err)
	}
	s.log.InfoContext(ctx, "audit: schema deleted", "schema", id)
	return nil
}

// ValidateAgainst checks a payload against a registered schema without
// sending anything (POST /v1/admin/schemas/{id}/validate).
func (s *Schemas) ValidateAgainst(ctx context.Context, p Principal, id string, payload json.RawMessage) (*schema.Result, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	if s.registry == nil {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	res, err := s.registry.Validate(ctx, id, payload)
	if notFoundSchema(err) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	if err != nil {
		return nil, s.log.unavailable("validate", err)
	}
	return res, nil
}

// notFoundSchema: the registry's ways of saying there is no such schema.
func notFoundSchema(err error) bool {
	return errors.Is(err, schema.ErrNotFound) || errors.Is(err, schema.ErrUnknownSchema) || errors.Is(err, schema.ErrInvalidID)
}
