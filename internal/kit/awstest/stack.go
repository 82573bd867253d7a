package awstest

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// createStack has the emulator's CloudFormation create the stack body
// under name, waits for it, and returns its resources as the SDK sees
// them (queue URLs as SQS answers them, so they point at the emulator).
func createStack(ctx context.Context, cfg aws.Config, t *cfntemplate.Template, name string, body []byte) ([]cfntemplate.Physical, error) {
	cf := cloudformation.NewFromConfig(cfg)
	if _, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(name), TemplateBody: aws.String(string(body)),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam},
	}); err != nil {
		return nil, fmt.Errorf("create stack: %w", err)
	}
	w := cloudformation.NewStackCreateCompleteWaiter(cf, func(o *cloudformation.StackCreateCompleteWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)}, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("wait for stack %s: %w", name, err)
	}
	out, err := cf.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("stack %s resources: %w", name, err)
	}
	var ps []cfntemplate.Physical
	for _, r := range out.StackResources {
		p, err := physical(ctx, cfg, t, r)
		if err != nil {
			return nil, fmt.Errorf("stack %s: %s: %w", name, aws.ToString(r.LogicalResourceId), err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// physical reads what tests need of one stack resource that CloudFormation
// reports only by its physical ID (a name, or a queue's URL).
func physical(ctx context.Context, cfg aws.Config, t *cfntemplate.Template, r cfntypes.StackResource) (cfntemplate.Physical, error) {
	id := aws.ToString(r.LogicalResourceId)
	p := cfntemplate.Physical{LogicalID: id, Type: aws.ToString(r.ResourceType), Name: aws.ToString(r.PhysicalResourceId)}
	if res := t.Resources[id]; res != nil {
		p.Role = res.Role()
	}
	switch p.Type {
	case cfntemplate.TypeTable:
		d, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(p.Name)})
		if err != nil {
			return p, fmt.Errorf("describe table: %w", err)
		}
		p.ARN = aws.ToString(d.Table.TableArn)
	case cfntemplate.TypeQueue:
		var err error
		p.Name = path.Base(p.Name)
		p.URL, p.ARN, err = queue(ctx, sqs.NewFromConfig(cfg), p.Name)
		if err != nil {
			return p, err
		}
	case cfntemplate.TypeBucket:
		p.ARN = "arn:aws:s3:::" + p.Name
	}
	return p, nil
}

func queue(ctx context.Context, c *sqs.Client, name string) (string, string, error) {
	u, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", "", fmt.Errorf("queue URL: %w", err)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: u.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("queue ARN: %w", err)
	}
	return aws.ToString(u.QueueUrl), a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}
