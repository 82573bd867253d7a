package dynamo

import (
	"testing"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

func TestWebhookStore(t *testing.T) {
	gatewaytest.RunWebhookStore(t, func(t *testing.T) gateway.WebhookStore { return newEnv(t).store(t) })
}
