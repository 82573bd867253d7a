package dynamo

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// TestRateLimitUnderEndlessContention: a bucket whose every write loses
// the race to another caller's is answered with an error after
// maxRateAttempts rounds (the caller then answers "retry"), and a caller
// that gives up meanwhile is answered at once.
func TestRateLimitUnderEndlessContention(t *testing.T) {
	e := newEnv(t)
	limit := policy.Limit{Rate: 10, Per: time.Hour}
	lost := func(in any) error { return awstest.FailCalls(1, putOf(pfxRate, ""), conditionFailed())(in) }

	t.Run("gives up", func(t *testing.T) {
		puts := &awstest.Counted[*dynamodb.PutItemInput]{Rule: lost}
		s := e.faultyStore(t, faults{fail: puts.Fail})
		ok, _, err := s.Allow(ctx(t), gatewaytest.NewID("rl"), limit, time.Now())
		require.ErrorContains(t, err, "lost races in a row")
		assert.False(t, ok)
		assert.Equal(t, int64(maxRateAttempts), puts.Calls())
	})

	t.Run("caller gives up", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		s := e.faultyStore(t, faults{fail: func(in any) error {
			err := lost(in)
			if err != nil {
				cancel()
			}
			return err
		}})
		ok, _, err := s.Allow(c, gatewaytest.NewID("rl"), limit, time.Now())
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, ok)
	})
}
