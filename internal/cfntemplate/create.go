package cfntemplate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/agentry/agentry/internal/awsres"
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

// Deployment is what Create made, in creation order.
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

// Create makes the template's tables, queues, buckets and state machines
// (under o.Prefix) through the SDK configuration cfg, dependencies first.
// A resource that already exists is kept as it is, like awsres.Ensure.
func Create(ctx context.Context, cfg aws.Config, t *Template, o Options) (*Deployment, error) {
	if o.Region == "" {
		o.Region = cfg.Region
	}
	o = o.withDefaults()
	r, err := newResolver(t, o)
	if err != nil {
		return nil, err
	}
	ids, err := t.order()
	if err != nil {
		return nil, err
	}
	c := creator{
		region: o.Region,
		ddb:    dynamodb.NewFromConfig(cfg),
		sqs:    sqs.NewFromConfig(cfg),
		// Path-style addressing: emulators serve every bucket on one host.
		s3:  s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = cfg.BaseEndpoint != nil }),
		sfn: sfn.NewFromConfig(cfg),
	}
	d := &Deployment{Prefix: r.prefix}
	for _, id := range ids {
		// Resolved now, not in a plan made up front, so that references
		// to resources created earlier carry their real URLs and ARNs.
		s, err := r.step(id)
		if err != nil {
			return d, err
		}
		p, err := c.create(ctx, s)
		if err != nil {
			return d, fmt.Errorf("cfntemplate: create %s %s (%s): %w", s.Type, s.Name, id, err)
		}
		pred, _ := r.predicted(id)
		attrs := map[string]string{}
		for k, v := range pred.attrs {
			attrs[k] = v
		}
		ref := pred.ref
		switch s.Type {
		case TypeQueue:
			ref, attrs["QueueUrl"], attrs["Arn"] = p.URL, p.URL, p.ARN
		case TypeStateMachine:
			ref, attrs["Arn"] = p.ARN, p.ARN
		default:
			attrs["Arn"] = p.ARN
		}
		r.actual[id] = physical{ref: ref, attrs: attrs}
		d.Resources = append(d.Resources, p)
	}
	return d, nil
}

type creator struct {
	region string
	ddb    *dynamodb.Client
	sqs    *sqs.Client
	s3     *s3.Client
	sfn    *sfn.Client
}

func (c creator) create(ctx context.Context, s Step) (Physical, error) {
	p := Physical{LogicalID: s.LogicalID, Type: s.Type, Role: s.Role, Name: s.Name}
	var err error
	switch s.Type {
	case TypeTable:
		p.ARN, err = c.table(ctx, s.Table)
	case TypeQueue:
		p.URL, p.ARN, err = c.queue(ctx, s.Name, s.Queue)
	case TypeBucket:
		p.ARN, err = c.bucket(ctx, s.Name, s.Bucket)
	case TypeStateMachine:
		p.ARN, err = c.stateMachine(ctx, s.StateMachine)
	default:
		err = fmt.Errorf("not a creatable type")
	}
	return p, err
}

func (c creator) table(ctx context.Context, ts *TableSpec) (string, error) {
	name := ts.Input.TableName
	_, err := c.ddb.CreateTable(ctx, ts.Input)
	var inUse *ddbtypes.ResourceInUseException
	existed := errors.As(err, &inUse)
	if err != nil && !existed {
		return "", err
	}
	w := dynamodb.NewTableExistsWaiter(c.ddb, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	desc, err := w.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: name}, 2*time.Minute)
	if err != nil {
		return "", fmt.Errorf("wait for the table: %w", err)
	}
	if !existed {
		if ts.TTL != nil {
			if _, err := c.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: name, TimeToLiveSpecification: ts.TTL}); err != nil {
				return "", fmt.Errorf("enable TTL: %w", err)
			}
		}
		if ts.PointInTimeRecovery {
			if _, err := c.ddb.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
				TableName:                        name,
				PointInTimeRecoverySpecification: &ddbtypes.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
			}); err != nil {
				return "", fmt.Errorf("enable point-in-time recovery: %w", err)
			}
		}
	}
	return aws.ToString(desc.Table.TableArn), nil
}

func (c creator) queue(ctx context.Context, name string, attrs map[string]string) (string, string, error) {
	out, err := c.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", "", err
	}
	a, err := c.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("queue ARN: %w", err)
	}
	return aws.ToString(out.QueueUrl), a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

func (c creator) bucket(ctx context.Context, name string, b *BucketSpec) (string, error) {
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if c.region != "" && c.region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(c.region)}
	}
	if _, err := c.s3.CreateBucket(ctx, in); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return "", err
		}
	}
	if b.Encryption != nil {
		if _, err := c.s3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(name), ServerSideEncryptionConfiguration: b.Encryption}); err != nil {
			return "", fmt.Errorf("encryption: %w", err)
		}
	}
	if b.PublicAccessBlock != nil {
		if _, err := c.s3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(name), PublicAccessBlockConfiguration: b.PublicAccessBlock}); err != nil {
			return "", fmt.Errorf("public access block: %w", err)
		}
	}
	if b.Versioning != "" {
		if _, err := c.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name), VersioningConfiguration: &s3types.VersioningConfiguration{Status: b.Versioning}}); err != nil {
			return "", fmt.Errorf("versioning: %w", err)
		}
	}
	if b.Lifecycle != nil {
		if _, err := c.s3.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: aws.String(name), LifecycleConfiguration: b.Lifecycle}); err != nil {
			return "", fmt.Errorf("lifecycle: %w", err)
		}
	}
	return "arn:aws:s3:::" + name, nil
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
