package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bounds on a policy file. A policy is written by hand; anything near these
// is a mistake or an attack, and they keep Parse and Decide cheap.
const (
	MaxSize     = 1 << 20 // bytes
	MaxRules    = 1000
	MaxPatterns = 1000 // senders + recipients + schemas of one rule
	maxNameLen  = 64
)

// ParseError is a policy file problem with its place: the 1-based line
// (0 when there is none) and the path of the member ("rules[2].rate_limit").
type ParseError struct {
	Line int
	Path string
	Msg  string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func errAt(n *yaml.Node, path, format string, args ...any) *ParseError {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads a policy file; see the package documentation for the format.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxSize {
		return nil, &ParseError{Msg: fmt.Sprintf("the file is %d bytes, more than %d", len(data), MaxSize)}
	}
	root, err := decodeDocument(data)
	if err != nil {
		return nil, err
	}
	return compile(root)
}

func decodeDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{Msg: "the policy is empty; default_policy (allow or deny) is required"}
		}
		return nil, fmt.Errorf("policy: invalid YAML: %w", err)
	}
	// A second document would be silently ignored by a plain Unmarshal:
	// an operator who appended rules after a "---" must hear about it.
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("policy: invalid YAML: %w", err)
	default:
		return nil, errAt(&more, "", "a second YAML document; a policy is a single document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errAt(&doc, "", "the policy is not a single YAML document")
	}
	return doc.Content[0], nil
}

var (
	topKeys  = []string{"version", "default_policy", "default", "rules"}
	ruleKeys = []string{"name", "action", "senders", "sender_pattern", "recipients", "schemas", "encrypted", "rate_limit", "per"}
)

func compile(root *yaml.Node) (*Policy, error) {
	if root.Kind != yaml.MappingNode {
		return nil, errAt(root, "", "the policy must be a mapping with default_policy and rules, got %s", kindName(root))
	}
	top, err := fields(root, "", topKeys)
	if err != nil {
		return nil, err
	}
	if v := top["version"]; v != nil {
		if err := checkVersion(v); err != nil {
			return nil, err
		}
	}
	p := &Policy{}
	if p.defaultAllow, err = parseDefault(root, top); err != nil {
		return nil, err
	}
	rules := top["rules"]
	if rules == nil || isNull(rules) {
		return p, nil
	}
	if rules.Kind != yaml.SequenceNode {
		return nil, errAt(rules, "rules", "want a list of rules, got %s", kindName(rules))
	}
	if len(rules.Content) > MaxRules {
		return nil, errAt(rules, "rules", "%d rules, more than %d", len(rules.Content), MaxRules)
	}
	p.rules = make([]rule, 0, len(rules.Content))
	names := make(map[string]int)
	catchAll := -1
	for i, n := range rules.Content {
		path := "rules[" + strconv.Itoa(i) + "]"
		if catchAll >= 0 {
			return nil, errAt(n, path, "unreachable: rules[%d] has no conditions and matches every message", catchAll)
		}
		r, name, conditions, err := compileRule(n, path, i)
		if err != nil {
			return nil, err
		}
		if name != "" {
			if prev, dup := names[name]; dup {
				return nil, errAt(n, path+".name", "%q is already the name of rules[%d]", name, prev)
			}
			names[name] = i
		}
		if !conditions {
			catchAll = i
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func checkVersion(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return errAt(v, "version", "want a version such as \"1.0\", got %s", kindName(v))
	}
	switch v.ShortTag() {
	case "!!str", "!!int", "!!float":
	default:
		return errAt(v, "version", "want a version such as \"1.0\", got %s", kindName(v))
	}
	major, minor, hasMinor := strings.Cut(v.Value, ".")
	if major != "1" || hasMinor && (minor == "" || !allDigits(minor)) {
		return errAt(v, "version", "%q is not supported; this gateway reads version 1.x policies", clip(v.Value))
	}
	return nil
}

func parseDefault(root *yaml.Node, top map[string]*yaml.Node) (bool, error) {
	n, path := top["default_policy"], "default_policy"
	if alias := top["default"]; alias != nil {
		if n != nil {
			return false, errAt(alias, "default", "default_policy is given too; keep one of them")
		}
		n, path = alias, "default"
	}
	if n == nil {
		return false, errAt(root, "default_policy", "required (allow or deny)")
	}
	return parseAction(n, path)
}

func parseAction(n *yaml.Node, path string) (allow bool, err error) {
	s, err := stringValue(n, path)
	if err != nil {
		return false, err
	}
	switch s {
	case "allow":
		return true, nil
	case "deny":
		return false, nil
	}
	return false, errAt(n, path, "%q is neither allow nor deny", clip(s))
}

// compileRule builds rules[index]. conditions reports whether the rule
// restricts anything, which is how unreachable rules are found.
func compileRule(n *yaml.Node, path string, index int) (r rule, name string, conditions bool, err error) {
	if n.Kind != yaml.MappingNode {
		return r, "", false, errAt(n, path, "want a rule (a mapping with action and conditions), got %s", kindName(n))
	}
	f, err := fields(n, path, ruleKeys)
	if err != nil {
		return r, "", false, err
	}
	if v := f["name"]; v != nil {
		if name, err = parseName(v, path+".name"); err != nil {
			return r, "", false, err
		}
	}
	r.id = ruleID(name, index)
	a := f["action"]
	if a == nil {
		return r, "", false, errAt(n, path+".action", "required (allow or deny)")
	}
	if r.allow, err = parseAction(a, path+".action"); err != nil {
		return r, "", false, err
	}

	if err := checkPatternCount(n, path, f); err != nil {
		return r, "", false, err
	}
	senders := f["senders"]
	if sp := f["sender_pattern"]; sp != nil {
		if senders != nil {
			return r, "", false, errAt(sp, path+".sender_pattern", "senders is given too; put every pattern in senders")
		}
		s, err := stringValue(sp, path+".sender_pattern")
		if err != nil {
			return r, "", false, err
		}
		r.senders = &addrSet{}
		if err := r.senders.add(s); err != nil {
			return r, "", false, errAt(sp, path+".sender_pattern", "%v", err)
		}
	}
	if senders != nil {
		if r.senders, err = addrList(senders, path+".senders", "sender"); err != nil {
			return r, "", false, err
		}
	}
	if v := f["recipients"]; v != nil {
		if r.recipients, err = addrList(v, path+".recipients", "recipient"); err != nil {
			return r, "", false, err
		}
	}
	if v := f["schemas"]; v != nil {
		if r.schemas, err = schemaList(v, path+".schemas"); err != nil {
			return r, "", false, err
		}
	}
	if v := f["encrypted"]; v != nil {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
			return r, "", false, errAt(v, path+".encrypted", "want true or false, got %s", kindName(v))
		}
		// The YAML core schema spells booleans True and TRUE too.
		b, err := strconv.ParseBool(v.Value)
		if err != nil {
			return r, "", false, errAt(v, path+".encrypted", "want true or false, got %q", clip(v.Value))
		}
		r.encrypted = &b
	}
	if err := parseLimit(&r, f, path); err != nil {
		return r, "", false, err
	}

	verb := "denies"
	if r.allow {
		verb = "allows"
	}
	if name != "" {
		r.reason = fmt.Sprintf("%s (%s) %s", path, name, verb)
	} else {
		r.reason = path + " " + verb
	}
	// "*" among the patterns makes the list no condition at all; dropping
	// it lets the unreachable-rule check see that, and skips the lookups.
	if r.senders != nil && r.senders.any {
		r.senders = nil
	}
	if r.recipients != nil && r.recipients.any {
		r.recipients = nil
	}
	conditions = r.senders != nil || r.recipients != nil || r.schemas != nil || r.encrypted != nil
	return r, name, conditions, nil
}

func parseLimit(r *rule, f map[string]*yaml.Node, path string) error {
	rl, per := f["rate_limit"], f["per"]
	if rl == nil {
		if per != nil {
			return errAt(per, path+".per", "only means something with a rate_limit")
		}
		return nil
	}
	if !r.allow {
		return errAt(rl, path+".rate_limit", "a deny rule has nothing to rate-limit; only allow rules take one")
	}
	s, err := stringValue(rl, path+".rate_limit")
	if err != nil {
		return err
	}
	l, err := ParseRate(s)
	if err != nil {
		return errAt(rl, path+".rate_limit", "%v", err)
	}
	r.limit = &l
	if per == nil {
		return nil
	}
	p, err := stringValue(per, path+".per")
	if err != nil {
		return err
	}
	switch p {
	case "sender":
	case "domain":
		r.perDomain = true
	default:
		return errAt(per, path+".per", "%q is neither sender nor domain", clip(p))
	}
	return nil
}

func parseName(n *yaml.Node, path string) (string, error) {
	s, err := stringValue(n, path)
	if err != nil {
		return "", err
	}
	if s == "" || len(s) > maxNameLen {
		return "", errAt(n, path, "must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			// Names end up in rate-limit keys and logs: a restricted
			// alphabet keeps both unambiguous.
			return "", errAt(n, path, "%q: use only letters, digits, '.', '-' and '_'", clip(s))
		}
	}
	return s, nil
}

// checkPatternCount bounds a rule before any pattern is compiled, so an
// oversized rule costs nothing to refuse.
func checkPatternCount(n *yaml.Node, path string, f map[string]*yaml.Node) error {
	total := 0
	for _, k := range []string{"senders", "recipients", "schemas"} {
		if v := f[k]; v != nil && v.Kind == yaml.SequenceNode {
			total += len(v.Content)
		}
	}
	if total > MaxPatterns {
		return errAt(n, path, "%d patterns, more than %d in one rule", total, MaxPatterns)
	}
	return nil
}

func addrList(n *yaml.Node, path, what string) (*addrSet, error) {
	items, err := stringList(n, path, what)
	if err != nil {
		return nil, err
	}
	s := &addrSet{}
	for i, it := range items {
		if err := s.add(it); err != nil {
			return nil, errAt(n.Content[i], path+"["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
	return s, nil
}

func schemaList(n *yaml.Node, path string) (*schemaSet, error) {
	items, err := stringList(n, path, "schema")
	if err != nil {
		return nil, err
	}
	s := &schemaSet{}
	for i, it := range items {
		if err := s.add(it); err != nil {
			return nil, errAt(n.Content[i], path+"["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
	return s, nil
}

// stringList reads a non-empty list of strings. An empty list is refused
// rather than read as "no condition" or "matches nothing": either reading
// would surprise half of the operators who write one.
func stringList(n *yaml.Node, path, what string) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, path, "want a list of patterns, e.g. [\"*@example.com\"], got %s", kindName(n))
	}
	if len(n.Content) == 0 {
		return nil, errAt(n, path, "empty list; leave it out to match any %s", what)
	}
	out := make([]string, len(n.Content))
	for i, it := range n.Content {
		s, err := stringValue(it, path+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func stringValue(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", errAt(n, path, "want a string, got %s", kindName(n))
	}
	return n.Value, nil
}

// fields returns a mapping's values by key, refusing unknown keys (a typo
// must not silently widen a rule) and duplicates (YAML's last-one-wins
// would hide the first). Aliases need no walk of their own: every value is
// read through a kind check, which refuses them where they stand.
func fields(n *yaml.Node, path string, known []string) (map[string]*yaml.Node, error) {
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	keyLine := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, path, "want a key, got %s", kindName(k))
		}
		at := join(path, k.Value)
		if !slices.Contains(known, k.Value) {
			if k.ShortTag() == "!!merge" {
				return nil, errAt(k, at, "merge keys (<<) are not supported")
			}
			return nil, errAt(k, at, "unknown key; known keys are %s", strings.Join(known, ", "))
		}
		if first, dup := keyLine[k.Value]; dup {
			return nil, errAt(k, at, "given twice (first on line %d)", first)
		}
		keyLine[k.Value] = k.Line
		out[k.Value] = v
	}
	return out, nil
}

func join(path, key string) string {
	key = clip(key)
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		// Never needed in a policy, and expanding them is how YAML bombs work.
		return "an alias (*" + clip(n.Value) + "), which policies do not support"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "a number (" + clip(n.Value) + ")"
		case "!!float":
			return "a number (" + clip(n.Value) + ")"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!null":
			return "nothing"
		default:
			return "a " + clip(n.ShortTag()) + " value"
		}
	}
	return "something else"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
