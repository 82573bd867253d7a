package gateway

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Route is what discovery learned about a domain.
type Route struct {
	Domain  string   `json:"domain"`
	Found   bool     `json:"amtp"` // an AMTP record exists
	Gateway string   `json:"gateway,omitempty"`
	Auth    []string `json:"auth,omitempty"`
	MaxSize int64    `json:"max_size,omitempty"`
	Schemas []string `json:"schemas,omitempty"`
	MX      []string `json:"mx,omitempty"` // mail exchangers, by preference, when Found is false
	Invalid string   `json:"invalid,omitempty"`
}

// Discoverer finds where a domain's agents are reached. A returned error
// is transient (retry later); "no AMTP record" is a Route with Found false.
type Discoverer interface {
	Discover(ctx context.Context, domain string) (Route, error)
}

// Directory owns what domains say about themselves: the route this
// gateway advertises (its `_amtp` TXT record, /.well-known/amtp) and what
// discovery finds for other domains. Its only port is the Discoverer.
type Directory struct {
	own      Route
	discover Discoverer // nil: capabilities of other domains unavailable
	log      opsLog
}

// OwnRoute is how this gateway advertises itself.
func (s *Directory) OwnRoute() Route { return s.own }

// TXTRecord is the `_amtp` TXT record value this gateway should publish.
func (s *Directory) TXTRecord() string {
	return TXTRecord(s.own.Gateway, s.own.Auth, s.own.MaxSize)
}

// TXTRecord formats an `_amtp` TXT record value.
func TXTRecord(publicURL string, auth []string, maxSize int64) string {
	var b strings.Builder
	b.WriteString("v=amtp1;gateway=")
	b.WriteString(publicURL)
	if len(auth) > 0 {
		b.WriteString(";auth=")
		b.WriteString(strings.Join(auth, ","))
	}
	b.WriteString(";max-size=")
	b.WriteString(strconv.FormatInt(maxSize, 10))
	return b.String()
}

// Capabilities answers what a domain supports: ours from configuration,
// others from DNS.
func (s *Directory) Capabilities(ctx context.Context, domain string) (Route, error) {
	d, err := amtp.NormalizeDomain(domain)
	if err != nil {
		return Route{}, amtp.Errorf(amtp.CodeInvalidRecipient, "%q is not a domain: %s", domain, err.Error()).WithDetail("field", "domain")
	}
	if d == s.own.Domain {
		return s.OwnRoute(), nil
	}
	if s.discover == nil {
		return Route{}, amtp.Errorf(amtp.CodeTemporaryFailure, "discovery is not configured")
	}
	r, err := s.discover.Discover(ctx, d)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return Route{}, amtp.Errorf(amtp.CodeTemporaryFailure, "discovery cancelled")
		}
		// The lookup's error names our resolver: the (anonymous) caller
		// learns only that the lookup failed, the operator the cause.
		s.log.WarnContext(ctx, "discovery failed", "domain", d, "err", err)
		return Route{}, amtp.Errorf(amtp.CodeTemporaryFailure, "discovery of %s failed; retry later", d)
	}
	return r, nil
}

// DefaultAuthMethods is what a gateway with only agent API keys advertises.
var DefaultAuthMethods = []string{"apikey"}
