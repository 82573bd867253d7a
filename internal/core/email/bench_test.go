package email_test

import (
	"bytes"
	"testing"

	"github.com/agentry/agentry/internal/core/email"
)

const benchPayload = `{"order_id":"PO-2025-001234","customer":{"company_name":"Retailer Corp","billing_address":{"street":"123 Business Ave","city":"Commerce City","country":"US"}},"items":[{"sku":"WIDGET-001","quantity":100,"unit_price":29.99},{"sku":"GADGET-002","quantity":50,"unit_price":149.99}],"total_amount":10498.5,"currency":"USD"}`

func BenchmarkRender(b *testing.B) {
	m, raw := amtpMessage(b, "Purchase Order PO-2025-001234", benchPayload)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := email.Render(m, raw, recipient, options); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	m, raw := amtpMessage(b, "Purchase Order PO-2025-001234", benchPayload)
	out, err := email.Render(m, raw, recipient, options)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := email.Parse(bytes.NewReader(out), email.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
