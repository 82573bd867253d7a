package policy_test

import (
	"testing"

	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/policy/policytest"
)

func TestMemoryLimiterContract(t *testing.T) {
	policytest.RunLimiter(t, func(*testing.T) policy.Limiter { return policy.NewMemoryLimiter() })
}

func TestMemoryLimiterSharedContract(t *testing.T) {
	// One limiter for every subtest, as a shared DynamoDB table would be.
	shared := policy.NewMemoryLimiter()
	policytest.RunLimiter(t, func(*testing.T) policy.Limiter { return shared })
}
