// Package cfntemplate reads a CloudFormation template — the one `cdk synth`
// writes for Agentry's stack, or the SAM template — for the tests that
// build Agentry's resources in moto from the deployed definitions
// themselves (key schemas, GSIs, TTL, redrive policies, ASL), not from a
// hand-written copy that can drift.
//
// moto's own CloudFormation creates what it can (internal/kit/awstest hands it
// StackTemplate through the SDK's cloudformation client): the DynamoDB
// table (keys, GSIs, billing mode), the SQS queues (every attribute,
// RedrivePolicy included) and the S3 bucket (name, encryption, tags).
// Complete does only what moto 5.2.1's CloudFormation cannot:
//   - AWS::StepFunctions::StateMachine: moto creates it in its plain Step
//     Functions backend, not in the executing one the tests switch on
//     (execute_state_machine), so the SFN API then answers
//     StateMachineDoesNotExist for it; it also ignores
//     DefinitionSubstitutions (the ASL keeps "${DeliveryQueueUrl}").
//     Complete creates the machine with CreateStateMachine, references
//     resolved to the stack's real queue URLs.
//   - properties moto's CloudFormation silently drops: the table's
//     TimeToLiveSpecification and PointInTimeRecoverySpecification (they
//     read back DISABLED), the bucket's PublicAccessBlockConfiguration,
//     LifecycleConfiguration and VersioningConfiguration (they read back
//     as not configured). Complete sets them with the service APIs.
//
// Nothing else of a template is created; references to it resolve to
// plausible placeholder ARNs. (moto's CloudFormation has no model for
// AWS::SecretsManager::Secret, SQS::QueuePolicy, S3::BucketPolicy,
// SNS::TopicPolicy, CloudWatch::Alarm or ApiGatewayV2::*, and the Lambda
// functions need the CDK asset bucket; the tests need none of them.)
//
// NewPlan resolves the same resources without calling AWS, for the infra
// consistency tests (CDK stack vs template.yaml vs awsres).
package cfntemplate

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Metadata keys Agentry's templates carry. The stack tags each resource
// with the role it plays, so that callers find "the delivery queue"
// without knowing CDK's generated logical IDs; the template itself
// records the name prefix its physical names were derived from, so that
// Create can swap it for a per-test prefix.
const (
	MetaRole   = "agentry:role"   // on a resource: one of the Role* values
	MetaPrefix = "agentry:prefix" // on the template: the physical name prefix
	MetaStage  = "agentry:stage"  // on the template: the stage it was synthesized for
)

// Roles of Agentry's resources.
const (
	RoleTable            = "table"
	RoleDeliveryQueue    = "delivery-queue"
	RoleDeadLetterQueue  = "dead-letter-queue"
	RoleBodiesBucket     = "bodies-bucket"
	RoleAdminKeySecret   = "admin-key-secret"
	RoleSigningKeySecret = "signing-key-secret"
	RoleAlarmTopic       = "alarm-topic"
	RoleAPIFunction      = "api-function"
	RoleDeliverFunction  = "deliver-function"
	RoleDeadletterFn     = "deadletter-function"
	RoleCoordination     = "coordination-state-machine"
)

// Resource types Create builds.
const (
	TypeTable        = "AWS::DynamoDB::Table"
	TypeQueue        = "AWS::SQS::Queue"
	TypeBucket       = "AWS::S3::Bucket"
	TypeStateMachine = "AWS::StepFunctions::StateMachine"
)

// Template is the part of a CloudFormation template this package reads.
type Template struct {
	Metadata   map[string]any       `json:"Metadata,omitempty"`
	Parameters map[string]Parameter `json:"Parameters,omitempty"`
	Resources  map[string]*Resource `json:"Resources"`
	Outputs    map[string]any       `json:"Outputs,omitempty"`
}

// Parameter is a template parameter; only its default matters here.
type Parameter struct {
	Type    string `json:"Type"`
	Default any    `json:"Default,omitempty"`
}

// Resource is one entry of Resources.
type Resource struct {
	Type                string         `json:"Type"`
	Properties          map[string]any `json:"Properties,omitempty"`
	Metadata            map[string]any `json:"Metadata,omitempty"`
	DependsOn           any            `json:"DependsOn,omitempty"`
	Condition           string         `json:"Condition,omitempty"`
	DeletionPolicy      string         `json:"DeletionPolicy,omitempty"`
	UpdateReplacePolicy string         `json:"UpdateReplacePolicy,omitempty"`
}

// Role is the agentry:role metadata of the resource, or "".
func (r *Resource) Role() string {
	s, _ := r.Metadata[MetaRole].(string)
	return s
}

// Parse reads a JSON template. (SAM's YAML is decoded by the caller into
// the same generic shape and handed to FromValue.)
func Parse(b []byte) (*Template, error) {
	var t Template
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("cfntemplate: parse: %w", err)
	}
	if len(t.Resources) == 0 {
		return nil, fmt.Errorf("cfntemplate: template has no Resources")
	}
	return &t, nil
}

// FromValue converts a decoded template (e.g. from YAML, written in the
// long form of intrinsic functions) into a Template.
func FromValue(v any) (*Template, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cfntemplate: %w", err)
	}
	return Parse(b)
}

// Load reads a JSON template file.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cfntemplate: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// LogicalIDs returns the logical IDs of resources of type typ (all types
// when typ is empty), sorted.
func (t *Template) LogicalIDs(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if typ == "" || r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// ByRole returns the logical ID of the one resource with that role.
func (t *Template) ByRole(role string) (string, *Resource, error) {
	var found []string
	for _, id := range t.LogicalIDs("") {
		if t.Resources[id].Role() == role {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", nil, fmt.Errorf("cfntemplate: no resource has %s %q", MetaRole, role)
	case 1:
		return found[0], t.Resources[found[0]], nil
	}
	return "", nil, fmt.Errorf("cfntemplate: %d resources have %s %q: %s", len(found), MetaRole, role, strings.Join(found, ", "))
}

// creatable reports whether Create builds resources of this type.
func creatable(typ string) bool {
	switch typ {
	case TypeTable, TypeQueue, TypeBucket, TypeStateMachine:
		return true
	}
	return false
}

// references collects the logical IDs a value refers to through Ref,
// Fn::GetAtt and Fn::Sub.
func references(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, arg := range x {
			switch k {
			case "Ref":
				if s, ok := arg.(string); ok {
					into[s] = true
				}
			case "Fn::GetAtt":
				if id, _, err := getAttArgs(arg); err == nil {
					into[id] = true
				}
			case "Fn::Sub":
				var str string
				switch a := arg.(type) {
				case string:
					str = a
				case []any:
					if len(a) > 0 {
						str, _ = a[0].(string)
					}
					if len(a) > 1 {
						references(a[1], into)
					}
				}
				for _, name := range subVariables(str) {
					into[strings.SplitN(name, ".", 2)[0]] = true
				}
			default:
				references(arg, into)
			}
		}
	case []any:
		for _, e := range x {
			references(e, into)
		}
	}
}

// order returns the creatable resources so that each comes after the
// creatable resources it refers to (the DLQ before the queue whose
// redrive policy names it, queues before a state machine that sends to
// them). Ties are broken by logical ID so runs are repeatable.
func (t *Template) order() ([]string, error) {
	ids := []string{}
	deps := map[string][]string{}
	for _, id := range t.LogicalIDs("") {
		r := t.Resources[id]
		if !creatable(r.Type) {
			continue
		}
		if r.Condition != "" {
			return nil, fmt.Errorf("cfntemplate: %s has Condition %q; conditions are not supported", id, r.Condition)
		}
		ids = append(ids, id)
		refs := map[string]bool{}
		references(r.Properties, refs)
		switch d := r.DependsOn.(type) {
		case string:
			refs[d] = true
		case []any:
			for _, e := range d {
				if s, ok := e.(string); ok {
					refs[s] = true
				}
			}
		}
		for ref := range refs {
			if o, ok := t.Resources[ref]; ok && creatable(o.Type) && ref != id {
				deps[id] = append(deps[id], ref)
			}
		}
		sort.Strings(deps[id])
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(id string, path []string) error
	visit = func(id string, path []string) error {
		switch state[id] {
		case 1:
			return fmt.Errorf("cfntemplate: reference cycle: %s", strings.Join(append(path, id), " → "))
		case 2:
			return nil
		}
		state[id] = 1
		for _, d := range deps[id] {
			if err := visit(d, append(path, id)); err != nil {
				return err
			}
		}
		state[id] = 2
		out = append(out, id)
		return nil
	}
	for _, id := range ids {
		if err := visit(id, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
