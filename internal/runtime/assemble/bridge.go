package assemble

import (
	"fmt"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// inboundBridge is the inbound leg of the SMTP bridge, on the service
// that accepts from agents and other gateways (policy included).
func inboundBridge(cfg config.Config, b Backend, svc *gateway.Service) (*bridge.Bridge, error) {
	from, err := amtp.ParseAddress(cfg.Email.BridgeAddress)
	if err != nil {
		return nil, fmt.Errorf("bridge address: %w", err)
	}
	return bridge.New(bridge.Config{
		Domain: cfg.Domain, Bridge: from, Policy: bridge.Policy(cfg.Email.InboundPolicy),
		MaxRecipients: cfg.MaxRecipients, Logger: b.Logger, Schemas: b.Schemas,
	}, svc.Submission, b.Messages, b.DKIM)
}
