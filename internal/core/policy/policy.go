package policy

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Policy is a parsed policy file. It is immutable and safe for concurrent
// use; a nil *Policy allows everything.
type Policy struct {
	defaultAllow bool
	rules        []rule
}

type rule struct {
	id         string // name, or "#<index>" for an unnamed rule
	allow      bool
	senders    *addrSet   // nil: any sender
	recipients *addrSet   // nil: any recipient
	schemas    *schemaSet // nil: any schema, or none
	encrypted  *bool      // nil: either
	limit      *Limit
	perDomain  bool
	reason     string
}

// Request is what a decision is about: one sender, one recipient.
// Addresses are canonical (lower-case); Schema is "" when the message has
// none; Encrypted is whether the payload is end-to-end encrypted (§9.3.2).
type Request struct {
	Sender    string
	Recipient string
	Schema    string
	Encrypted bool
}

// Decision is the outcome of Decide.
type Decision struct {
	Allow bool
	// Rule is the index of the deciding rule in the file's rules, counted
	// from 0; -1 when default_policy (or the absence of a policy) decided.
	Rule int
	// Reason is for logs, not for the sender: it names the rule.
	Reason string
	// Limit is the deciding rule's rate limit, nil when it has none (always
	// nil when !Allow). LimitKey names its bucket: the rule and the sender
	// or the sender's domain, as the rule's per says.
	Limit    *Limit
	LimitKey string
}

// Decide applies the first rule that matches req, else default_policy.
func (p *Policy) Decide(req Request) Decision {
	if p == nil {
		return Decision{Allow: true, Rule: -1, Reason: "no policy configured"}
	}
	// Canonical input is promised, but a stray capital must not slip past
	// a deny rule; ToLower does not allocate when there is none.
	sender := strings.ToLower(req.Sender)
	recipient := strings.ToLower(req.Recipient)
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matches(sender, recipient, req.Schema, req.Encrypted) {
			continue
		}
		d := Decision{Allow: r.allow, Rule: i, Reason: r.reason}
		if r.limit != nil {
			l := *r.limit
			d.Limit = &l
			d.LimitKey = r.limitKey(sender)
		}
		return d
	}
	if p.defaultAllow {
		return Decision{Allow: true, Rule: -1, Reason: "no rule matched; default_policy allow"}
	}
	return Decision{Allow: false, Rule: -1, Reason: "no rule matched; default_policy deny"}
}

func (r *rule) matches(sender, recipient, schema string, encrypted bool) bool {
	return (r.encrypted == nil || *r.encrypted == encrypted) &&
		(r.schemas == nil || r.schemas.match(schema)) &&
		(r.senders == nil || r.senders.match(sender)) &&
		(r.recipients == nil || r.recipients.match(recipient))
}

// limitKey names the rule as well as the sender so that two rules limiting
// the same sender count separately. Names cannot contain '/', so the key
// cannot be forged by an address.
func (r *rule) limitKey(sender string) string {
	if r.perDomain {
		_, domain, _ := cutLast(sender, '@')
		return "policy/" + r.id + "/domain/" + domain
	}
	return "policy/" + r.id + "/sender/" + sender
}

// Rules is the number of rules, for logs at load time.
func (p *Policy) Rules() int {
	if p == nil {
		return 0
	}
	return len(p.rules)
}

// DeniedError is the POLICY_DENIED error for a refused request. It tells the
// sender what was refused, never which rule refused it: the policy is the
// operator's business.
func DeniedError(req Request) *amtp.Error {
	return amtp.Errorf(amtp.CodePolicyDenied,
		"the policy of this gateway does not accept messages from %s to %s", req.Sender, req.Recipient).
		WithDetail("recipient", req.Recipient)
}

// RateLimitError is the RATE_LIMIT_EXCEEDED error (429) for a refused token.
// details.retry_after is retryAfter in whole seconds, rounded up and at
// least 1, the unit of an HTTP Retry-After header.
func RateLimitError(retryAfter time.Duration) *amtp.Error {
	secs := RetryAfterSeconds(retryAfter)
	return amtp.Errorf(amtp.CodeRateLimitExceeded, "rate limit exceeded; retry after %d s", secs).
		WithDetail("retry_after", secs)
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1: a Retry-After
// of 0 would invite an immediate retry that is sure to fail.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= time.Second {
		return 1
	}
	return int64(math.Ceil(d.Seconds()))
}

func ruleID(name string, index int) string {
	if name != "" {
		return name
	}
	return "#" + strconv.Itoa(index)
}
