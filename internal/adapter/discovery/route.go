package discovery

import (
	"context"
	"errors"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Gateway adapts a Resolver to the gateway.Discoverer port: transient DNS
// trouble stays an error (the delivery is retried), while "no record" and
// "invalid record" become a Route that says so (the delivery fails for good).
type Gateway struct {
	Resolver *Resolver
}

// Discover implements gateway.Discoverer.
func (g Gateway) Discover(ctx context.Context, domain string) (gateway.Route, error) {
	res, err := g.Resolver.Lookup(ctx, domain)
	if err != nil {
		if IsTransient(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return gateway.Route{}, err
		}
		return gateway.Route{Domain: domain, Invalid: err.Error()}, nil
	}
	r := gateway.Route{Domain: res.Domain}
	if res.AMTP == nil {
		for _, mx := range res.MX {
			r.MX = append(r.MX, mx.Host)
		}
		return r, nil
	}
	r.Found = true
	r.Gateway = res.AMTP.Gateway
	r.Auth = res.AMTP.Auth
	r.MaxSize = res.AMTP.MaxSize
	r.Schemas = res.AMTP.Schemas
	return r, nil
}

var _ gateway.Discoverer = Gateway{}
