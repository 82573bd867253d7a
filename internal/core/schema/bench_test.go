package schema

import (
	"encoding/json"
	"testing"
)

// benchPayload is the draft's A.2 order, reduced to the members the test
// schema allows.
var benchPayload = json.RawMessage(`{
  "order_id": "PO-2025-001234",
  "currency": "USD",
  "items": [
    {"sku": "WIDGET-001", "price": 29.99},
    {"sku": "GADGET-002", "price": 149.99}
  ],
  "meta": {"payment_terms": "NET30", "delivery_date": "2025-08-28"}
}`)

// BenchmarkValidate is the steady state: store read, cache hit, validation.
func BenchmarkValidate(b *testing.B) {
	r := newOrderRegistry(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.Validate(ctx, orderID, benchPayload)
		if err != nil || !res.Valid {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkValidateUncached does the same work with a compile every time,
// so the ratio of the two is what the cache saves.
func BenchmarkValidateUncached(b *testing.B) {
	store := NewMemoryStore()
	r := NewRegistry(store)
	ctx := b.Context()
	if _, _, err := r.Put(ctx, orderID, json.RawMessage(orderSchema)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec, err := store.GetSchema(ctx, orderID)
		if err != nil {
			b.Fatal(err)
		}
		s, err := compile(rec.Schema)
		if err != nil {
			b.Fatal(err)
		}
		res, err := check(s, orderID, benchPayload)
		if err != nil || !res.Valid {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
