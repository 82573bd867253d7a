package dynamo

import (
	"testing"

	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// TestDeadLetterStore: records reach the table through KeepDeadLetter, as
// the dead-letter queue's consumer settles them.
func TestDeadLetterStore(t *testing.T) {
	gatewaytest.RunDeadLetterStore(t, func(t *testing.T) gatewaytest.DeadLetterBackend {
		s := newEnv(t).store(t)
		return gatewaytest.DeadLetterBackend{Store: s, Keep: s.KeepDeadLetter}
	})
}

func TestStatusHistory(t *testing.T) {
	gatewaytest.RunStatusHistory(t, func(t *testing.T) gatewaytest.Backend { return newEnv(t).backend(t) })
}
