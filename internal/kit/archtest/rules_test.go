package archtest

import (
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rooms of the house (shared/ARCHITECTURE.md). Core and use-case
// packages are named one by one: a new package joins a room by being
// added here, deliberately.
var (
	core = []string{
		"internal/core/amtp", "internal/core/workflow", "internal/core/policy",
		"internal/core/schema", "internal/core/signature", "internal/core/ipclass",
		"internal/core/email",
	}
	useCases = []string{"internal/usecase/gateway", "internal/usecase/delivery", "internal/usecase/bridge"}
	// neutral leaves the use cases may import: logctx carries correlation
	// ids in a context and imports only the standard library.
	neutral = []string{"internal/adapter/observe/logctx"}
	// functions are the Lambda bootstraps.
	functions = []string{"functions/api", "functions/deliver", "functions/deadletter"}
)

func ourPath(rel string) string { return module + "/" + rel }

func isOurs(p string) bool { return strings.HasPrefix(p, module+"/") }

// within reports whether p is rel or a package below it.
func within(p, rel string) bool {
	full := ourPath(rel)
	return p == full || strings.HasPrefix(p, full+"/")
}

func oneOf(p string, rels []string) bool {
	for _, r := range rels {
		if p == ourPath(r) {
			return true
		}
	}
	return false
}

// isTestKit: the test kits are named for what they are (awstest,
// lambdatest, gatewaytest, dnstest, jwttest, …), plus coverbin (which
// builds binaries for integration coverage) and the end-to-end tests.
func isTestKit(p string) bool {
	if !isOurs(p) {
		return false
	}
	base := path.Base(p)
	return strings.HasSuffix(base, "test") || within(p, "internal/kit/coverbin") || within(p, "internal/kit/e2e")
}

// isBench: the measuring tool and its cost meter.
func isBench(p string) bool {
	return within(p, "internal/kit/bench") || within(p, "internal/kit/awscost") || within(p, "cmd/agentry-bench")
}

func isAWSSDK(p string) bool { return strings.HasPrefix(p, "github.com/aws/") }

func isNetHTTP(p string) bool { return p == "net/http" || strings.HasPrefix(p, "net/http/") }

func isWithin(prefix string) func(string) bool {
	return func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
}

func anyOf(preds ...func(string) bool) func(string) bool {
	return func(p string) bool {
		for _, f := range preds {
			if f(p) {
				return true
			}
		}
		return false
	}
}

func all(rels []string) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = ourPath(r)
	}
	return out
}

// rule: no package of roots may reach (direct: import itself) a package
// forbid holds for.
type rule struct {
	name   string
	roots  func(g graph) []string
	forbid func(string) bool
	direct bool
}

func fixed(rels []string) func(graph) []string {
	return func(graph) []string { return all(rels) }
}

// production is every package of ours that is neither a kit nor the bench
// (cmd/agentry, the functions, the adapters, the core, infra).
func production(g graph) []string {
	var out []string
	for _, p := range g.ours() {
		if !isTestKit(p) && !isBench(p) {
			out = append(out, p)
		}
	}
	return out
}

var houseRules = []rule{
	{
		name:  "the core imports nothing of ours outside the core, and no AWS SDK",
		roots: fixed(core),
		forbid: anyOf(isAWSSDK, func(p string) bool {
			return isOurs(p) && !oneOf(p, core)
		}),
	},
	{
		// Only the core's own imports: schema's gojsonschema links
		// net/http for its URL loader, which is the library's business.
		name:   "the core does not import net/http (HTTP is the handler's and the adapters' concern)",
		roots:  fixed(core),
		forbid: isNetHTTP,
		direct: true,
	},
	{
		name:  "the use cases import no adapter and no AWS SDK",
		roots: fixed(useCases),
		forbid: anyOf(isAWSSDK, func(p string) bool {
			return isOurs(p) && !oneOf(p, core) && !oneOf(p, useCases) && !oneOf(p, neutral)
		}),
	},
	{
		name:   "production code imports no kit: no test kit, no bench or cost meter",
		roots:  production,
		forbid: anyOf(isTestKit, isBench),
	},
}

// assembly is the one package that wires the gateway's parts together
// (shared/ARCHITECTURE.md, "Runtimes"); wiring is the outbound client,
// DNS discovery and attachment fetching handed to the use cases.
const assembly = "internal/runtime/assemble"

// runtimes are the packages that start a gateway: they call the assembly
// and wire nothing themselves.
func runtimes(g graph) []string {
	var out []string
	for _, p := range production(g) {
		if (within(p, "internal/runtime") || within(p, "cmd") || within(p, "functions")) && !within(p, assembly) {
			out = append(out, p)
		}
	}
	return out
}

var assemblyRule = rule{
	name:  "one assembly function: no runtime but the assembly wires the outbound client, discovery or attachments",
	roots: runtimes,
	forbid: anyOf(isWithin(ourPath("internal/adapter/netguard")), isWithin(ourPath("internal/adapter/discovery")),
		isWithin(ourPath("internal/adapter/attach"))),
	direct: true,
}

var lambdaRule = rule{
	name:  "the Lambda functions link no bench, test kit, template converter, cost meter, embedded store or its importer",
	roots: fixed(functions),
	forbid: anyOf(isTestKit, isBench,
		func(p string) bool {
			return within(p, "internal/kit/cfntemplate") || within(p, "internal/adapter/boltimport") ||
				within(p, "internal/adapter/pebblestore")
		},
		isWithin("go.etcd.io/bbolt"), isWithin("github.com/cockroachdb/pebble/v2")),
}

// violations lists, for each root that breaks r, the offending chain.
func (g graph) violations(r rule) []string {
	var out []string
	for _, root := range r.roots(g) {
		find := g.chain
		if r.direct {
			find = g.direct
		}
		if c := find(root, r.forbid); c != nil {
			out = append(out, short(c))
		}
	}
	return out
}

// checkRule fails t naming every offending import chain.
func checkRule(t *testing.T, g graph, r rule) {
	t.Helper()
	for _, root := range r.roots(g) {
		require.Contains(t, g, root, "rule %q names a package go list does not know: rename it here too", r.name)
	}
	v := g.violations(r)
	assert.Empty(t, v, "house rule broken: %s\noffending import chains:\n  %s", r.name, strings.Join(v, "\n  "))
}

// TestImportRules checks the house rules over the whole module.
func TestImportRules(t *testing.T) {
	g := loadGraph(t, nil, "./...")
	for _, r := range append(houseRules, assemblyRule) {
		t.Run(r.name, func(t *testing.T) { checkRule(t, g, r) })
	}
}

// TestLambdaLinks reads the functions' graph as they are built for
// Lambda (-tags lambda.norpc).
func TestLambdaLinks(t *testing.T) {
	g := loadGraph(t, []string{"-tags", "lambda.norpc"}, "./functions/...")
	checkRule(t, g, lambdaRule)
}
