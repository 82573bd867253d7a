package main

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.yaml.in/yaml/v3"

	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// TestSAMTemplateMatchesStack keeps template.yaml (sam local) the same
// deployment as the CDK stack: the same functions with the same handler,
// runtime, architecture, tracing, memory, timeout and environment
// variable names, the same event sources, and — through cfntemplate, as
// they would be created — the same table, queues and bucket.
func TestSAMTemplateMatchesStack(t *testing.T) {
	dev, _ := stacks(t)
	raw, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	sam, err := cfntemplate.FromValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	globals, _ := dig(doc, "Globals", "Function").(map[string]any)

	// SAM logical ID of each resource, by role.
	samRole := map[string]string{}
	for _, id := range sam.LogicalIDs("") {
		if r := sam.Resources[id].Role(); r != "" {
			samRole[r] = id
		}
	}

	for _, f := range functionSpecs {
		samID, ok := samRole[f.Role]
		if !ok {
			t.Errorf("template.yaml has no function with role %s", f.Role)
			continue
		}
		res := sam.Resources[samID]
		if res.Type != "AWS::Serverless::Function" {
			t.Errorf("%s: type %s", samID, res.Type)
			continue
		}
		p := effective(globals, res.Properties)
		_, cdk := dev.byRole(t, f.Role)
		cp := props(cdk)

		for _, c := range []struct {
			what      string
			sam, want any
		}{
			{"Handler", p["Handler"], cp["Handler"]},
			{"Runtime", p["Runtime"], cp["Runtime"]},
			{"Architectures", p["Architectures"], cp["Architectures"]},
			{"Tracing", p["Tracing"], dig(cp, "TracingConfig", "Mode")},
			{"MemorySize", p["MemorySize"], cp["MemorySize"]},
			{"Timeout", p["Timeout"], cp["Timeout"]},
			{"CodeUri", p["CodeUri"], "bin/lambda/" + f.Name + "/"},
			{"FunctionName", p["FunctionName"], map[string]any{"Fn::Sub": "agentry-${Stage}-" + f.Name}},
		} {
			if !jsonEq(c.sam, c.want) {
				t.Errorf("%s %s: template.yaml %v, stack %v", samID, c.what, mustJSON(c.sam), mustJSON(c.want))
			}
		}
		samEnv := keys(dig(p, "Environment", "Variables").(map[string]any))
		cdkEnv := keys(dig(cp, "Environment", "Variables").(map[string]any))
		if !reflect.DeepEqual(samEnv, cdkEnv) {
			t.Errorf("%s environment variables:\n template.yaml %v\n stack         %v", samID, samEnv, cdkEnv)
		}

		// Event sources.
		events, _ := p["Events"].(map[string]any)
		if f.Name == "inbound-email" {
			// The SES receipt rule invokes it: no event source.
			if len(events) != 0 {
				t.Errorf("%s: want no event (the receipt rule invokes it), got %s", samID, mustJSON(events))
			}
			continue
		}
		if len(events) != 1 {
			t.Errorf("%s: want one event, got %d", samID, len(events))
			continue
		}
		var ev map[string]any
		for _, e := range events {
			ev = e.(map[string]any)
		}
		fnID, _ := dev.byRole(t, f.Role)
		switch f.Name {
		case "api":
			if ev["Type"] != "HttpApi" || dig(ev, "Properties", "Path") != nil || dig(ev, "Properties", "PayloadFormatVersion") != "2.0" {
				t.Errorf("Api event: want a catch-all HttpApi event with payload 2.0, got %s", mustJSON(ev))
			}
		case "email-events":
			if ev["Type"] != "SNS" || !jsonEq(dig(ev, "Properties", "Topic"), map[string]any{"Ref": "EmailEventsTopic"}) {
				t.Errorf("%s event: want SNS on EmailEventsTopic, got %s", samID, mustJSON(ev))
			}
		default:
			queueRole := cfntemplate.RoleDeliveryQueue
			if f.Name == "deadletter" {
				queueRole = cfntemplate.RoleDeadLetterQueue
			}
			var mapping map[string]any
			for _, m := range dev.resources("AWS::Lambda::EventSourceMapping") {
				if jsonEq(dig(m, "Properties", "FunctionName"), map[string]any{"Ref": fnID}) {
					mapping = props(m)
				}
			}
			if mapping == nil {
				t.Errorf("stack: no event source mapping for %s", f.Name)
				continue
			}
			ep, _ := ev["Properties"].(map[string]any)
			if ev["Type"] != "SQS" || !jsonEq(ep["Queue"], getAtt(samRole[queueRole], "Arn")) {
				t.Errorf("%s event: want SQS on %s, got %s", samID, samRole[queueRole], mustJSON(ev))
			}
			for _, k := range []string{"BatchSize", "FunctionResponseTypes", "ScalingConfig", "MaximumBatchingWindowInSeconds"} {
				if !jsonEq(ep[k], mapping[k]) {
					t.Errorf("%s event %s: template.yaml %s, stack %s", samID, k, mustJSON(ep[k]), mustJSON(mapping[k]))
				}
			}
		}
	}
	samFns := sam.LogicalIDs("AWS::Serverless::Function")
	if len(samFns) != len(functionSpecs) {
		t.Errorf("template.yaml functions %v, stack has %d", samFns, len(functionSpecs))
	}

	// The stateful resources, as cfntemplate would create them from each.
	cdkTmpl, err := cfntemplate.FromValue(dev.json)
	if err != nil {
		t.Fatal(err)
	}
	opts := cfntemplate.Options{Prefix: dev.settings.Prefix}
	cdkPlan, err := cfntemplate.NewPlan(cdkTmpl, opts)
	if err != nil {
		t.Fatalf("stack plan: %v", err)
	}
	samPlan, err := cfntemplate.NewPlan(sam, opts)
	if err != nil {
		t.Fatalf("template.yaml plan: %v", err)
	}
	roles := func(p *cfntemplate.Plan) []string {
		var r []string
		for _, s := range p.Steps {
			r = append(r, s.Type+" "+s.Role)
		}
		sort.Strings(r)
		return r
	}
	if !reflect.DeepEqual(roles(cdkPlan), roles(samPlan)) {
		t.Errorf("stateful resources:\n template.yaml %v\n stack         %v", roles(samPlan), roles(cdkPlan))
	}
	for _, cs := range cdkPlan.Steps {
		ss, ok := samPlan.Step(cs.Role)
		if !ok {
			continue
		}
		if ss.Name != cs.Name {
			t.Errorf("%s name: template.yaml %s, stack %s", cs.Role, ss.Name, cs.Name)
		}
		if cs.Table != nil {
			a, b := *cs.Table, *ss.Table
			ai, bi := *a.Input, *b.Input
			a.Input, b.Input = nil, nil
			if mustJSON(a) != mustJSON(b) {
				t.Errorf("table TTL/PITR: template.yaml %s, stack %s", mustJSON(b), mustJSON(a))
			}
			ai.AttributeDefinitions, bi.AttributeDefinitions = nil, nil // order-free, compared below
			if mustJSON(ai) != mustJSON(bi) {
				t.Errorf("table:\n template.yaml %s\n stack         %s", mustJSON(bi), mustJSON(ai))
			}
			if mustJSON(sortedJSON(cs.Table.Input.AttributeDefinitions)) != mustJSON(sortedJSON(ss.Table.Input.AttributeDefinitions)) {
				t.Error("table attribute definitions differ")
			}
		}
		if cs.Queue != nil && !reflect.DeepEqual(cs.Queue, ss.Queue) {
			t.Errorf("%s attributes:\n template.yaml %v\n stack         %v", cs.Role, ss.Queue, cs.Queue)
		}
		if cs.StateMachine != nil {
			a, b := cs.StateMachine, ss.StateMachine
			if !jsonEq(jsonValue(t, aws.ToString(a.Definition)), jsonValue(t, aws.ToString(b.Definition))) || a.Type != b.Type {
				t.Errorf("%s definition or type differ:\n template.yaml %s %s\n stack         %s %s", cs.Role, b.Type, aws.ToString(b.Definition), a.Type, aws.ToString(a.Definition))
			}
		}
		if cs.Bucket != nil && mustJSON(cs.Bucket) != mustJSON(ss.Bucket) {
			t.Errorf("bucket:\n template.yaml %s\n stack         %s", mustJSON(ss.Bucket), mustJSON(cs.Bucket))
		}
	}
}

// jsonValue decodes a JSON text for an order-free comparison.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// effective applies SAM's Globals to a function's properties: the
// function's own values win, environment variables merge.
func effective(globals, fn map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range globals {
		out[k] = v
	}
	for k, v := range fn {
		out[k] = v
	}
	vars := map[string]any{}
	for _, src := range []map[string]any{globals, fn} {
		if m, ok := dig(src, "Environment", "Variables").(map[string]any); ok {
			for k, v := range m {
				vars[k] = v
			}
		}
	}
	out["Environment"] = map[string]any{"Variables": vars}
	return out
}
