package awscost

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
)

var tableSeq atomic.Int64

// newTable creates, in moto, a table keyed pk/sk with one keys-only index
// on g1p/g1s.
func newTable(t *testing.T, cfg aws.Config) string {
	t.Helper()
	name := fmt.Sprintf("awscost-%d-%d", os.Getpid(), tableSeq.Add(1))
	str := types.ScalarAttributeTypeS
	_, err := dynamodb.NewFromConfig(cfg).CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: str}, {AttributeName: aws.String("sk"), AttributeType: str},
			{AttributeName: aws.String("g1p"), AttributeType: str}, {AttributeName: aws.String("g1s"), AttributeType: str},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String("g1"),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("g1p"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("g1s"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	require.NoError(t, err)
	return name
}

// The middleware sees every call and prices it from the items themselves,
// against a real DynamoDB API (moto).
func TestCounterAgainstMoto(t *testing.T) {
	cfg := awstest.Config(t)
	table := newTable(t, cfg)
	c := New(cfg)
	counted := c.Instrument(cfg)
	db := dynamodb.NewFromConfig(counted)
	ctx := WithActor(context.Background(), "api")
	tbl := aws.String(table)
	k := func(pk string) Item { return Item{"pk": s(pk), "sk": s("S")} }

	step := func(name string, wantCalls string, wantWrite, wantIndex, wantRead float64, f func() error) {
		t.Helper()
		require.NoError(t, f(), name)
		total, byActor, err := c.Take()
		require.NoError(t, err, name)
		assert.Equal(t, wantCalls, total.CallList(), name)
		assert.Equal(t, wantWrite, total.WriteUnits, "%s: write units", name)
		assert.Equal(t, wantIndex, total.IndexWriteUnits, "%s: index write units", name)
		assert.Equal(t, wantRead, total.ReadUnits, "%s: read units", name)
		assert.Contains(t, byActor, "api", name)
	}

	step("put a small indexed item", "dynamodb:PutItem 1", 2, 1, 0, func() error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: Item{"pk": s("a"), "sk": s("S"), "g1p": s("I"), "g1s": s("1")}})
		return err
	})
	step("grow it over 1 KB: no index change", "dynamodb:UpdateItem 1", 2, 0, 0, func() error {
		_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: k("a"),
			UpdateExpression: aws.String("SET body = :b"), ExpressionAttributeValues: Item{":b": pad(1100)}})
		return err
	})
	step("move its index key", "dynamodb:UpdateItem 1", 2+2, 2, 0, func() error {
		_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: k("a"),
			UpdateExpression: aws.String("SET g1s = :s"), ExpressionAttributeValues: Item{":s": s("2")}})
		return err
	})
	step("a failed condition is billed on the existing item", "dynamodb:PutItem 1", 2, 0, 0, func() error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: k("a"), ConditionExpression: aws.String("attribute_not_exists(pk)")})
		var ccf *types.ConditionalCheckFailedException
		if !assert.ErrorAs(t, err, &ccf) {
			return err
		}
		return nil
	})
	step("transaction of two new items, one indexed", "dynamodb:TransactWriteItems 1", 2*1+2*1+1, 1, 0, func() error {
		_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: tbl, Item: Item{"pk": s("b"), "sk": s("S"), "g1p": s("I"), "g1s": s("3")}}},
			{Put: &types.Put{TableName: tbl, Item: k("c")}},
		}})
		return err
	})
	step("eventually consistent read of the big item", "dynamodb:GetItem 1", 0, 0, 0.5, func() error {
		_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: k("a")})
		return err
	})
	step("projected read is billed on the whole item", "dynamodb:GetItem 1", 0, 0, 1, func() error {
		_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: k("a"), ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("pk")})
		return err
	})
	step("batch read: each item rounded on its own, missing ones too", "dynamodb:BatchGetItem 1", 0, 0, 3, func() error {
		_, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			table: {Keys: []Item{k("a"), k("b"), k("zz")}, ConsistentRead: aws.Bool(true)},
		}})
		return err
	})
	step("index query, filtered to nothing, still reads its page", "dynamodb:Query 1", 0, 0, 0.5, func() error {
		out, err := db.Query(ctx, &dynamodb.QueryInput{TableName: tbl, IndexName: aws.String("g1"),
			KeyConditionExpression: aws.String("#p = :p"), FilterExpression: aws.String("#x = :x"),
			ExpressionAttributeNames:  map[string]string{"#p": "g1p", "#x": "g1s"},
			ExpressionAttributeValues: Item{":p": s("I"), ":x": s("nope")}})
		if err == nil {
			assert.Empty(t, out.Items)
		}
		return err
	})
	step("delete removes the index entry", "dynamodb:DeleteItem 1", 2+1, 1, 0, func() error {
		_, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: k("a")})
		return err
	})

	// SQS: a batch of two is one request and two messages; a body over
	// 64 KB is two requests.
	q := sqs.NewFromConfig(counted)
	qo, err := sqs.NewFromConfig(cfg).CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(table)})
	require.NoError(t, err)
	_, err = q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qo.QueueUrl, Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("1"), MessageBody: aws.String("one")}, {Id: aws.String("2"), MessageBody: aws.String("two")},
	}})
	require.NoError(t, err)
	_, err = q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qo.QueueUrl, MessageBody: aws.String(strings.Repeat("x", 65*1024))})
	require.NoError(t, err)
	total, _, err := c.Take()
	require.NoError(t, err)
	assert.Equal(t, "sqs:SendMessage 1, sqs:SendMessageBatch 1", total.CallList())
	assert.Equal(t, 3.0, total.SQSRequests)
	assert.Equal(t, 3.0, total.SQSMessagesSent)

	// Off, nothing is counted.
	c.SetEnabled(false)
	_, err = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: k("b")})
	require.NoError(t, err)
	total, _, err = c.Take()
	require.NoError(t, err)
	assert.Zero(t, total.TotalCalls())

	// Calls without an actor are still counted.
	c.SetEnabled(true)
	tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = db.GetItem(tctx, &dynamodb.GetItemInput{TableName: tbl, Key: k("b")})
	require.NoError(t, err)
	_, byActor, err := c.Take()
	require.NoError(t, err)
	assert.Equal(t, 1.0, byActor[Unlabelled].TotalCalls())
}
