package pebblestore

import (
	"testing"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

func TestWebhookStore(t *testing.T) {
	gatewaytest.RunWebhookStore(t, func(t *testing.T) gateway.WebhookStore {
		return openDB(t, Options{Dir: t.TempDir(), LeaseTimeout: testLease})
	})
}
