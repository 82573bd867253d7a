package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agentry/agentry/internal/core/email"
	"github.com/agentry/agentry/internal/core/schema"
)

// Schemas is the schema registry where payloads are validated
// (gateway.SchemaRegistry). Wrapped email carries schema
// agntcy:email.message.v1, which the accept path refuses unless it is
// registered: the bridge registers it before its first wrapped message,
// unless an operator already has (their document then stands).
type Schemas interface {
	Get(ctx context.Context, id string) (schema.Record, error)
	Put(ctx context.Context, id string, doc json.RawMessage) (schema.Record, bool, error)
}

// WrappedSchema is the JSON Schema (draft-07) of agntcy:email.message.v1,
// the payload email.Wrap writes, as docs/email-bridge.md publishes it (a
// test keeps the two equal).
const WrappedSchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["from", "to", "cc", "subject", "text", "html", "in_reply_to", "attachments", "truncated"],
  "definitions": {
    "mailbox": {"type": "object", "required": ["address"],
      "properties": {"name": {"type": "string"}, "address": {"type": "string"}}}
  },
  "properties": {
    "from": {"$ref": "#/definitions/mailbox"},
    "to": {"type": "array", "maxItems": 100, "items": {"$ref": "#/definitions/mailbox"}},
    "cc": {"type": "array", "maxItems": 100, "items": {"$ref": "#/definitions/mailbox"}},
    "subject": {"type": "string"},
    "text": {"type": "string"},
    "html": {"type": "string"},
    "date": {"type": "string", "format": "date-time"},
    "message_id": {"type": "string"},
    "in_reply_to": {"type": "array", "maxItems": 20, "items": {"type": "string"}},
    "attachments": {"type": "array", "maxItems": 100, "items": {"type": "object",
      "required": ["filename", "content_type", "size", "sha256"],
      "properties": {"filename": {"type": "string"}, "content_type": {"type": "string"},
        "size": {"type": "integer", "minimum": 0}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}},
    "truncated": {"type": "boolean"}
  }
}`

// schemaOnce registers the wrapped schema once per process, trying again
// after a failure.
type schemaOnce struct {
	mu   sync.Mutex
	done bool
}

func (o *schemaOnce) ensure(ctx context.Context, s Schemas) error {
	if s == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return nil
	}
	_, err := s.Get(ctx, email.SchemaWrapped)
	if errors.Is(err, schema.ErrNotFound) {
		_, _, err = s.Put(ctx, email.SchemaWrapped, json.RawMessage(WrappedSchema))
	}
	if err != nil {
		return fmt.Errorf("register schema %s: %w", email.SchemaWrapped, err)
	}
	o.done = true
	return nil
}
