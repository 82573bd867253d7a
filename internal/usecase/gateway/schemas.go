package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
)

// checkSchema validates the payload of a message that names a schema
// against the registry: 400 SCHEMA_VALIDATION_FAILED with the draft's
// validation_errors when it does not match, or when this gateway does not
// know the schema (it cannot vouch for what it cannot check).
// encrypted is amtp.EncryptedPayload(m.Payload), taken by the caller.
func (s *Service) checkSchema(ctx context.Context, m *amtp.Message, encrypted bool) error {
	if s.schemas == nil || m.Schema == "" || encrypted {
		return nil
	}
	res, err := s.schemas.Validate(ctx, m.Schema, m.Payload)
	switch {
	case errors.Is(err, schema.ErrUnknownSchema):
		return amtp.Errorf(amtp.CodeSchemaValidationFailed, "schema %s is not registered at this gateway", m.Schema).
			WithDetail("schema", m.Schema).WithDetail("field", "schema")
	case errors.Is(err, schema.ErrInvalidID):
		return amtp.FieldError("schema", "schema %q is not a schema id like agntcy:<domain>.<entity>.v<N>", m.Schema)
	case err != nil:
		return s.unavailable("validate schema", err)
	}
	if ae := res.AMTPError(); ae != nil {
		return ae
	}
	return nil
}

// agentRefuses reports why a local agent that declares supported_schemas
// cannot take m ("" when it can).
func agentRefuses(ag *Agent, m *amtp.Message) string {
	if len(ag.SupportedSchemas) == 0 {
		return ""
	}
	if m.Schema == "" {
		return "agent " + ag.Address + " accepts only messages that name one of its supported schemas"
	}
	if !schema.Supports(ag.SupportedSchemas, m.Schema) {
		return "agent " + ag.Address + " does not support schema " + m.Schema
	}
	return ""
}

// ---- admin API: /v1/admin/schemas ----

// PutSchema registers (create) or replaces a schema document.
func (s *Service) PutSchema(ctx context.Context, p Principal, id string, doc json.RawMessage) (schema.Record, bool, error) {
	if err := RequireAdmin(p); err != nil {
		return schema.Record{}, false, err
	}
	if s.schemas == nil {
		return schema.Record{}, false, amtp.Errorf(amtp.CodeNotFound, "this gateway has no schema registry")
	}
	rec, created, err := s.schemas.Put(ctx, id, doc)
	switch {
	case errors.Is(err, schema.ErrInvalidID):
		return rec, false, amtp.FieldError("id", "%s", err.Error())
	case errors.Is(err, schema.ErrSchemaTooLarge):
		return rec, false, amtp.Errorf(amtp.CodeMessageTooLarge, "%s", err.Error()).WithDetail("max_size", schema.MaxSchemaSize)
	case errors.Is(err, schema.ErrInvalidSchema):
		return rec, false, amtp.FieldError("schema", "%s", err.Error())
	case err != nil:
		return rec, false, s.unavailable("put schema", err)
	}
	s.log.InfoContext(ctx, "audit: schema registered", "schema", id, "version", rec.Version, "created", created)
	return rec, created, nil
}

// GetSchema returns one registered schema.
func (s *Service) GetSchema(ctx context.Context, p Principal, id string) (schema.Record, error) {
	if err := RequireAdmin(p); err != nil {
		return schema.Record{}, err
	}
	if s.schemas == nil {
		return schema.Record{}, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	rec, err := s.schemas.Get(ctx, id)
	if notFoundSchema(err) {
		return rec, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	if err != nil {
		return rec, s.unavailable("get schema", err)
	}
	return rec, nil
}

// ListSchemas lists the registry.
func (s *Service) ListSchemas(ctx context.Context, p Principal) ([]schema.Record, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	if s.schemas == nil {
		return []schema.Record{}, nil
	}
	out, err := s.schemas.List(ctx)
	if err != nil {
		return nil, s.unavailable("list schemas", err)
	}
	return out, nil
}

// DeleteSchema removes a schema; messages naming it are refused afterwards.
func (s *Service) DeleteSchema(ctx context.Context, p Principal, id string) error {
	if err := RequireAdmin(p); err != nil {
		return err
	}
	if s.schemas == nil {
		return amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	if err := s.schemas.Delete(ctx, id); err != nil {
		if notFoundSchema(err) {
			return amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
		}
		return s.unavailable("delete schema", err)
	}
	s.log.InfoContext(ctx, "audit: schema deleted", "schema", id)
	return nil
}

// ValidateAgainst checks a payload against a registered schema without
// sending anything (POST /v1/admin/schemas/{id}/validate).
func (s *Service) ValidateAgainst(ctx context.Context, p Principal, id string, payload json.RawMessage) (*schema.Result, error) {
	if err := RequireAdmin(p); err != nil {
		return nil, err
	}
	if s.schemas == nil {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	res, err := s.schemas.Validate(ctx, id, payload)
	if notFoundSchema(err) {
		return nil, amtp.Errorf(amtp.CodeNotFound, "no schema %s", id)
	}
	if err != nil {
		return nil, s.unavailable("validate", err)
	}
	return res, nil
}

// notFoundSchema: the registry's ways of saying there is no such schema.
func notFoundSchema(err error) bool {
	return errors.Is(err, schema.ErrNotFound) || errors.Is(err, schema.ErrUnknownSchema) || errors.Is(err, schema.ErrInvalidID)
}
