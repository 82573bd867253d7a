package pebblestore

import (
	"testing"

	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// TestDeadLetterStore: records reach the store through the queue's
// DeadLetter, as the worker writes them.
func TestDeadLetterStore(t *testing.T) {
	gatewaytest.RunDeadLetterStore(t, func(t *testing.T) gatewaytest.DeadLetterBackend {
		db := openDB(t, Options{Dir: t.TempDir(), LeaseTimeout: testLease})
		return gatewaytest.DeadLetterBackend{Store: db, Keep: db.DeadLetter}
	})
}

func TestStatusHistory(t *testing.T) { gatewaytest.RunStatusHistory(t, factory) }
