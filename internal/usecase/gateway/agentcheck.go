package gateway

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/ipclass"
)

// This file holds the checks of a registration request.

// Registration bounds.
const (
	maxSupportedSchemas = 64
	maxWebhookURLLen    = 2048
	maxHeaders          = 16
	maxHeaderNameLen    = 64
	maxHeaderValueLen   = 1024
)

// setDelivery checks and sets how ag receives mail: a push agent's
// webhook and its headers; a pull agent has neither.
func (s *Agents) setDelivery(ag *Agent, req RegisterRequest) error {
	target, field := req.WebhookURL, "webhook_url"
	if req.PushTarget != "" {
		if target != "" && target != req.PushTarget {
			return amtp.FieldError("push_target", "push_target and webhook_url name the same webhook; give one of them, or both the same")
		}
		target, field = req.PushTarget, "push_target"
	}
	switch req.DeliveryMode {
	case ModePush:
		if err := s.checkWebhookURL(field, target); err != nil {
			return err
		}
		ag.WebhookURL = target
		h, err := checkHeaders(req.Headers)
		if err != nil {
			return err
		}
		ag.Headers = h
	case ModePull:
		if target != "" {
			return amtp.FieldError(field, "a pull agent has no %s; use delivery_mode push", field)
		}
		if len(req.Headers) > 0 {
			return amtp.FieldError("headers", "headers are sent with webhook calls; a pull agent has none")
		}
	default:
		return amtp.FieldError("delivery_mode", "delivery_mode must be push or pull")
	}
	return nil
}

// checkSchemaPatterns bounds and checks the supported_schemas of a
// registration.
func checkSchemaPatterns(patterns []string) error {
	if len(patterns) > maxSupportedSchemas {
		return amtp.FieldError("supported_schemas", "at most %d schema patterns", maxSupportedSchemas)
	}
	for i, sc := range patterns {
		if !validSchemaPattern(sc) {
			return amtp.FieldError(fmt.Sprintf("supported_schemas[%d]", i), "schema patterns look like agntcy:commerce.* or agntcy:commerce.order.v2")
		}
	}
	return nil
}

// reservedHeaders are what the gateway sets on webhook calls itself, or
// what the HTTP client owns; an agent's custom headers may not name them.
// Authorization is the agent's to choose. X-AMTP-* is reserved as a whole.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "content-encoding": true, "host": true,
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
	"user-agent": true, "connection": true, "transfer-encoding": true, "te": true, "trailer": true,
	"upgrade": true, "keep-alive": true, "proxy-connection": true, "expect": true,
}

// checkHeaders validates a push agent's custom webhook headers and returns
// them to store (nil when there are none).
func checkHeaders(h map[string]string) (map[string]string, error) {
	if len(h) == 0 {
		return nil, nil
	}
	if len(h) > maxHeaders {
		return nil, amtp.FieldError("headers", "at most %d headers", maxHeaders)
	}
	seen := make(map[string]string, len(h))
	out := make(map[string]string, len(h))
	for name, value := range h {
		if name == "" || len(name) > maxHeaderNameLen || !isToken(name) {
			return nil, amtp.FieldError("headers", "header name %q must be 1 to %d letters, digits or !#$%%&'*+-.^_`|~", name, maxHeaderNameLen)
		}
		lower := strings.ToLower(name)
		if reservedHeaders[lower] || strings.HasPrefix(lower, "x-amtp-") {
			return nil, amtp.FieldError("headers", "header %s is set by the gateway and cannot be replaced", name)
		}
		if prev, dup := seen[lower]; dup {
			return nil, amtp.FieldError("headers", "headers %s and %s are the same header", prev, name)
		}
		seen[lower] = name
		if len(value) > maxHeaderValueLen {
			return nil, amtp.FieldError("headers", "the value of header %s is longer than %d bytes", name, maxHeaderValueLen)
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
				return nil, amtp.FieldError("headers", "the value of header %s has a control character (CR, LF, NUL, …)", name)
			}
		}
		out[name] = value
	}
	return out, nil
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validSchemaPattern(p string) bool {
	if p == "" || len(p) > amtp.MaxSchemaLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".-_:/*", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkWebhookURL refuses webhook targets an attacker with the admin key
// could use to reach the gateway's own network, unless insecure mode is on.
// Names are re-checked when the connection is made (see netguard).
// field is the name the caller gave it: webhook_url or push_target.
func (s *Agents) checkWebhookURL(field, raw string) error {
	if raw == "" {
		return amtp.FieldError(field, "a push agent needs a webhook_url (or push_target)")
	}
	if len(raw) > maxWebhookURLLen {
		return amtp.FieldError(field, "%s is longer than %d bytes", field, maxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return amtp.FieldError(field, "%s must be an absolute URL without credentials or fragment", field)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !s.allowInsecure {
			return amtp.FieldError(field, "%s must use https", field)
		}
	default:
		return amtp.FieldError(field, "%s must use https", field)
	}
	if s.allowInsecure {
		return nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return amtp.FieldError(field, "%s must not point at this machine", field)
	}
	if ipclass.NonCanonicalIPv4(host) {
		// Resolvers read such hosts as IPv4 addresses, and no public DNS
		// name looks like one, so no resolution is needed to refuse it.
		return amtp.FieldError(field, "%s must name a host, or an IP address written canonically (a.b.c.d or [IPv6]), not a numeric IPv4 spelling", field)
	}
	if ip, err := netip.ParseAddr(host); err == nil && !ipclass.Public(ip) {
		return amtp.FieldError(field, "%s must not point at a private, loopback, link-local or other non-public address", field)
	}
	return nil
}
