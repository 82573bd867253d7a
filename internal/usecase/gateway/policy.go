package gateway

import (
	"context"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
)

// accessPolicy applies the access policy (draft §9.4) to submissions. Its
// port is the policy.Limiter that holds the rate-limit buckets.
type accessPolicy struct {
	rules   *policy.Policy // nil allows everything
	limiter policy.Limiter
	clock   clock
	log     opsLog
}

// active reports whether there is a policy to apply.
func (s *accessPolicy) active() bool { return s.rules != nil }

// policyOutcome is what the access policy says about one message: the
// recipients it refuses (by position) and whether any was refused.
type policyOutcome struct {
	denied []bool
	count  int
	first  policy.Request // the first refused pair, for the error
}

func (o policyOutcome) refuses(i int) bool { return o.denied != nil && o.denied[i] }

// apply decides every (sender, recipient) pair of m and charges one
// token to each distinct bucket the allowing rules name. It runs before the
// payload is validated or anything is looked up, so that a refused or
// throttled sender costs us as little as possible and learns nothing about
// which agents exist.
//
// A message is charged once per bucket, however many of its recipients the
// bucket's rule allowed: the limit is on what a sender submits, and one
// message to ten partners is one submission. A retry of an accepted
// message is charged again (the idempotency record is only read by the
// store's write); the worst that does is answer a retry 429, and the
// message it repeats is already safe.
func (s *accessPolicy) apply(ctx context.Context, m *amtp.Message, encrypted bool) (policyOutcome, error) {
	var out policyOutcome
	if s.rules == nil {
		return out, nil
	}
	sender := m.SenderAddress().Key()
	var (
		limits []policy.Decision
		seen   map[string]bool
	)
	for i, r := range m.RecipientAddresses() {
		req := policy.Request{Sender: sender, Recipient: r.Key(), Schema: m.Schema, Encrypted: encrypted}
		d := s.rules.Decide(req)
		if !d.Allow {
			if out.denied == nil {
				out.denied = make([]bool, len(m.Recipients))
				out.first = policy.Request{Sender: m.Sender, Recipient: r.String(), Schema: m.Schema, Encrypted: encrypted}
			}
			out.denied[i] = true
			out.count++
			s.log.InfoContext(ctx, "policy refused a recipient", "sender", m.Sender, "recipient", r.String(), "reason", d.Reason)
			continue
		}
		if d.Limit == nil || seen[d.LimitKey] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[d.LimitKey] = true
		limits = append(limits, d)
	}
	if out.count == len(m.Recipients) {
		return out, policy.DeniedError(out.first)
	}
	now := s.clock()
	for _, d := range limits {
		ok, retryAfter, err := s.limiter.Allow(ctx, d.LimitKey, *d.Limit, now)
		if err != nil {
			return out, s.log.unavailable("rate limit", err)
		}
		if !ok {
			s.log.InfoContext(ctx, "rate limit reached", "sender", m.Sender, "bucket", d.LimitKey, "limit", d.Limit.String(), "retry_after", retryAfter)
			return out, policy.RateLimitError(retryAfter)
		}
	}
	return out, nil
}

// policyStatus marks a recipient the policy refused. The message says only
// that it was refused, never by which rule.
func policyStatus(st *RecipientStatus) {
	st.Status = StateFailed
	st.ErrorCode = string(amtp.CodePolicyDenied)
	st.ErrorMessage = "the policy of this gateway does not accept this message for " + st.Address
}

// addresses lists the refused recipients for an error's details.
func (o policyOutcome) addresses(m *amtp.Message) []string {
	var out []string
	for i, r := range m.RecipientAddresses() {
		if o.refuses(i) {
			out = append(out, r.String())
		}
	}
	return out
}
