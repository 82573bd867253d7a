package awsres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Endpoints are the URLs/ARNs of created resources.
type Endpoints struct {
	Table            string
	DeliveryQueueURL string
	DeadLetterURL    string
	DeadLetterARN    string
	Bucket           string
	StateMachineARN  string // the coordination machine; empty when there is none
}

// CreateTableInput is the table definition (the CDK stack declares the
// same key schema, GSIs and TTL; a test compares them).
func CreateTableInput(n Names) *dynamodb.CreateTableInput {
	s := ddbtypes.ScalarAttributeTypeS
	gsi := func(name, pk, sk string) ddbtypes.GlobalSecondaryIndex {
		return ddbtypes.GlobalSecondaryIndex{
			IndexName: aws.String(name),
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String(pk), KeyType: ddbtypes.KeyTypeHash},
				{AttributeName: aws.String(sk), KeyType: ddbtypes.KeyTypeRange},
			},
			Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(GSIProjection)},
		}
	}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(n.Table),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: s},
			{AttributeName: aws.String(AttrSK), AttributeType: s},
			{AttributeName: aws.String(AttrGSI1PK), AttributeType: s},
			{AttributeName: aws.String(AttrGSI1SK), AttributeType: s},
			{AttributeName: aws.String(AttrGSI2PK), AttributeType: s},
			{AttributeName: aws.String(AttrGSI2SK), AttributeType: s},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: ddbtypes.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{
			gsi(GSI1, AttrGSI1PK, AttrGSI1SK),
			gsi(GSI2, AttrGSI2PK, AttrGSI2SK),
		},
	}
}

// QueueAttributes are the delivery queue's attributes given the DLQ ARN.
func QueueAttributes(dlqARN string) map[string]string {
	return map[string]string{
		string(sqstypes.QueueAttributeNameVisibilityTimeout):             strconv.Itoa(VisibilityTimeoutSeconds),
		string(sqstypes.QueueAttributeNameMessageRetentionPeriod):        strconv.Itoa(MessageRetentionSeconds),
		string(sqstypes.QueueAttributeNameReceiveMessageWaitTimeSeconds): strconv.Itoa(ReceiveWaitSeconds),
		string(sqstypes.QueueAttributeNameRedrivePolicy):                 fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, dlqARN, MaxReceiveCount),
	}
}

// DeadLetterAttributes are the DLQ's attributes.
func DeadLetterAttributes() map[string]string {
	return map[string]string{
		string(sqstypes.QueueAttributeNameMessageRetentionPeriod): strconv.Itoa(DLQRetentionSeconds),
	}
}

// Ensure creates whatever of the deployment's resources is missing (table
// with TTL, DLQ, delivery queue with redrive, bucket) and returns where
// they are. Existing resources are left as they are.
func Ensure(ctx context.Context, cfg aws.Config, n Names) (Endpoints, error) {
	ep := Endpoints{Table: n.Table, Bucket: n.Bucket}
	ddb := dynamodb.NewFromConfig(cfg)
	if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(n.Table)}); err != nil {
		var nf *ddbtypes.ResourceNotFoundException
		if !errors.As(err, &nf) {
			return ep, fmt.Errorf("describe table %s: %w", n.Table, err)
		}
		if _, err := ddb.CreateTable(ctx, CreateTableInput(n)); err != nil {
			var inUse *ddbtypes.ResourceInUseException
			if !errors.As(err, &inUse) {
				return ep, fmt.Errorf("create table %s: %w", n.Table, err)
			}
		}
		w := dynamodb.NewTableExistsWaiter(ddb)
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(n.Table)}, 2*time.Minute); err != nil {
			return ep, fmt.Errorf("wait for table %s: %w", n.Table, err)
		}
		if err := enableTTL(ctx, ddb, n.Table); err != nil {
			return ep, err
		}
	}

	q := sqs.NewFromConfig(cfg)
	dlq, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(n.DeadLetter), Attributes: DeadLetterAttributes()})
	if err != nil {
		return ep, fmt.Errorf("create queue %s: %w", n.DeadLetter, err)
	}
	ep.DeadLetterURL = aws.ToString(dlq.QueueUrl)
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return ep, fmt.Errorf("queue ARN of %s: %w", n.DeadLetter, err)
	}
	ep.DeadLetterARN = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	main, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(n.DeliveryQueue), Attributes: QueueAttributes(ep.DeadLetterARN)})
	if err != nil {
		return ep, fmt.Errorf("create queue %s: %w", n.DeliveryQueue, err)
	}
	ep.DeliveryQueueURL = aws.ToString(main.QueueUrl)

	s := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(n.Bucket)}); err != nil {
		in := &s3.CreateBucketInput{Bucket: aws.String(n.Bucket)}
		if cfg.Region != "" && cfg.Region != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(cfg.Region)}
		}
		if _, err := s.CreateBucket(ctx, in); err != nil {
			var owned *s3types.BucketAlreadyOwnedByYou
			if !errors.As(err, &owned) {
				return ep, fmt.Errorf("create bucket %s: %w", n.Bucket, err)
			}
		}
	}
	return ep, nil
}

// enableTTL turns on expiry by AttrTTL. Another process bootstrapping the
// same deployment at the same time (the table was in use when we created
// it) may have enabled it first, and DynamoDB refuses to enable TTL twice
// (ValidationException): what matters is that it is on, so a refusal is
// checked against the table's TTL before it counts.
func enableTTL(ctx context.Context, ddb *dynamodb.Client, table string) error {
	_, err := ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(AttrTTL), Enabled: aws.Bool(true)},
	})
	if err == nil {
		return nil
	}
	if d, derr := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)}); derr == nil {
		if ttl := d.TimeToLiveDescription; ttl != nil && aws.ToString(ttl.AttributeName) == AttrTTL &&
			(ttl.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabled || ttl.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabling) {
			return nil
		}
	}
	return fmt.Errorf("enable TTL on %s: %w", table, err)
}
