package cfntemplate

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
)

// Physical is a created resource.
type Physical struct {
	LogicalID string
	Type      string
	Role      string
	Name      string
	URL       string // queues
	ARN       string
}

// Deployment is what the stack holds and Complete made, in creation order.
type Deployment struct {
	Prefix    string
	Resources []Physical
}

// ByRole returns the created resource with that role.
func (d *Deployment) ByRole(role string) (Physical, bool) {
	for _, p := range d.Resources {
		if p.Role == role {
			return p, true
		}
	}
	return Physical{}, false
}

// Names returns the deployment's resources as awsres names, the shape
// the gateway's configuration is built from.
func (d *Deployment) Names() awsres.Names {
	n := awsres.Names{Prefix: d.Prefix}
	if p, ok := d.ByRole(RoleTable); ok {
		n.Table = p.Name
	}
	if p, ok := d.ByRole(RoleDeliveryQueue); ok {
		n.DeliveryQueue = p.Name
	}
	if p, ok := d.ByRole(RoleDeadLetterQueue); ok {
		n.DeadLetter = p.Name
	}
	if p, ok := d.ByRole(RoleBodiesBucket); ok {
		n.Bucket = p.Name
	}
	if p, ok := d.ByRole(RoleCoordination); ok {
		n.StateMachine = p.Name
	}
	return n
}

// Endpoints returns where the deployment's resources are.
func (d *Deployment) Endpoints() awsres.Endpoints {
	var e awsres.Endpoints
	if p, ok := d.ByRole(RoleTable); ok {
		e.Table = p.Name
	}
	if p, ok := d.ByRole(RoleDeliveryQueue); ok {
		e.DeliveryQueueURL = p.URL
	}
	if p, ok := d.ByRole(RoleDeadLetterQueue); ok {
		e.DeadLetterURL, e.DeadLetterARN = p.URL, p.ARN
	}
	if p, ok := d.ByRole(RoleBodiesBucket); ok {
		e.Bucket = p.Name
	}
	if p, ok := d.ByRole(RoleCoordination); ok {
		e.StateMachineARN = p.ARN
	}
	return e
}

// Complete finishes a deployment whose tables, queues and buckets
// CloudFormation created (stack, each with its logical ID, physical
// name, URL and ARN): it sets what moto's CloudFormation ignores of them
// (table TTL and point-in-time recovery; bucket public access block,
// lifecycle and versioning) and creates the state machines, whose
// references resolve to the stack's real names, URLs and ARNs.
func Complete(ctx context.Context, cfg aws.Config, t *Template, o Options, stack []Physical) (*Deployment, error) {
	if o.Region == "" {
		o.Region = cfg.Region
	}
	o = o.withDefaults()
	r, err := newResolver(t, o)
	if err != nil {
		return nil, err
	}
	inStack := map[string]Physical{}
	for _, p := range stack {
		inStack[p.LogicalID] = p
		r.nameMemo[p.LogicalID] = p.Name
		r.actual[p.LogicalID] = stackPhysical(p)
	}
	ids, err := t.order()
	if err != nil {
		return nil, err
	}
	c := creator{
		ddb: dynamodb.NewFromConfig(cfg),
		// Path-style addressing: emulators serve every bucket on one host.
		s3:  s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = cfg.BaseEndpoint != nil }),
		sfn: sfn.NewFromConfig(cfg),
	}
	d := &Deployment{Prefix: r.prefix}
	for _, id := range ids {
		p, err := c.complete(ctx, r, id, inStack)
		if err != nil {
			return d, err
		}
		d.Resources = append(d.Resources, p)
	}
	return d, nil
}

// stackPhysical is what Ref and Fn::GetAtt of a stack resource give.
func stackPhysical(p Physical) physical {
	ref := p.Name
	attrs := map[string]string{"Arn": p.ARN}
	if p.Type == TypeQueue {
		ref = p.URL
		attrs["QueueUrl"], attrs["QueueName"] = p.URL, p.Name
	}
	return physical{ref: ref, attrs: attrs}
}

// complete sets what the stack lacks of one resource, or creates it.
func (c creator) complete(ctx context.Context, r *resolver, id string, inStack map[string]Physical) (Physical, error) {
	s, err := r.step(id)
	if err != nil {
		return Physical{}, err
	}
	p, ok := inStack[id]
	if !ok && s.Type != TypeStateMachine {
		return Physical{}, fmt.Errorf("cfntemplate: %s %s is neither in the stack nor created here", s.Type, id)
	}
	p.Role = s.Role
	switch s.Type {
	case TypeTable:
		err = c.tableSettings(ctx, p.Name, s.Table)
	case TypeBucket:
		err = c.bucketSettings(ctx, p.Name, s.Bucket)
	case TypeStateMachine:
		p = Physical{LogicalID: id, Type: s.Type, Role: s.Role, Name: s.Name}
		p.ARN, err = c.stateMachine(ctx, s.StateMachine)
		r.actual[id] = physical{ref: p.ARN, attrs: map[string]string{"Arn": p.ARN, "Name": p.Name}}
	}
	if err != nil {
		return Physical{}, fmt.Errorf("cfntemplate: complete %s %s (%s): %w", s.Type, p.Name, id, err)
	}
	return p, nil
}

type creator struct {
	ddb *dynamodb.Client
	s3  *s3.Client
	sfn *sfn.Client
}

// tableSettings sets what moto's CloudFormation ignores of a table:
// TimeToLiveSpecification and PointInTimeRecoverySpecification.
func (c creator) tableSettings(ctx context.Context, name string, ts *TableSpec) error {
	if ts.TTL != nil {
		if _, err := c.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(name), TimeToLiveSpecification: ts.TTL}); err != nil {
			return fmt.Errorf("enable TTL: %w", err)
		}
	}
	if ts.PointInTimeRecovery {
		if _, err := c.ddb.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
			TableName:                        aws.String(name),
			PointInTimeRecoverySpecification: &ddbtypes.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
		}); err != nil {
			return fmt.Errorf("enable point-in-time recovery: %w", err)
		}
	}
	return nil
}

// bucketSettings sets what moto's CloudFormation ignores of a bucket
// (it applies only BucketName, BucketEncryption and Tags).
func (c creator) bucketSettings(ctx context.Context, name string, b *BucketSpec) error {
	if b.PublicAccessBlock != nil {
		if _, err := c.s3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(name), PublicAccessBlockConfiguration: b.PublicAccessBlock}); err != nil {
			return fmt.Errorf("public access block: %w", err)
		}
	}
	if b.Versioning != "" {
		if _, err := c.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name), VersioningConfiguration: &s3types.VersioningConfiguration{Status: b.Versioning}}); err != nil {
			return fmt.Errorf("versioning: %w", err)
		}
	}
	if b.Lifecycle != nil {
		if _, err := c.s3.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: aws.String(name), LifecycleConfiguration: b.Lifecycle}); err != nil {
			return fmt.Errorf("lifecycle: %w", err)
		}
	}
	return nil
}

func (c creator) stateMachine(ctx context.Context, in *sfn.CreateStateMachineInput) (string, error) {
	out, err := c.sfn.CreateStateMachine(ctx, in)
	if err != nil {
		var exists *sfntypes.StateMachineAlreadyExists
		if !errors.As(err, &exists) {
			return "", err
		}
		list, lerr := c.sfn.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
		if lerr != nil {
			return "", err
		}
		for _, m := range list.StateMachines {
			if aws.ToString(m.Name) == aws.ToString(in.Name) {
				return aws.ToString(m.StateMachineArn), nil
			}
		}
		return "", err
	}
	return aws.ToString(out.StateMachineArn), nil
}
