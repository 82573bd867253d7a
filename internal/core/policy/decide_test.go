package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
)

func mustParse(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(src))
	require.NoError(t, err)
	return p
}

// senderOnly builds a policy allowing exactly the senders matched by one
// pattern, so the table below tests the pattern and nothing else.
func senderOnly(t *testing.T, pattern string) *policy.Policy {
	return mustParse(t, "default: deny\nrules:\n  - action: allow\n    senders: [\""+pattern+"\"]\n")
}

func TestAddressPatterns(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"*@example.com",
			[]string{"a@example.com", "B@Example.Com"},
			[]string{"a@evil-example.com", "a@sub.example.com", "a@example.com.evil", "a@example.co", "a@xexample.com", "example.com", ""}},
		{"*@*.example.com",
			[]string{"a@sub.example.com", "a@deep.sub.example.com", "a@SUB.example.com"},
			[]string{"a@example.com", "a@evil-example.com", "a@sub.evil-example.com", "a@subexample.com", "a@sub.example.com.evil"}},
		{"example.com",
			[]string{"a@example.com"},
			[]string{"a@sub.example.com", "a@evil-example.com"}},
		{"*.example.com",
			[]string{"a@sub.example.com"},
			[]string{"a@example.com", "a@evil-example.com"}},
		{"Alice@Example.COM",
			[]string{"alice@example.com", "ALICE@example.com"},
			[]string{"bob@example.com", "alice@sub.example.com", "alice@example.org"}},
		{"*",
			[]string{"a@example.com", "x@y.z", ""},
			nil},
		{"*.com",
			[]string{"a@example.com", "a@b.example.com"},
			[]string{"a@com", "a@example.org"}},
	}
	for _, tc := range cases {
		p := senderOnly(t, tc.pattern)
		for _, s := range tc.match {
			assert.Truef(t, p.Decide(policy.Request{Sender: s, Recipient: "r@our.example"}).Allow, "%q should match %q", tc.pattern, s)
		}
		for _, s := range tc.miss {
			assert.Falsef(t, p.Decide(policy.Request{Sender: s, Recipient: "r@our.example"}).Allow, "%q should not match %q", tc.pattern, s)
		}
	}
}

func TestRecipientPatterns(t *testing.T) {
	p := mustParse(t, `
default: allow
rules:
  - action: deny
    senders: ["*@partner.example"]
    recipients: ["payroll@our.example", "*@*.internal.our.example"]
`)
	cases := []struct {
		sender, recipient string
		allow             bool
	}{
		{"a@partner.example", "payroll@our.example", false},
		{"a@partner.example", "x@hr.internal.our.example", false},
		{"a@partner.example", "orders@our.example", true},
		{"a@other.example", "payroll@our.example", true},
	}
	for _, tc := range cases {
		d := p.Decide(policy.Request{Sender: tc.sender, Recipient: tc.recipient})
		assert.Equal(t, tc.allow, d.Allow, "%s -> %s", tc.sender, tc.recipient)
	}
}

func TestSchemaPatterns(t *testing.T) {
	p := mustParse(t, `
default: deny
rules:
  - action: allow
    schemas: ["agntcy:commerce.*", "agntcy:finance.payment.v1"]
  - name: any-schema
    action: allow
    senders: ["*@friend.example"]
    schemas: ["*"]
`)
	cases := []struct {
		sender, schema string
		rule           int
	}{
		{"a@x.example", "agntcy:commerce.order.v2", 0},
		{"a@x.example", "agntcy:finance.payment.v1", 0},
		{"a@x.example", "agntcy:finance.payment.v10", -1}, // exact means exact
		{"a@x.example", "agntcy:Commerce.order.v2", -1},   // ids are case-sensitive
		{"a@x.example", "agntcy:commerce", -1},            // the prefix ends with the dot
		{"a@x.example", "", -1},                           // schemas never match a schemaless message
		{"a@friend.example", "other:thing", 1},
		{"a@friend.example", "", -1}, // not even "*"
	}
	for _, tc := range cases {
		d := p.Decide(policy.Request{Sender: tc.sender, Recipient: "r@our.example", Schema: tc.schema})
		assert.Equal(t, tc.rule, d.Rule, "%s %q", tc.sender, tc.schema)
		assert.Equal(t, tc.rule >= 0, d.Allow, "%s %q", tc.sender, tc.schema)
	}
}

func TestFirstMatchWins(t *testing.T) {
	p := mustParse(t, `
default_policy: allow
rules:
  - name: block-one
    action: deny
    senders: [mallory@partner.example]
  - action: allow
    senders: ["*@partner.example"]
    rate_limit: 10/minute
  - action: deny
    senders: ["*@*.example"]
`)
	cases := []struct {
		sender string
		allow  bool
		rule   int
		reason string
	}{
		{"mallory@partner.example", false, 0, "rules[0] (block-one) denies"},
		{"alice@partner.example", true, 1, "rules[1] allows"},
		{"eve@x.partner.example", false, 2, "rules[2] denies"},
		{"bob@other.org", true, -1, "no rule matched; default_policy allow"},
	}
	for _, tc := range cases {
		d := p.Decide(policy.Request{Sender: tc.sender, Recipient: "r@our.example"})
		assert.Equal(t, tc.allow, d.Allow, tc.sender)
		assert.Equal(t, tc.rule, d.Rule, tc.sender)
		assert.Equal(t, tc.reason, d.Reason, tc.sender)
		if tc.rule == 1 {
			require.NotNil(t, d.Limit)
			assert.Equal(t, policy.Limit{Rate: 10, Per: time.Minute}, *d.Limit)
		} else {
			assert.Nil(t, d.Limit, tc.sender)
			assert.Empty(t, d.LimitKey, tc.sender)
		}
	}

	deny := mustParse(t, "default: deny\n")
	d := deny.Decide(policy.Request{Sender: "a@b.example", Recipient: "r@our.example"})
	assert.Equal(t, policy.Decision{Allow: false, Rule: -1, Reason: "no rule matched; default_policy deny"}, d)
}

func TestEncryptedCondition(t *testing.T) {
	p := mustParse(t, `
default: allow
rules:
  - action: deny
    senders: ["*@outside.example"]
    encrypted: false
`)
	assert.False(t, p.Decide(policy.Request{Sender: "a@outside.example", Recipient: "r@our.example"}).Allow)
	assert.True(t, p.Decide(policy.Request{Sender: "a@outside.example", Recipient: "r@our.example", Encrypted: true}).Allow)
	assert.True(t, p.Decide(policy.Request{Sender: "a@inside.example", Recipient: "r@our.example"}).Allow)

	for src, want := range map[string]bool{"true": true, "True": true, "TRUE": true, "false": false, "False": false, "FALSE": false} {
		p := mustParse(t, "default: deny\nrules: [{action: allow, encrypted: "+src+"}]\n")
		assert.True(t, p.Decide(policy.Request{Encrypted: want}).Allow, src)
		assert.False(t, p.Decide(policy.Request{Encrypted: !want}).Allow, src)
	}
}

func TestLimitKeys(t *testing.T) {
	p := mustParse(t, `
default: deny
rules:
  - action: allow
    senders: ["*@a.example"]
    rate_limit: 5/second
  - name: per-domain
    action: allow
    senders: ["*@*.b.example"]
    rate_limit: 100/day
    per: domain
  - name: per-sender
    action: allow
    rate_limit: 1/hour
    per: sender
`)
	cases := []struct{ sender, key string }{
		{"x@a.example", "policy/#0/sender/x@a.example"},
		{"X@A.EXAMPLE", "policy/#0/sender/x@a.example"}, // one bucket whatever the case
		{"x@c.b.example", "policy/per-domain/domain/c.b.example"},
		{"y@c.b.example", "policy/per-domain/domain/c.b.example"},
		{"y@d.b.example", "policy/per-domain/domain/d.b.example"},
		{"z@elsewhere.example", "policy/per-sender/sender/z@elsewhere.example"},
	}
	for _, tc := range cases {
		d := p.Decide(policy.Request{Sender: tc.sender, Recipient: "r@our.example"})
		require.True(t, d.Allow, tc.sender)
		require.NotNil(t, d.Limit, tc.sender)
		assert.Equal(t, tc.key, d.LimitKey, tc.sender)
	}
	// The Limit handed out is a copy: a caller cannot change the policy.
	d := p.Decide(policy.Request{Sender: "x@a.example"})
	d.Limit.Rate = 1e6
	assert.Equal(t, 5, p.Decide(policy.Request{Sender: "x@a.example"}).Limit.Rate)
}

func TestDraftExample(t *testing.T) {
	p := mustParse(t, draftExample)
	req := func(sender, schema string) policy.Decision {
		return p.Decide(policy.Request{Sender: sender, Recipient: "r@our.example", Schema: schema})
	}
	assert.True(t, req("a@eu.trusted-partner.com", "agntcy:commerce.order.v2").Allow)
	assert.False(t, req("a@trusted-partner.com", "agntcy:commerce.order.v2").Allow, "*.domain is subdomains only")
	assert.False(t, req("a@eu.trusted-partner.com", "agntcy:public.news.v1").Allow)
	d := req("public@anyone.com", "agntcy:public.news.v1")
	assert.True(t, d.Allow)
	require.NotNil(t, d.Limit)
	assert.Equal(t, policy.Limit{Rate: 100, Per: time.Hour}, *d.Limit)
	assert.Equal(t, "policy/#1/sender/public@anyone.com", d.LimitKey)
	assert.False(t, req("other@anyone.com", "agntcy:public.news.v1").Allow)
}

func TestNilPolicyAllows(t *testing.T) {
	var p *policy.Policy
	d := p.Decide(policy.Request{Sender: "a@b.example", Recipient: "c@d.example"})
	assert.True(t, d.Allow)
	assert.Equal(t, -1, d.Rule)
	assert.Nil(t, d.Limit)
	assert.Zero(t, p.Rules())
}

func TestErrors(t *testing.T) {
	e := policy.DeniedError(policy.Request{Sender: "a@b.example", Recipient: "c@our.example"})
	assert.Equal(t, amtp.CodePolicyDenied, e.Code)
	assert.Equal(t, "the policy of this gateway does not accept messages from a@b.example to c@our.example", e.Message)
	assert.Equal(t, "c@our.example", e.Details["recipient"])

	r := policy.RateLimitError(1500 * time.Millisecond)
	assert.Equal(t, amtp.CodeRateLimitExceeded, r.Code)
	assert.Equal(t, "rate limit exceeded; retry after 2 s", r.Message)
	assert.Equal(t, int64(2), r.Details["retry_after"])

	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, time.Second + 1: 2, time.Hour: 3600} {
		assert.Equal(t, want, policy.RetryAfterSeconds(d), d.String())
	}
}
