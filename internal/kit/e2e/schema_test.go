package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

const orderSchema = `{"type":"object","required":["order_id","items"],"properties":{
 "order_id":{"type":"string"},
 "items":{"type":"array","items":{"type":"object","required":["sku","price"],"properties":{"sku":{"type":"string"},"price":{"type":"number","exclusiveMinimum":0}}}}}}`

func TestSchemaRegistryAndValidation(t *testing.T) {
	bothRuntimes(t, testSchemaRegistryAndValidation)
}

func testSchemaRegistryAndValidation(t *testing.T, onAWS bool) {
	a := startGateway(t, dnstest.Start(t), "a.test", gwOpts{aws: onAWS})
	alice, _ := a.register("alice", "pull", "")
	a.register("bob", "pull", "")
	const id = "agntcy:commerce.order.v2"

	// Registry admin API.
	code, out := call(t, "POST", a.url+"/v1/admin/schemas", alice, map[string]any{"id": id, "schema": rawJSON(orderSchema)})
	assert.Equal(t, http.StatusForbidden, code, "agents do not manage schemas: %v", out)
	code, out = call(t, "POST", a.url+"/v1/admin/schemas", adminKey, map[string]any{"id": id, "schema": rawJSON(orderSchema)})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	code, out = call(t, "POST", a.url+"/v1/admin/schemas", adminKey, map[string]any{"id": "agntcy:bad.v1", "schema": rawJSON(`{"$ref":"https://evil.example/x.json"}`)})
	assert.Equal(t, http.StatusBadRequest, code, "a remote $ref is refused: %v", out)
	code, out = call(t, "GET", a.url+"/v1/admin/schemas", adminKey, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, out["schemas"], 1)
	code, out = call(t, "POST", a.url+"/v1/admin/schemas/"+id+"/validate", adminKey, map[string]any{"order_id": "o1", "items": []any{map[string]any{"sku": "w", "price": -1}}})
	require.Equal(t, http.StatusOK, code, "%v", out)
	assert.Equal(t, false, out["valid"])
	assert.Equal(t, "items[0].price", out["validation_errors"].([]any)[0].(map[string]any)["field"])

	before := a.countMessages()
	send := func(schemaID string, payload any) (int, map[string]any) {
		m := msg("alice@a.test", []string{"bob@a.test"}, payload)
		m["schema"] = schemaID
		return a.send(alice, m)
	}
	// Invalid payload: 400 with the draft's validation_errors, exact paths.
	code, out = send(id, map[string]any{"items": []any{map[string]any{"sku": 7, "price": 0}}})
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	e := out["error"].(map[string]any)
	assert.Equal(t, "SCHEMA_VALIDATION_FAILED", e["code"])
	d := e["details"].(map[string]any)
	assert.Equal(t, id, d["schema"])
	var fields []string
	for _, fe := range d["validation_errors"].([]any) {
		fields = append(fields, str(fe.(map[string]any)["field"]))
	}
	assert.ElementsMatch(t, []string{"order_id", "items[0].sku", "items[0].price"}, fields)
	// Unknown schema: a clear refusal.
	code, out = send("agntcy:commerce.invoice.v1", map[string]any{"x": 1})
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	assert.Contains(t, out["error"].(map[string]any)["message"], "not registered")
	assert.Equal(t, before, a.countMessages(), "refused messages are not stored")

	// Valid payload: accepted and delivered.
	code, out = send(id, map[string]any{"order_id": "o1", "items": []any{map[string]any{"sku": "w", "price": 9.5}}})
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	assert.Equal(t, "passed", a.status(alice, str(out["message_id"]))["schema_validation"])

	// An encrypted payload is carried without validation.
	code, out = send(id, map[string]any{"encrypted": true, "algorithm": "AES-256-GCM", "encrypted_data": "b3BhcXVl",
		"recipients": []any{map[string]any{"keyid": "a.test:k1", "encrypted_key": "a2V5"}}})
	require.Equal(t, http.StatusAccepted, code, "encrypted payloads are not validated: %v", out)
	assert.Equal(t, "skipped (encrypted)", a.status(alice, str(out["message_id"]))["schema_validation"], "the status says so")

	// An agent that declares supported_schemas takes only those (a minor
	// version of a supported major is fine).
	code, out = call(t, "POST", a.url+"/v1/admin/agents", adminKey, map[string]any{"address": "orders", "delivery_mode": "pull", "supported_schemas": []string{"agntcy:commerce.order.v2"}})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	m := msg("alice@a.test", []string{"orders@a.test"}, map[string]any{"n": 1})
	code, out = a.send(alice, m)
	require.Equal(t, http.StatusBadRequest, code, "no schema named: %v", out)
	assert.Equal(t, "SCHEMA_VALIDATION_FAILED", out["error"].(map[string]any)["code"])

	// Deleting the schema makes messages naming it unknown again.
	code, _ = call(t, "DELETE", a.url+"/v1/admin/schemas/"+id, adminKey, nil)
	require.Equal(t, http.StatusNoContent, code)
	code, _ = send(id, map[string]any{"order_id": "o2", "items": []any{}})
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = call(t, "POST", a.url+"/v1/admin/schemas/"+id+"/validate", adminKey, map[string]any{"order_id": "o3"})
	assert.Equal(t, http.StatusNotFound, code, "validating against a deleted schema")
	code, _ = call(t, "DELETE", a.url+"/v1/admin/schemas/"+id, adminKey, nil)
	assert.Equal(t, http.StatusNotFound, code, "deleting twice")
}

// rawJSON embeds a JSON text as itself in a request body.
func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }
