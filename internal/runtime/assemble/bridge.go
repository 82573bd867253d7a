package assemble

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

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

// mxResolver answers whether a domain has mail exchangers, for the email
// fallback (AGENTRY_SMTP_FALLBACK): discovery reports MX hosts only for
// domains without an AMTP record. It asks the configured DNS server.
type mxResolver struct{ r *net.Resolver }

func mailExchangers(cfg config.Config) mxResolver {
	r := &net.Resolver{PreferGo: true}
	if cfg.DNSServer != "" {
		server := cfg.DNSServer
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	return mxResolver{r: r}
}

func (m mxResolver) HasMailExchangers(ctx context.Context, domain string) (bool, error) {
	mx, err := m.r.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up MX of %s: %w", domain, err)
	}
	for _, h := range mx {
		// RFC 7505: a single "." is a null MX, the domain takes no mail.
		if strings.TrimSuffix(h.Host, ".") != "" {
			return true, nil
		}
	}
	return false, nil
}
