package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// flakySchemas is a schema store whose every call fails while down is set.
type flakySchemas struct {
	schema.Store
	down bool
}

func (f *flakySchemas) PutSchema(ctx context.Context, rec schema.Record) error {
	if f.down {
		return errBackend
	}
	return f.Store.PutSchema(ctx, rec)
}

func (f *flakySchemas) GetSchema(ctx context.Context, id string) (schema.Record, error) {
	if f.down {
		return schema.Record{}, errBackend
	}
	return f.Store.GetSchema(ctx, id)
}

func (f *flakySchemas) ListSchemas(ctx context.Context) ([]schema.Record, error) {
	if f.down {
		return nil, errBackend
	}
	return f.Store.ListSchemas(ctx)
}

func (f *flakySchemas) DeleteSchema(ctx context.Context, id string) error {
	if f.down {
		return errBackend
	}
	return f.Store.DeleteSchema(ctx, id)
}

const orderSchema = `{"type":"object","required":["sku"],"properties":{"sku":{"type":"string"}}}`

// schemaWorld is a flakyWorld whose schema registry is on a flakySchemas.
func schemaWorld(t *testing.T) (*flakyWorld, *flakySchemas) {
	t.Helper()
	store := &flakySchemas{}
	w := newFlakyWorld(t, func(_ *gateway.Config, p *gateway.Ports) {
		store.Store = p.Messages.(*flakyDB).DB
		p.Schemas = schema.NewRegistry(store)
	})
	return w, store
}

// TestSchemaAdminIsForTheAdmin: every call of the schema admin API
// refuses the anonymous caller and agents.
func TestSchemaAdminIsForTheAdmin(t *testing.T) {
	w, _ := schemaWorld(t)
	ctx := context.Background()
	calls := map[string]func(p gateway.Principal) error{
		"put": func(p gateway.Principal) error {
			_, _, err := w.svc.PutSchema(ctx, p, "agntcy:shop.order.v1", json.RawMessage(orderSchema))
			return err
		},
		"get":    func(p gateway.Principal) error { _, err := w.svc.GetSchema(ctx, p, "agntcy:shop.order.v1"); return err },
		"list":   func(p gateway.Principal) error { _, err := w.svc.ListSchemas(ctx, p); return err },
		"delete": func(p gateway.Principal) error { return w.svc.DeleteSchema(ctx, p, "agntcy:shop.order.v1") },
		"validate": func(p gateway.Principal) error {
			_, err := w.svc.ValidateAgainst(ctx, p, "agntcy:shop.order.v1", json.RawMessage(`{}`))
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			requireCode(t, call(gateway.Principal{Kind: gateway.Anonymous}), amtp.CodeAuthenticationRequired)
			requireCode(t, call(w.as(t, "alice")), amtp.CodeForbidden)
		})
	}
}

// TestSchemaAdminLifecycle: register, replace, read, list, validate
// against and delete a schema, with the refusals of each step.
func TestSchemaAdminLifecycle(t *testing.T) {
	w, _ := schemaWorld(t)
	ctx := context.Background()
	const id = "agntcy:shop.order.v1"

	for _, tc := range []struct {
		name  string
		id    string
		doc   string
		code  amtp.Code
		field string
	}{
		{"invalid id", "Shop Order", orderSchema, amtp.CodeInvalidMessageFormat, "id"},
		{"too large", id, `{"description":"` + strings.Repeat("x", schema.MaxSchemaSize) + `"}`, amtp.CodeMessageTooLarge, ""},
		{"not a JSON Schema", id, `{"type":42}`, amtp.CodeInvalidMessageFormat, "schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := w.svc.PutSchema(ctx, admin, tc.id, json.RawMessage(tc.doc))
			requireCode(t, err, tc.code)
			if tc.field != "" {
				e, _ := amtp.AsError(err)
				assert.Equal(t, tc.field, e.Details["field"])
			}
		})
	}
	list, err := w.svc.ListSchemas(ctx, admin)
	require.NoError(t, err)
	assert.Empty(t, list, "nothing refused was stored")

	rec, created, err := w.svc.PutSchema(ctx, admin, id, json.RawMessage(orderSchema))
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, 1, rec.Version)
	rec, created, err = w.svc.PutSchema(ctx, admin, id, json.RawMessage(`{"type":"object","required":["sku","qty"]}`))
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, 2, rec.Version)

	got, err := w.svc.GetSchema(ctx, admin, id)
	require.NoError(t, err)
	assert.Equal(t, 2, got.Version)
	assert.JSONEq(t, `{"type":"object","required":["sku","qty"]}`, string(got.Schema))
	list, err = w.svc.ListSchemas(ctx, admin)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0].ID)

	res, err := w.svc.ValidateAgainst(ctx, admin, id, json.RawMessage(`{"sku":"a","qty":1}`))
	require.NoError(t, err)
	assert.True(t, res.Valid)
	res, err = w.svc.ValidateAgainst(ctx, admin, id, json.RawMessage(`{"sku":"a"}`))
	require.NoError(t, err)
	assert.False(t, res.Valid)
	assert.NotEmpty(t, res.Errors)

	for _, missing := range []string{"agntcy:shop.refund.v1", "not an id"} {
		_, err = w.svc.GetSchema(ctx, admin, missing)
		requireCode(t, err, amtp.CodeNotFound)
		_, err = w.svc.ValidateAgainst(ctx, admin, missing, json.RawMessage(`{}`))
		requireCode(t, err, amtp.CodeNotFound)
		requireCode(t, w.svc.DeleteSchema(ctx, admin, missing), amtp.CodeNotFound)
	}

	require.NoError(t, w.svc.DeleteSchema(ctx, admin, id))
	_, err = w.svc.GetSchema(ctx, admin, id)
	requireCode(t, err, amtp.CodeNotFound)
	requireCode(t, w.svc.DeleteSchema(ctx, admin, id), amtp.CodeNotFound)
}

// TestSchemaAdminWithoutRegistry: with validation off there is no schema
// to show, store or validate against.
func TestSchemaAdminWithoutRegistry(t *testing.T) {
	w := newFlakyWorld(t, nil)
	ctx := context.Background()
	const id = "agntcy:shop.order.v1"
	_, _, err := w.svc.PutSchema(ctx, admin, id, json.RawMessage(orderSchema))
	requireCode(t, err, amtp.CodeNotFound)
	_, err = w.svc.GetSchema(ctx, admin, id)
	requireCode(t, err, amtp.CodeNotFound)
	requireCode(t, w.svc.DeleteSchema(ctx, admin, id), amtp.CodeNotFound)
	_, err = w.svc.ValidateAgainst(ctx, admin, id, json.RawMessage(`{}`))
	requireCode(t, err, amtp.CodeNotFound)
	list, err := w.svc.ListSchemas(ctx, admin)
	require.NoError(t, err)
	assert.NotNil(t, list)
	assert.Empty(t, list)
}

// TestSchemaStoreFailures: a schema store that is down makes every use of
// the registry, the accept path's check included, a retryable failure.
func TestSchemaStoreFailures(t *testing.T) {
	w, store := schemaWorld(t)
	ctx := context.Background()
	const id = "agntcy:shop.order.v1"
	_, _, err := w.svc.PutSchema(ctx, admin, id, json.RawMessage(orderSchema))
	require.NoError(t, err)
	alice := w.as(t, "alice")
	store.down = true
	defer func() { store.down = false }()
	for name, call := range map[string]func() error{
		"put": func() error {
			_, _, err := w.svc.PutSchema(ctx, admin, id, json.RawMessage(`{"type":"object"}`))
			return err
		},
		"get":      func() error { _, err := w.svc.GetSchema(ctx, admin, id); return err },
		"list":     func() error { _, err := w.svc.ListSchemas(ctx, admin); return err },
		"delete":   func() error { return w.svc.DeleteSchema(ctx, admin, id) },
		"validate": func() error { _, err := w.svc.ValidateAgainst(ctx, admin, id, json.RawMessage(`{}`)); return err },
		"accept": func() error {
			_, err := w.svc.Accept(ctx, alice, []byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"schema":"`+id+`","payload":{"sku":"a"}}`))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			requireCode(t, err, amtp.CodeTemporaryFailure)
			assert.NotContains(t, err.Error(), "10.1.2.3")
		})
	}
}

// TestAcceptChecksSchemas: a message naming a schema is validated against
// the registry, and an agent that declares supported_schemas only takes
// messages naming one of them.
func TestAcceptChecksSchemas(t *testing.T) {
	w, _ := schemaWorld(t)
	ctx := context.Background()
	_, _, err := w.svc.PutSchema(ctx, admin, "agntcy:shop.order.v1", json.RawMessage(orderSchema))
	require.NoError(t, err)
	_, err = w.svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "orders", DeliveryMode: gateway.ModePull, SupportedSchemas: []string{"agntcy:shop.*"}})
	require.NoError(t, err)
	alice := w.as(t, "alice")
	send := func(to, schemaField, payload string) error {
		body := `{"version":"1.0","sender":"alice@example.org","recipients":["` + to + `@example.org"],` + schemaField + `"payload":` + payload + `}`
		_, err := w.svc.Accept(ctx, alice, []byte(body))
		return err
	}
	for _, tc := range []struct {
		name, to, schema, payload string
		code                      amtp.Code // "" = accepted
		field                     string
	}{
		{"valid", "orders", `"schema":"agntcy:shop.order.v1",`, `{"sku":"a"}`, "", ""},
		{"does not match", "bob", `"schema":"agntcy:shop.order.v1",`, `{"qty":1}`, amtp.CodeSchemaValidationFailed, ""},
		{"not registered", "bob", `"schema":"agntcy:shop.refund.v1",`, `{}`, amtp.CodeSchemaValidationFailed, "schema"},
		{"not a registry id", "bob", `"schema":"Acme:Shop/Order",`, `{}`, amtp.CodeInvalidMessageFormat, "schema"},
		{"agent takes only named schemas", "orders", ``, `{}`, amtp.CodeSchemaValidationFailed, ""},
		{"agent does not take this schema", "orders", `"schema":"agntcy:travel.trip.v1",`, `{}`, amtp.CodeSchemaValidationFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "agent does not take this schema" {
				_, _, err := w.svc.PutSchema(ctx, admin, "agntcy:travel.trip.v1", json.RawMessage(`{"type":"object"}`))
				require.NoError(t, err)
			}
			err := send(tc.to, tc.schema, tc.payload)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			requireCode(t, err, tc.code)
			if tc.field != "" {
				e, _ := amtp.AsError(err)
				assert.Equal(t, tc.field, e.Details["field"])
			}
		})
	}
}
