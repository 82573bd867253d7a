package policy_test

import (
	"context"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/core/policy"
)

// The accept path: decide per recipient, refuse with POLICY_DENIED, then
// spend a token of the deciding rule's bucket and refuse with
// RATE_LIMIT_EXCEEDED when it is empty.
func Example() {
	p, err := policy.Parse([]byte(`
default_policy: deny
rules:
  - name: partners
    action: allow
    senders: ["*@*.partner.example"]
    rate_limit: 2/minute
    per: domain
`))
	if err != nil {
		panic(err)
	}
	limiter := policy.NewMemoryLimiter()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

	accept := func(sender string) error {
		req := policy.Request{Sender: sender, Recipient: "orders@our.example"}
		d := p.Decide(req)
		if !d.Allow {
			return policy.DeniedError(req)
		}
		if d.Limit != nil {
			ok, retryAfter, err := limiter.Allow(context.Background(), d.LimitKey, *d.Limit, now)
			if err != nil {
				return err
			}
			if !ok {
				return policy.RateLimitError(retryAfter)
			}
		}
		return nil
	}
	for _, s := range []string{"a@eu.partner.example", "b@eu.partner.example", "c@eu.partner.example", "a@partner.example"} {
		fmt.Printf("%s: %v\n", s, accept(s))
	}
	// Output:
	// a@eu.partner.example: <nil>
	// b@eu.partner.example: <nil>
	// c@eu.partner.example: RATE_LIMIT_EXCEEDED: rate limit exceeded; retry after 30 s
	// a@partner.example: POLICY_DENIED: the policy of this gateway does not accept messages from a@partner.example to orders@our.example
}
