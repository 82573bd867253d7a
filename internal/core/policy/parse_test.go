package policy_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/policy"
)

// draftExample is the draft's §9.4 file, verbatim.
const draftExample = `# amtp-policy.yaml
version: "1.0"
default_policy: "deny"
rules:
  - sender_pattern: "*.trusted-partner.com"
    action: "allow"
    schemas: ["agntcy:commerce.*"]
  - sender_pattern: "public@anyone.com"
    action: "allow"
    schemas: ["agntcy:public.*"]
    rate_limit: "100/hour"
`

func TestParseAccepts(t *testing.T) {
	cases := map[string]string{
		"draft example": draftExample,
		"minimal":       "default: allow\n",
		"null rules":    "default_policy: deny\nrules:\n",
		"empty rules":   "default_policy: deny\nrules: []\n",
		"version 1":     "version: 1\ndefault: allow\n",
		"version 1.0":   "version: 1.0\ndefault: allow\n",
		"version 1.2":   "version: \"1.2\"\ndefault: allow\n",
		"every key": `
default_policy: allow
rules:
  - name: all.keys_1-x
    action: allow
    senders: ["*", "a@b.example", "*@b.example", "*@*.b.example", "c.example", "*.c.example"]
    recipients: ["Orders@Our.Example"]
    schemas: ["*", "agntcy:x.y.v1", "agntcy:*"]
    encrypted: false
    rate_limit: 10/minute
    per: domain
`,
		"flow style": `{default: deny, rules: [{action: allow, senders: ["*@example.com"]}]}`,
		// A catch-all last is the usual way to put a global limit.
		"catch-all last": "default: deny\nrules:\n  - {action: deny, senders: [x@evil.example]}\n  - {action: allow, rate_limit: 1000/day, per: domain}\n",
	}
	for name, src := range cases {
		p, err := policy.Parse([]byte(src))
		require.NoError(t, err, name)
		require.NotNil(t, p, name)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "default: allow\nrules:\n"
	rule := func(body string) string { return head + "  - " + body + "\n" }
	cases := []struct{ name, src, msg string }{
		{"empty", "", "policy: the policy is empty; default_policy (allow or deny) is required"},
		{"comments only", "# nothing\n", "policy: the policy is empty; default_policy (allow or deny) is required"},
		{"null document", "~\n", "policy: line 1: the policy must be a mapping with default_policy and rules, got nothing"},
		{"list document", "- default: allow\n", "policy: line 1: the policy must be a mapping with default_policy and rules, got a list"},
		{"two documents", "default: allow\n---\ndefault: deny\n", "policy: line 2: a second YAML document; a policy is a single document"},
		{"no default", "rules: []\n", "policy: line 1: default_policy: required (allow or deny)"},
		{"both defaults", "default_policy: deny\ndefault: allow\n", "policy: line 2: default: default_policy is given too; keep one of them"},
		{"bad default", "default_policy: permit\n", `policy: line 1: default_policy: "permit" is neither allow nor deny`},
		{"default not string", "default_policy: true\n", "policy: line 1: default_policy: want a string, got a boolean (true)"},
		{"default case", "default: Allow\n", `policy: line 1: default: "Allow" is neither allow nor deny`},
		{"unknown top key", "default: allow\nrule: []\n", "policy: line 2: rule: unknown key; known keys are version, default_policy, default, rules"},
		{"duplicate top key", "default: allow\nrules: []\nrules: []\n", "policy: line 3: rules: given twice (first on line 2)"},
		{"version 2", "version: \"2.0\"\ndefault: allow\n", `policy: line 1: version: "2.0" is not supported; this gateway reads version 1.x policies`},
		{"version 1.x", "version: 1.x\ndefault: allow\n", `policy: line 1: version: "1.x" is not supported; this gateway reads version 1.x policies`},
		{"version list", "version: [1]\ndefault: allow\n", `policy: line 1: version: want a version such as "1.0", got a list`},
		{"rules mapping", "default: allow\nrules: {a: 1}\n", "policy: line 2: rules: want a list of rules, got a mapping"},
		{"rule scalar", head + "  - allow\n", "policy: line 3: rules[0]: want a rule (a mapping with action and conditions), got a string"},
		{"no action", rule("{senders: [a@b.example]}"), "policy: line 3: rules[0].action: required (allow or deny)"},
		{"bad action", rule("{action: accept}"), `policy: line 3: rules[0].action: "accept" is neither allow nor deny`},
		{"unknown rule key", head + "  - action: allow\n    sender: a@b.example\n",
			"policy: line 4: rules[0].sender: unknown key; known keys are name, action, senders, sender_pattern, recipients, schemas, encrypted, rate_limit, per"},
		{"duplicate rule key", head + "  - action: allow\n    action: deny\n", "policy: line 4: rules[0].action: given twice (first on line 3)"},
		{"senders not list", rule(`{action: allow, senders: "*@b.example"}`),
			`policy: line 3: rules[0].senders: want a list of patterns, e.g. ["*@example.com"], got a string`},
		{"senders empty", rule("{action: allow, senders: []}"), "policy: line 3: rules[0].senders: empty list; leave it out to match any sender"},
		{"recipients empty", rule("{action: allow, recipients: []}"), "policy: line 3: rules[0].recipients: empty list; leave it out to match any recipient"},
		{"schemas null", rule("{action: allow, schemas: }"), `policy: line 3: rules[0].schemas: want a list of patterns, e.g. ["*@example.com"], got nothing`},
		{"pattern not string", rule("{action: allow, senders: [a@b.example, 7]}"), "policy: line 3: rules[0].senders[1]: want a string, got a number (7)"},
		{"sender_pattern and senders", rule("{action: allow, sender_pattern: a@b.example, senders: [c@d.example]}"),
			"policy: line 3: rules[0].sender_pattern: senders is given too; put every pattern in senders"},
		{"bare name", rule("{action: allow, senders: [alice]}"),
			`policy: line 3: rules[0].senders[0]: "alice" is neither an address nor a domain with a dot: write name@domain, *@domain or *.domain`},
		{"bad sender_pattern", rule("{action: allow, sender_pattern: alice}"),
			`policy: line 3: rules[0].sender_pattern: "alice" is neither an address nor a domain with a dot: write name@domain, *@domain or *.domain`},
		{"partial local glob", rule(`{action: allow, senders: ["bot*@b.example"]}`),
			`policy: line 3: rules[0].senders[0]: "bot*@b.example": * is only allowed as the whole local part (*@domain)`},
		{"inner domain glob", rule(`{action: allow, senders: ["*@a.*.example"]}`),
			`policy: line 3: rules[0].senders[0]: "*@a.*.example": * is only allowed as the whole first label of a domain (*.example.com)`},
		{"any-domain glob", rule(`{action: allow, recipients: ["alice@*"]}`),
			`policy: line 3: rules[0].recipients[0]: "alice@*": * is only allowed as the whole first label of a domain (*.example.com)`},
		{"named subdomain glob", rule(`{action: allow, senders: ["alice@*.b.example"]}`),
			`policy: line 3: rules[0].senders[0]: "alice@*.b.example": a subdomain wildcard needs * as the local part (*@*.domain)`},
		{"glob without domain", rule(`{action: allow, senders: ["*."]}`), `policy: line 3: rules[0].senders[0]: "*.": domain is empty`},
		{"ip domain", rule(`{action: allow, senders: ["a@192.168.0.1"]}`), `policy: line 3: rules[0].senders[0]: "a@192.168.0.1": IP-address domains are not accepted`},
		{"bad local part", rule(`{action: allow, senders: ["a..b@x.example"]}`),
			`policy: line 3: rules[0].senders[0]: address "a..b@x.example": local-part has an empty dot-separated part`},
		{"empty local part", rule(`{action: allow, senders: ["@x.example"]}`), `policy: line 3: rules[0].senders[0]: address "@x.example": local-part is empty`},
		{"unicode domain", rule(`{action: allow, senders: ["*@bücher.example"]}`),
			`policy: line 3: rules[0].senders[0]: "*@bücher.example": domain must be ASCII (use the IDNA A-label form, xn--)`},
		{"schema inner glob", rule(`{action: allow, schemas: ["agntcy:*.v1"]}`), `policy: line 3: rules[0].schemas[0]: "agntcy:*.v1": * is only allowed at the end`},
		{"schema bad char", rule(`{action: allow, schemas: ["agntcy:a b"]}`),
			`policy: line 3: rules[0].schemas[0]: "agntcy:a b": schema ids use only letters, digits and . - _ : /`},
		{"schema not id", rule(`{action: allow, schemas: ["commerce.order"]}`),
			`policy: line 3: rules[0].schemas[0]: "commerce.order": not a schema id (namespace:name, e.g. agntcy:commerce.order.v2); end it with * for a prefix`},
		{"encrypted string", rule(`{action: allow, encrypted: "true"}`), "policy: line 3: rules[0].encrypted: want true or false, got a string"},
		{"rate on deny", head + "  - action: deny\n    rate_limit: 10/hour\n",
			"policy: line 4: rules[0].rate_limit: a deny rule has nothing to rate-limit; only allow rules take one"},
		{"bad rate", head + "  - action: allow\n    senders: [a@b.example]\n    rate_limit: 100/fortnight\n",
			`policy: line 5: rules[0].rate_limit: invalid rate limit "100/fortnight": unit "fortnight" is not one of second, minute, hour, day`},
		{"zero rate", rule("{action: allow, rate_limit: 0/hour}"),
			`policy: line 3: rules[0].rate_limit: invalid rate limit "0/hour": count is 0; use action: deny to refuse everything`},
		{"overflowing rate", rule("{action: allow, rate_limit: 18446744073709551616/hour}"),
			`policy: line 3: rules[0].rate_limit: invalid rate limit "18446744073709551616/hour": count 18446744073709551616 is larger than 1000000000`},
		{"rate as number", rule("{action: allow, rate_limit: 100}"), "policy: line 3: rules[0].rate_limit: want a string, got a number (100)"},
		{"per alone", rule("{action: allow, per: sender}"), "policy: line 3: rules[0].per: only means something with a rate_limit"},
		{"bad per", rule("{action: allow, rate_limit: 1/hour, per: recipient}"), `policy: line 3: rules[0].per: "recipient" is neither sender nor domain`},
		{"bad name", rule(`{name: "a/b", action: allow}`), `policy: line 3: rules[0].name: "a/b": use only letters, digits, '.', '-' and '_'`},
		{"empty name", rule(`{name: "", action: allow}`), "policy: line 3: rules[0].name: must be 1 to 64 characters"},
		{"duplicate name", head + "  - {name: p, action: allow, senders: [a@b.example]}\n  - {name: p, action: deny, senders: [c@b.example]}\n",
			`policy: line 4: rules[1].name: "p" is already the name of rules[0]`},
		{"unreachable", head + "  - {action: allow, senders: [a@b.example]}\n  - {action: deny}\n  - {action: allow, senders: [c@b.example]}\n",
			"policy: line 5: rules[2]: unreachable: rules[1] has no conditions and matches every message"},
		{"star is no condition", head + "  - {action: allow, senders: [\"*\"], recipients: [\"*@*\"]}\n  - {action: deny}\n",
			"policy: line 4: rules[1]: unreachable: rules[0] has no conditions and matches every message"},
		{"alias", "default: &d allow\nrules:\n  - action: *d\n", "policy: line 3: rules[0].action: want a string, got an alias (*d), which policies do not support"},
		{"alias list", "default: allow\nx: &l [a@b.example]\n", "policy: line 2: x: unknown key; known keys are version, default_policy, default, rules"},
		{"alias in list", "default: allow\nrules:\n  - {action: allow, senders: &l [a@b.example]}\n  - {action: allow, recipients: *l}\n",
			`policy: line 4: rules[1].recipients: want a list of patterns, e.g. ["*@example.com"], got an alias (*l), which policies do not support`},
		{"merge key", "default: allow\nrules:\n  - <<: {action: allow}\n", "policy: line 3: rules[0].<<: merge keys (<<) are not supported"},
		{"complex key", "? [a]\n: b\n", "policy: line 1: want a key, got a list"},
		{"custom tag", "default: !secret allow\n", "policy: line 1: default: want a string, got a !secret value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tc.src))
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Equal(t, tc.msg, err.Error())
			var pe *policy.ParseError
			assert.True(t, errors.As(err, &pe), "a *ParseError")
		})
	}
}

func TestParseInvalidYAML(t *testing.T) {
	for _, src := range []string{"default: [\n", "\tdefault: allow\n", "a: b: c\n", "default: allow\n---\n[\n"} {
		_, err := policy.Parse([]byte(src))
		require.Error(t, err, src)
		assert.True(t, strings.HasPrefix(err.Error(), "policy: invalid YAML: "), err.Error())
	}
}

func TestParseBounds(t *testing.T) {
	big := make([]byte, policy.MaxSize+1)
	_, err := policy.Parse(big)
	assert.EqualError(t, err, fmt.Sprintf("policy: the file is %d bytes, more than %d", policy.MaxSize+1, policy.MaxSize))

	var b strings.Builder
	b.WriteString("default: deny\nrules:\n")
	for i := range policy.MaxRules + 1 {
		fmt.Fprintf(&b, "  - {action: allow, senders: [a%d@b.example]}\n", i)
	}
	_, err = policy.Parse([]byte(b.String()))
	assert.EqualError(t, err, "policy: line 3: rules: 1001 rules, more than 1000")

	p, err := policy.Parse([]byte(b.String()[:strings.LastIndex(b.String()[:b.Len()-1], "\n")+1]))
	require.NoError(t, err, "exactly MaxRules rules")
	assert.Equal(t, policy.MaxRules, p.Rules())

	patterns := func(n int) string {
		var s strings.Builder
		s.WriteString("default: deny\nrules:\n  - action: allow\n    senders:\n")
		for i := range n - 1 {
			fmt.Fprintf(&s, "      - a%d@b.example\n", i)
		}
		s.WriteString("    schemas: [\"agntcy:*\"]\n")
		return s.String()
	}
	_, err = policy.Parse([]byte(patterns(policy.MaxPatterns)))
	require.NoError(t, err, "exactly MaxPatterns patterns")
	_, err = policy.Parse([]byte(patterns(policy.MaxPatterns + 1)))
	assert.EqualError(t, err, "policy: line 3: rules[0]: 1001 patterns, more than 1000 in one rule")
}

func TestParseErrorWithoutPlace(t *testing.T) {
	assert.Equal(t, "policy: broken", (&policy.ParseError{Msg: "broken"}).Error())
	assert.Equal(t, "policy: rules: broken", (&policy.ParseError{Path: "rules", Msg: "broken"}).Error())
}

// TestDocExample keeps the package documentation's example file honest.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var src strings.Builder
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		body, indented := strings.CutPrefix(line, "//\t")
		if !in && indented && strings.HasPrefix(body, "version:") {
			in = true
		}
		if in {
			if !indented {
				break
			}
			src.WriteString(body + "\n")
		}
	}
	require.NotEmpty(t, src.String(), "example not found in doc.go")
	p, err := policy.Parse([]byte(src.String()))
	require.NoError(t, err, src.String())
	assert.Equal(t, 3, p.Rules())

	d := p.Decide(policy.Request{Sender: "x@eu.trusted-partner.com", Recipient: "orders@ourdomain.com", Schema: "agntcy:commerce.order.v1"})
	assert.True(t, d.Allow)
	assert.Equal(t, "policy/partners/domain/eu.trusted-partner.com", d.LimitKey)
	assert.False(t, p.Decide(policy.Request{Sender: "x@mail.evil.example", Recipient: "orders@ourdomain.com"}).Allow)
	assert.True(t, p.Decide(policy.Request{Sender: "public@anyone.com", Recipient: "a@ourdomain.com", Schema: "agntcy:public.x", Encrypted: true}).Allow)
}
