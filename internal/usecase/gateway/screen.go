package gateway

import (
	"context"
	"errors"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/schema"
)

// screen applies the access policy and the schema check to anything but
// system mail, and records which recipients the policy refused.
func (s *Submission) screen(ctx context.Context, d *draft) error {
	if d.origin == OriginSystem {
		return nil
	}
	m := d.m
	// Both the policy and the schema check ask whether the payload is
	// encrypted; the answer scans the payload, so it is taken once.
	encrypted := (s.policy.active() || (s.schemas != nil && m.Schema != "")) && amtp.EncryptedPayload(m.Payload)
	pol, err := s.policy.apply(ctx, m, encrypted)
	if err != nil {
		return err
	}
	d.pol = pol
	// A workflow cannot run with a participant it may not ask.
	if pol.count > 0 && len(m.Coordination) > 0 {
		return policy.DeniedError(pol.first)
	}
	return s.checkSchema(ctx, m, encrypted)
}

// checkSchema validates the payload of a message that names a schema
// against the registry: 400 SCHEMA_VALIDATION_FAILED with the draft's
// validation_errors when it does not match, or when this gateway does not
// know the schema (it cannot vouch for what it cannot check).
// encrypted is amtp.EncryptedPayload(m.Payload), taken by the caller.
func (s *Submission) checkSchema(ctx context.Context, m *amtp.Message, encrypted bool) error {
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
		return s.log.unavailable("validate schema", err)
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
