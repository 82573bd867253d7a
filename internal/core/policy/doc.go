// Package policy is the gateway's access policy (AMTP draft §9.4): which
// senders may send to which local agents, with which schemas, and how fast.
// It parses the operator's YAML file, decides one (sender, recipient) pair
// at a time, and rate-limits with token buckets behind a small Limiter port
// so that the local process (memory) and AWS (DynamoDB) count the same way.
//
// # File format
//
// The draft's example file is accepted as written; the member names follow
// it (version, default_policy, rules, sender_pattern, action, schemas,
// rate_limit) and add what the draft leaves out:
//
//	version: "1.0"             # optional; only 1.x is understood
//	default_policy: deny       # required: allow | deny ("default" is an alias)
//	rules:                     # optional; tried in order, the FIRST match decides
//	  - name: block-evil       # optional; [A-Za-z0-9._-], unique; shown in logs
//	    action: deny           # required: allow | deny
//	    senders: ["*@evil.example", "*@*.evil.example"]
//	  - name: partners
//	    action: allow
//	    senders: ["*.trusted-partner.com"]   # the draft's domain-only form
//	    recipients: ["orders@ourdomain.com"]
//	    schemas: ["agntcy:commerce.*"]
//	    rate_limit: "100/hour"
//	    per: domain            # sender (default) | domain
//	  - action: allow
//	    sender_pattern: "public@anyone.com"  # the draft's single pattern
//	    schemas: ["agntcy:public.*"]
//	    encrypted: true        # only messages whose payload is (not) encrypted
//	    rate_limit: "10/minute"
//
// A rule matches when every condition it has matches; a rule without
// conditions matches everything, so rules after it are refused as
// unreachable. Conditions:
//
//   - senders / recipients: lists of address patterns (the draft's single
//     sender_pattern may be used instead of senders, not with it).
//   - schemas: exact schema ids or prefixes ending in "*" ("*" alone is any
//     schema). A message without a schema never matches a rule that lists
//     schemas: "only these schemas" must not let schemaless messages in.
//   - encrypted: true or false, compared with the payload's encryption.
//
// Address patterns, compared case-insensitively:
//
//	alice@example.com      that address
//	*@example.com          any address at example.com, not at its subdomains
//	*@*.example.com        any address at a subdomain of example.com (any
//	                       depth), not at example.com itself
//	example.com            short for *@example.com
//	*.example.com          short for *@*.example.com (the draft's form)
//	*  (or *@*)            any address
//
// A domain is matched by labels, never by string suffix: *@example.com does
// not match a@evil-example.com. "*" is a wildcard only as a whole local part
// or as the whole first label; anything else with "*" is an error rather
// than a surprise. A domain-only pattern must contain a dot, so that a bare
// agent name ("alice") is reported instead of being read as a domain.
//
// rate_limit is "<N>/<second|minute|hour|day>" with 1 ≤ N ≤ 1e9; it is only
// allowed on allow rules (a deny rule has nothing to count). per chooses the
// bucket: one per sender address (default) or one per sender domain. Each
// rule has its own buckets, keyed by its name or, without one, its index:
// renumbering unnamed rules starts their buckets afresh, so name the rules
// whose counts should survive edits.
//
// Parse is strict: unknown keys, duplicate keys, YAML aliases, more than one
// document, wrong types and invalid patterns are errors naming the line and
// the place ("line 7: rules[2].rate_limit: ..."); indexes count from 0, as in
// Decision.Rule. Sizes are bounded: MaxSize bytes, MaxRules rules and
// MaxPatterns patterns per rule.
//
// # Decisions
//
// Decide is called once per (sender, recipient) pair. The first rule that
// matches decides; when none does, default_policy does. A nil *Policy (no
// policy configured) allows everything without limit. An allowing decision
// may carry a Limit and a bucket key that the caller spends with a Limiter;
// a deny rule stops the search, so it can carve an exception out of a later,
// broader allow.
package policy
