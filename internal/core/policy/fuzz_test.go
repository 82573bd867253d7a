package policy

import (
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"default: allow\n",
		"default_policy: deny\nrules: []\n",
		`version: "1.0"
default_policy: "deny"
rules:
  - sender_pattern: "*.trusted-partner.com"
    action: "allow"
    schemas: ["agntcy:commerce.*"]
  - sender_pattern: "public@anyone.com"
    action: "allow"
    schemas: ["agntcy:public.*"]
    rate_limit: "100/hour"
`,
		`default: allow
rules:
  - name: n1
    action: deny
    senders: ["*", "a@b.example", "*@b.example", "*@*.b.example", "c.example", "*.c.example"]
    recipients: ["x@our.example"]
    schemas: ["*", "agntcy:x.y.v1", "agntcy:*"]
    encrypted: true
  - {action: allow, rate_limit: 5/second, per: domain}
`,
		"default: &a allow\nrules: [{action: *a}]\n",
		"default: allow\n---\ndefault: deny\n",
		"a: &a [*a, *a]\n",
		"? [a]\n: b\n",
		"default: allow\nrules:\n  - <<: {action: allow}\n",
		"default: !!binary aGVsbG8=\n",
		strings.Repeat("[", 200),
		"default: allow\nrules:\n  - {action: allow, senders: [\"a@" + strings.Repeat("x", 300) + ".example\"]}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "a@b.example", "x@our.example", "agntcy:x.y.v1", false)
	}
	f.Fuzz(func(t *testing.T, data []byte, sender, recipient, schema string, encrypted bool) {
		p, err := Parse(data)
		if err != nil {
			if p != nil {
				t.Fatalf("a policy and an error: %v", err)
			}
			if len(err.Error()) > 4096 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		d := p.Decide(Request{Sender: sender, Recipient: recipient, Schema: schema, Encrypted: encrypted})
		if d.Rule < -1 || d.Rule >= p.Rules() {
			t.Fatalf("rule %d of %d", d.Rule, p.Rules())
		}
		if d.Limit != nil {
			if !d.Allow || !d.Limit.Valid() || d.LimitKey == "" {
				t.Fatalf("bad limit in %+v", d)
			}
		}
		if d.Rule == -1 && d.Limit != nil {
			t.Fatalf("the default has no limit: %+v", d)
		}
	})
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/hour", "1/second", "60/minute", "5/day", "1000000000/second", "0/hour", "01/hour",
		"1000000001/day", "99999999999999999999/hour", "-1/hour", "/", "", "1/", "/day", "1/hour/", "１/hour"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseRate(s)
		if err != nil {
			if l != (Limit{}) {
				t.Fatalf("%q: a limit and an error", s)
			}
			return
		}
		if l.Rate < 1 || l.Rate > MaxRate || !l.Valid() {
			t.Fatalf("%q: out of range %+v", s, l)
		}
		if l.String() != s {
			t.Fatalf("%q: String gives %q", s, l.String())
		}
		// The bucket arithmetic is defined for every limit that parses.
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		b := Bucket{}
		for range 3 {
			var ok bool
			var ra time.Duration
			b, ok, ra = Step(b, l, now)
			if !ok && (ra <= 0 || ra > l.Per) {
				t.Fatalf("%q: retryAfter %v", s, ra)
			}
		}
		if fa := b.FullAt(l); fa.Before(now) || fa.After(now.Add(l.Per)) {
			t.Fatalf("%q: FullAt %v", s, fa)
		}
	})
}
