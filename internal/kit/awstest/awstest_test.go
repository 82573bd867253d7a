package awstest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// TestResourcesFromStack: the table, queues and bucket are a CloudFormation
// stack that the emulator's own CloudFormation created from the snapshot,
// with every setting the deployed stack has — including those moto's
// CloudFormation drops and awstest completes (TTL, point-in-time
// recovery, the bucket's lifecycle and public access block) — and the
// coordination machine runs the definition with its substitutions made.
func TestResourcesFromStack(t *testing.T) {
	names, ep := awstest.Resources(t)
	cfg := awstest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stack, err := cloudformation.NewFromConfig(cfg).DescribeStackResources(ctx,
		&cloudformation.DescribeStackResourcesInput{StackName: aws.String(names.Prefix)})
	require.NoError(t, err, "a stack named after the prefix")
	byType := map[string][]string{}
	for _, r := range stack.StackResources {
		byType[aws.ToString(r.ResourceType)] = append(byType[aws.ToString(r.ResourceType)], aws.ToString(r.PhysicalResourceId))
	}
	assert.Equal(t, []string{names.Table}, byType["AWS::DynamoDB::Table"])
	assert.Equal(t, []string{names.Bucket}, byType["AWS::S3::Bucket"])
	assert.Len(t, byType["AWS::SQS::Queue"], 2)

	ddb := dynamodb.NewFromConfig(cfg)
	table, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(names.Table)})
	require.NoError(t, err)
	var gsis []string
	for _, g := range table.Table.GlobalSecondaryIndexes {
		gsis = append(gsis, aws.ToString(g.IndexName)+":"+aws.ToString(g.KeySchema[0].AttributeName)+"/"+aws.ToString(g.KeySchema[1].AttributeName))
	}
	assert.ElementsMatch(t, []string{"gsi1:gsi1pk/gsi1sk", "gsi2:gsi2pk/gsi2sk"}, gsis)
	ttl, err := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(names.Table)})
	require.NoError(t, err)
	assert.Equal(t, ddbtypes.TimeToLiveStatusEnabled, ttl.TimeToLiveDescription.TimeToLiveStatus)
	assert.Equal(t, awsres.AttrTTL, aws.ToString(ttl.TimeToLiveDescription.AttributeName))
	backups, err := ddb.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(names.Table)})
	require.NoError(t, err)
	assert.Equal(t, ddbtypes.PointInTimeRecoveryStatusEnabled,
		backups.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus)

	q, err := sqs.NewFromConfig(cfg).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(ep.DeliveryQueueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	require.NoError(t, err)
	assert.Equal(t, "180", q.Attributes["VisibilityTimeout"])
	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	require.NoError(t, json.Unmarshal([]byte(q.Attributes["RedrivePolicy"]), &redrive))
	assert.Equal(t, ep.DeadLetterARN, redrive.DeadLetterTargetArn)
	assert.Equal(t, awsres.MaxReceiveCount, redrive.MaxReceiveCount)

	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	lc, err := s3c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(names.Bucket)})
	require.NoError(t, err, "lifecycle")
	require.Len(t, lc.Rules, 1)
	assert.Equal(t, int32(awsres.BodyLifecycleDays), aws.ToInt32(lc.Rules[0].Expiration.Days))
	pab, err := s3c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(names.Bucket)})
	require.NoError(t, err, "public access block")
	assert.True(t, aws.ToBool(pab.PublicAccessBlockConfiguration.BlockPublicAcls))

	sm, err := sfn.NewFromConfig(cfg).DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(ep.StateMachineARN)})
	require.NoError(t, err)
	assert.Equal(t, names.StateMachine, aws.ToString(sm.Name))
	assert.Contains(t, aws.ToString(sm.Definition), ep.DeliveryQueueURL)
	assert.False(t, strings.Contains(aws.ToString(sm.Definition), "${"), "every substitution made")
}
