package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// Synthesis costs seconds (a jsii/node process behind every call), so
// each test binary synthesizes the two stages once and every test reads
// the results.

func TestMain(m *testing.M) {
	// jsii prints a large banner on Node majors it considers end-of-life
	// unless they are listed here (a list of majors, not a boolean).
	if os.Getenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION") == "" {
		if err := os.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "14,16,18,19,20,21,23"); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// synthesized is one stage's stack: the assertions.Template for CDK's
// matchers and the same template as plain JSON for everything else.
type synthesized struct {
	settings Settings
	stack    awscdk.Stack
	tmpl     assertions.Template
	json     map[string]any
}

var (
	synthOnce           sync.Once
	devStack, prodStack *synthesized
	synthErr            error
	synthTook           time.Duration
)

// placeholderLambdas makes <dir>/<fn>/bootstrap for each function, so the
// stack synthesizes without building the functions.
func placeholderLambdas(dir string) error {
	for _, f := range functionSpecs {
		if err := os.MkdirAll(filepath.Join(dir, f.Name), 0o755); err != nil {
			return err
		}
		// Fixed contents keep the asset hashes stable between runs.
		if err := os.WriteFile(filepath.Join(dir, f.Name, "bootstrap"), []byte("#!/bin/sh\n# placeholder for "+f.Name+"\n"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// devSettings are what `make synth` uses (stage dev, defaults).
func devSettings(lambdaDir string) (Settings, error) {
	return Settings{Stage: "dev", LambdaDir: lambdaDir}.withDefaults()
}

// prodSettings exercise everything optional: a hosted zone (custom
// domain, certificate, records) and an alarm subscription.
func prodSettings(lambdaDir string) (Settings, error) {
	return Settings{
		Stage: "prod", Domain: "example.org", LambdaDir: lambdaDir,
		HostedZoneID: "Z0123456789EXAMPLE", HostedZoneName: "example.org", AlarmEmail: "ops@example.org",
		PolicyFile:  filepath.Join("testdata", "policy.yaml"),
		OAuthIssuer: "https://login.example.org/", OAuthAudience: "https://amtp.example.org",
		MTLSTruststore: "s3://example-org-pki/amtp/truststore.pem",
	}.withDefaults()
}

func synthStack(s Settings) (*synthesized, error) {
	out := &synthesized{settings: s}
	err := catch(func() {
		app := awscdk.NewApp(nil)
		out.stack = NewAgentryStack(app, s.Prefix, &AgentryStackProps{Settings: s})
		out.tmpl = assertions.Template_FromStack(out.stack, nil)
		out.json = *out.tmpl.ToJSON()
	})
	return out, err
}

func stacks(t *testing.T) (*synthesized, *synthesized) {
	t.Helper()
	synthOnce.Do(func() {
		start := time.Now()
		dir, err := os.MkdirTemp("", "agentry-infra-lambdas-")
		if err == nil {
			err = placeholderLambdas(dir)
		}
		var dev, prod Settings
		if err == nil {
			dev, err = devSettings(dir)
		}
		if err == nil {
			prod, err = prodSettings(dir)
		}
		if err == nil {
			devStack, err = synthStack(dev)
		}
		if err == nil {
			prodStack, err = synthStack(prod)
		}
		synthErr = err
		synthTook = time.Since(start)
	})
	if synthErr != nil {
		t.Fatalf("synth: %v", synthErr)
	}
	t.Logf("(both stages synthesized once in %s)", synthTook.Round(time.Millisecond))
	return devStack, prodStack
}

// catch turns a jsii error (a panic in Go) into an error.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// must runs a CDK assertion and reports its failure without stopping
// the test, so one run lists every broken property.
func must(t *testing.T, what string, f func()) {
	t.Helper()
	if err := catch(f); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// resources returns the template's resources of a type, by logical ID.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		rm := r.(map[string]any)
		if rm["Type"] == typ {
			out[id] = rm
		}
	}
	return out
}

// byRole returns the logical ID and resource with agentry:role role.
func (s *synthesized) byRole(t *testing.T, role string) (string, map[string]any) {
	t.Helper()
	var ids []string
	var found map[string]any
	for id, r := range s.json["Resources"].(map[string]any) {
		rm := r.(map[string]any)
		if md, ok := rm["Metadata"].(map[string]any); ok && md["agentry:role"] == role {
			ids = append(ids, id)
			found = rm
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s stack: want one resource with role %s, got %v", s.settings.Stage, role, ids)
	}
	return ids[0], found
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// dig follows keys (strings) and indexes (ints) into decoded JSON.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func keys(m map[string]any) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func getAtt(id, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{id, attr}}
}

func jsonEq(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// literals collects every string in a (possibly intrinsic) value.
func literals(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, literals(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range x {
			if k == "Fn::GetAtt" || k == "Ref" {
				continue // logical IDs, not ARN text
			}
			out = append(out, literals(e)...)
		}
		return out
	}
	return nil
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
