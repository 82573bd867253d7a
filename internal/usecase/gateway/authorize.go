package gateway

import (
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// CheckEnvelope refuses a submission that p may not make, from its sender
// and recipients alone, before the rest of the message has been read. It
// answers nil when the envelope is allowed or cannot be judged (addresses
// that do not parse, too many recipients: Accept reports those with the
// field they concern).
func (s *Submission) CheckEnvelope(p Principal, sender string, recipients []string) error {
	from, err := amtp.ParseAddress(sender)
	if err != nil || len(recipients) == 0 || len(recipients) > s.maxRecipients {
		return nil //nolint:nilerr // Accept reports these with their field
	}
	to := make([]amtp.Address, 0, len(recipients))
	for _, r := range recipients {
		a, err := amtp.ParseAddress(r)
		if err != nil {
			return nil //nolint:nilerr // Accept reports it with its field
		}
		to = append(to, a)
	}
	_, err = s.authorizeEnvelope(p, from, to)
	return err
}

// authorizeEnvelope decides where a submission comes from, and refuses
// one p may not make: an agent sends only as itself, the admin only as an
// address of ours, and a caller without credentials is another domain's
// gateway handing us mail for our own domain.
func (s *Submission) authorizeEnvelope(p Principal, sender amtp.Address, recipients []amtp.Address) (Origin, error) {
	switch p.Kind {
	case AgentCaller:
		if sender.Key() != strings.ToLower(p.Agent.Address) {
			return "", amtp.Errorf(amtp.CodeSenderCredentialMismatch, "the key presented belongs to %s, which may only send as itself, not as %s", p.Agent.Address, sender).WithDetail("field", "sender")
		}
		return OriginLocal, nil
	case AdminCaller:
		if !s.site.isLocal(sender) {
			return "", amtp.Errorf(amtp.CodeForbidden, "the admin may only send as an address of %s", s.site.domain).WithDetail("field", "sender")
		}
		return OriginLocal, nil
	}
	// Anything else is either an unauthenticated local sender or an
	// attempt to use us as an open relay.
	if s.site.isLocal(sender) {
		return "", amtp.Errorf(amtp.CodeLocalSenderAuthRequired, "sending as %s needs that agent's API key", sender).WithDetail("field", "sender")
	}
	if err := s.checkPeer(p, sender); err != nil {
		return "", err
	}
	for i, r := range recipients {
		if !s.site.isLocal(r) {
			return "", amtp.Errorf(amtp.CodeForbidden, "this gateway does not relay: %s is not in %s", r, s.site.domain).WithDetail("field", fmt.Sprintf("recipients[%d]", i))
		}
	}
	return OriginRemote, nil
}

// checkPeer checks the transport identity of another domain's gateway
// when peers must use mutual TLS: the verified client certificate must
// name the sender's domain (or be a wildcard for it), so that a gateway
// with a certificate for its own domain cannot deliver mail claiming to
// come from another.
func (s *Submission) checkPeer(p Principal, sender amtp.Address) error {
	if !s.requirePeerMTLS {
		return nil
	}
	if len(p.PeerNames) == 0 {
		return amtp.Errorf(amtp.CodeAuthenticationRequired, "this gateway requires mutual TLS from other gateways: present a client certificate for %s", sender.Domain)
	}
	for _, n := range p.PeerNames {
		if certNameMatches(strings.ToLower(strings.TrimSuffix(n, ".")), sender.Domain) {
			return nil
		}
	}
	return amtp.Errorf(amtp.CodeForbidden, "the client certificate does not name %s, the sender's domain", sender.Domain).WithDetail("field", "sender")
}

// certNameMatches is the usual host-name rule: exact, or "*." matching
// exactly one label.
func certNameMatches(name, domain string) bool {
	if name == domain {
		return true
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		_, parent, found := strings.Cut(domain, ".")
		return found && parent == rest
	}
	return false
}
