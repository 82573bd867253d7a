package cfntemplate

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Options say where and under which names resources are created.
type Options struct {
	// Prefix replaces the template's name prefix (agentry:prefix) in
	// every physical name; empty keeps the template's names.
	Prefix string
	// Region and Account are used for ARNs of resources that are never
	// created (roles, functions) and for predictions before creation.
	// Defaults: the SDK configuration's region (else us-east-1) and
	// moto's default account.
	Region  string
	Account string
	// Parameters override template parameter defaults.
	Parameters map[string]string
}

// DefaultAccount is the account moto (and LocalStack) report by default.
const DefaultAccount = "123456789012"

func (o Options) withDefaults() Options {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = DefaultAccount
	}
	return o
}

// Step is one resource to create, its definition fully resolved.
type Step struct {
	LogicalID string
	Type      string
	Role      string
	Name      string

	Table        *TableSpec
	Queue        map[string]string // SQS attributes for CreateQueue
	Bucket       *BucketSpec
	StateMachine *sfn.CreateStateMachineInput
}

// TableSpec is a table: CreateTable, then what CreateTable cannot set.
type TableSpec struct {
	Input               *dynamodb.CreateTableInput
	TTL                 *ddbtypes.TimeToLiveSpecification
	PointInTimeRecovery bool
}

// BucketSpec is a bucket and the configuration set after creating it.
type BucketSpec struct {
	Encryption        *s3types.ServerSideEncryptionConfiguration
	PublicAccessBlock *s3types.PublicAccessBlockConfiguration
	Lifecycle         *s3types.BucketLifecycleConfiguration
	Versioning        s3types.BucketVersioningStatus
}

// Plan is the ordered list of resources Create would make.
type Plan struct {
	Prefix string
	Steps  []Step
}

// Step returns the step for a role.
func (p *Plan) Step(role string) (Step, bool) {
	for _, s := range p.Steps {
		if s.Role == role {
			return s, true
		}
	}
	return Step{}, false
}

// NewPlan resolves the template's stateful resources without calling
// AWS: what Create would do, with predicted ARNs and queue URLs. The
// consistency tests compare plans of the CDK and SAM templates, and of
// the CDK template with awsres's definitions.
func NewPlan(t *Template, o Options) (*Plan, error) {
	o = o.withDefaults()
	r, err := newResolver(t, o)
	if err != nil {
		return nil, err
	}
	ids, err := t.order()
	if err != nil {
		return nil, err
	}
	p := &Plan{Prefix: r.prefix}
	for _, id := range ids {
		s, err := r.step(id)
		if err != nil {
			return nil, err
		}
		p.Steps = append(p.Steps, s)
	}
	return p, nil
}

// step resolves one resource with what is known so far.
func (r *resolver) step(id string) (Step, error) {
	res := r.t.Resources[id]
	n, err := r.name(id)
	if err != nil {
		return Step{}, err
	}
	pv, err := r.value(res.Properties)
	if err != nil {
		return Step{}, fmt.Errorf("cfntemplate: %s: %w", id, err)
	}
	props, _ := pv.(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	s := Step{LogicalID: id, Type: res.Type, Role: res.Role(), Name: n}
	switch res.Type {
	case TypeTable:
		s.Table, err = tableSpec(n, props)
	case TypeQueue:
		s.Queue, err = queueAttributes(props)
	case TypeBucket:
		s.Bucket, err = bucketSpec(props)
	case TypeStateMachine:
		s.StateMachine, err = stateMachineInput(n, props)
	}
	if err != nil {
		return Step{}, fmt.Errorf("cfntemplate: %s (%s): %w", id, res.Type, err)
	}
	return s, nil
}

// checkKeys rejects properties this package would silently drop: a
// definition the emulator does not get is a definition tests do not test.
func checkKeys(props map[string]any, handled, ignored []string) error {
	ok := map[string]bool{}
	for _, k := range append(handled, ignored...) {
		ok[k] = true
	}
	var bad []string
	for k := range props {
		if !ok[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("unsupported properties %s (teach internal/kit/cfntemplate about them)", strings.Join(bad, ", "))
	}
	return nil
}

// decode moves a resolved property value into an SDK-shaped struct: the
// CloudFormation property names are the API's member names.
func decode(v any, into any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func tableSpec(name string, props map[string]any) (*TableSpec, error) {
	if err := checkKeys(props,
		[]string{"TableName", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
			"BillingMode", "ProvisionedThroughput", "StreamSpecification", "TimeToLiveSpecification",
			"PointInTimeRecoverySpecification", "DeletionProtectionEnabled", "TableClass"},
		// Encryption at rest, tags and insights do not change behaviour.
		[]string{"SSESpecification", "Tags", "ContributorInsightsSpecification"},
	); err != nil {
		return nil, err
	}
	var p struct {
		KeySchema              []ddbtypes.KeySchemaElement
		AttributeDefinitions   []ddbtypes.AttributeDefinition
		GlobalSecondaryIndexes []ddbtypes.GlobalSecondaryIndex
		LocalSecondaryIndexes  []ddbtypes.LocalSecondaryIndex
		BillingMode            ddbtypes.BillingMode
		ProvisionedThroughput  *ddbtypes.ProvisionedThroughput
		StreamSpecification    *struct {
			StreamViewType ddbtypes.StreamViewType
		}
		TimeToLiveSpecification *struct {
			AttributeName string
			Enabled       bool
		}
		PointInTimeRecoverySpecification *struct {
			PointInTimeRecoveryEnabled bool
		}
		DeletionProtectionEnabled *bool
		TableClass                ddbtypes.TableClass
	}
	if err := decode(props, &p); err != nil {
		return nil, err
	}
	if len(p.KeySchema) == 0 {
		return nil, fmt.Errorf("no KeySchema")
	}
	in := &dynamodb.CreateTableInput{
		TableName:                 aws.String(name),
		KeySchema:                 p.KeySchema,
		AttributeDefinitions:      p.AttributeDefinitions,
		GlobalSecondaryIndexes:    p.GlobalSecondaryIndexes,
		LocalSecondaryIndexes:     p.LocalSecondaryIndexes,
		BillingMode:               p.BillingMode,
		ProvisionedThroughput:     p.ProvisionedThroughput,
		DeletionProtectionEnabled: p.DeletionProtectionEnabled,
		TableClass:                p.TableClass,
	}
	if in.BillingMode == "" {
		in.BillingMode = ddbtypes.BillingModeProvisioned // CloudFormation's default
	}
	if p.StreamSpecification != nil {
		in.StreamSpecification = &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: p.StreamSpecification.StreamViewType}
	}
	ts := &TableSpec{Input: in}
	if p.TimeToLiveSpecification != nil && p.TimeToLiveSpecification.Enabled {
		ts.TTL = &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(p.TimeToLiveSpecification.AttributeName), Enabled: aws.Bool(true)}
	}
	ts.PointInTimeRecovery = p.PointInTimeRecoverySpecification != nil && p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled
	return ts, nil
}

// queueAttributes maps AWS::SQS::Queue properties to CreateQueue
// attributes: same names, values as strings, policies as JSON.
func queueAttributes(props map[string]any) (map[string]string, error) {
	attrs := []string{"ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue", "FifoThroughputLimit",
		"KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize", "MessageRetentionPeriod",
		"ReceiveMessageWaitTimeSeconds", "RedriveAllowPolicy", "RedrivePolicy", "SqsManagedSseEnabled", "VisibilityTimeout"}
	if err := checkKeys(props, append(attrs, "QueueName"), []string{"Tags"}); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range attrs {
		v, ok := props[k]
		if !ok {
			continue
		}
		switch v.(type) {
		case map[string]any, []any:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			out[k] = string(b)
		default:
			s, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = s
		}
	}
	return out, nil
}

func bucketSpec(props map[string]any) (*BucketSpec, error) {
	if err := checkKeys(props,
		[]string{"BucketName", "BucketEncryption", "PublicAccessBlockConfiguration", "LifecycleConfiguration", "VersioningConfiguration"},
		[]string{"Tags", "OwnershipControls"},
	); err != nil {
		return nil, err
	}
	b := &BucketSpec{}
	if v, ok := props["BucketEncryption"]; ok {
		var e struct {
			ServerSideEncryptionConfiguration []struct {
				ServerSideEncryptionByDefault *s3types.ServerSideEncryptionByDefault
				BucketKeyEnabled              *bool
			}
		}
		if err := decode(v, &e); err != nil {
			return nil, fmt.Errorf("BucketEncryption: %w", err)
		}
		b.Encryption = &s3types.ServerSideEncryptionConfiguration{}
		for _, r := range e.ServerSideEncryptionConfiguration {
			b.Encryption.Rules = append(b.Encryption.Rules, s3types.ServerSideEncryptionRule{
				ApplyServerSideEncryptionByDefault: r.ServerSideEncryptionByDefault, BucketKeyEnabled: r.BucketKeyEnabled,
			})
		}
	}
	if v, ok := props["PublicAccessBlockConfiguration"]; ok {
		b.PublicAccessBlock = &s3types.PublicAccessBlockConfiguration{}
		if err := decode(v, b.PublicAccessBlock); err != nil {
			return nil, fmt.Errorf("PublicAccessBlockConfiguration: %w", err)
		}
	}
	if v, ok := props["VersioningConfiguration"]; ok {
		var vc struct {
			Status s3types.BucketVersioningStatus
		}
		if err := decode(v, &vc); err != nil {
			return nil, fmt.Errorf("VersioningConfiguration: %w", err)
		}
		b.Versioning = vc.Status
	}
	if v, ok := props["LifecycleConfiguration"]; ok {
		lc, err := lifecycle(v)
		if err != nil {
			return nil, fmt.Errorf("LifecycleConfiguration: %w", err)
		}
		b.Lifecycle = lc
	}
	return b, nil
}

func lifecycle(v any) (*s3types.BucketLifecycleConfiguration, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object")
	}
	rules, _ := m["Rules"].([]any)
	out := &s3types.BucketLifecycleConfiguration{}
	for i, rv := range rules {
		rm, ok := rv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("rule %d: want an object", i)
		}
		if err := checkKeys(rm, []string{"Id", "Status", "Prefix", "ExpirationInDays", "AbortIncompleteMultipartUpload",
			"NoncurrentVersionExpiration", "ExpiredObjectDeleteMarker"}, nil); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		var r struct {
			Id                             *string
			Status                         s3types.ExpirationStatus
			Prefix                         *string
			ExpirationInDays               *int32
			ExpiredObjectDeleteMarker      *bool
			AbortIncompleteMultipartUpload *s3types.AbortIncompleteMultipartUpload
			NoncurrentVersionExpiration    *s3types.NoncurrentVersionExpiration
		}
		if err := decode(rm, &r); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		rule := s3types.LifecycleRule{
			ID: r.Id, Status: r.Status, AbortIncompleteMultipartUpload: r.AbortIncompleteMultipartUpload,
			NoncurrentVersionExpiration: r.NoncurrentVersionExpiration,
			Filter:                      &s3types.LifecycleRuleFilter{Prefix: aws.String(aws.ToString(r.Prefix))},
		}
		if r.ExpirationInDays != nil || r.ExpiredObjectDeleteMarker != nil {
			rule.Expiration = &s3types.LifecycleExpiration{Days: r.ExpirationInDays, ExpiredObjectDeleteMarker: r.ExpiredObjectDeleteMarker}
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, nil
}

func stateMachineInput(name string, props map[string]any) (*sfn.CreateStateMachineInput, error) {
	if err := checkKeys(props,
		[]string{"StateMachineName", "DefinitionString", "Definition", "DefinitionSubstitutions", "RoleArn", "StateMachineType"},
		// Logs and traces do not change what the machine does.
		[]string{"LoggingConfiguration", "TracingConfiguration", "Tags"},
	); err != nil {
		return nil, err
	}
	var def string
	switch {
	case props["DefinitionString"] != nil:
		s, ok := props["DefinitionString"].(string)
		if !ok {
			return nil, fmt.Errorf("DefinitionString: want a string")
		}
		def = s
	case props["Definition"] != nil:
		b, err := json.Marshal(props["Definition"])
		if err != nil {
			return nil, err
		}
		def = string(b)
	default:
		return nil, fmt.Errorf("no Definition or DefinitionString")
	}
	if subs, ok := props["DefinitionSubstitutions"].(map[string]any); ok {
		for k, v := range subs {
			s, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("DefinitionSubstitutions %s: %w", k, err)
			}
			def = strings.ReplaceAll(def, "${"+k+"}", s)
		}
	}
	if !json.Valid([]byte(def)) {
		return nil, fmt.Errorf("the definition is not JSON")
	}
	role, _ := props["RoleArn"].(string)
	if role == "" {
		return nil, fmt.Errorf("no RoleArn")
	}
	in := &sfn.CreateStateMachineInput{Name: aws.String(name), Definition: aws.String(def), RoleArn: aws.String(role)}
	if t, ok := props["StateMachineType"].(string); ok {
		in.Type = sfntypes.StateMachineType(t)
	}
	return in, nil
}
