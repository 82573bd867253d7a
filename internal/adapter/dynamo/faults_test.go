package dynamo

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// errInjected is what a failed call answers in these tests.
var errInjected = errors.New("injected DynamoDB failure")

// faults shapes the answers of a store's DynamoDB calls through the real
// SDK client's middleware stack (aws.Config.APIOptions), so that the
// adapter meets failures exactly where AWS would hand them to it; nothing
// of the client is replaced.
type faults struct {
	// fail sees each call's input (*dynamodb.PutItemInput, …) before it is
	// sent; an error it returns is the call's answer, and the call never
	// reaches DynamoDB (nor the SDK's retries).
	fail func(in any) error
	// edit may change the answer of a call that was made.
	edit func(in, out any)
}

// faultyStore is a store on e's table whose DynamoDB calls go through f.
func (e *env) faultyStore(t *testing.T, f faults, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := awstest.WithFaults(awstest.Config(t), awstest.Faults{Fail: f.fail, Edit: f.edit})
	c := Config{Table: e.names.Table, Blobs: e.blobs, Queue: e.queue, Now: e.clock.Now}
	for _, m := range mod {
		m(&c)
	}
	s, err := New(dynamodb.NewFromConfig(cfg), c)
	require.NoError(t, err)
	return s
}

// failAll fails every call of type T with errInjected.
func failAll[T any]() func(any) error { return awstest.FailCalls[T](1, nil, errInjected) }

// pkHas reports whether key k's partition key starts with prefix.
func pkHas(k item, prefix string) bool { return strings.HasPrefix(getStr(k, aPK), prefix) }

// Matchers of the calls the tests fail, by the item they are about.
func putOf(prefix, sk string) func(*dynamodb.PutItemInput) bool {
	return func(in *dynamodb.PutItemInput) bool {
		return pkHas(in.Item, prefix) && (sk == "" || strings.HasPrefix(getStr(in.Item, aSK), sk))
	}
}

func getOf(prefix string) func(*dynamodb.GetItemInput) bool {
	return func(in *dynamodb.GetItemInput) bool { return pkHas(in.Key, prefix) }
}

func updateOf(prefix string) func(*dynamodb.UpdateItemInput) bool {
	return func(in *dynamodb.UpdateItemInput) bool { return pkHas(in.Key, prefix) }
}

// putRaw writes an item as it is, bypassing the adapter: how the tests
// make records of older versions, or corrupt ones.
func (e *env) putRaw(t *testing.T, it item) {
	t.Helper()
	_, err := e.client.PutItem(ctx(t), &dynamodb.PutItemInput{TableName: &e.names.Table, Item: it})
	require.NoError(t, err)
}

// conditionFailed is DynamoDB's answer to a write whose condition failed,
// without the item in the way (as when the request did not ask for it).
func conditionFailed() error {
	return &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
}

// cutQueries ends the answers of the first n queries that match accepts
// after their first item, with a LastEvaluatedKey, as DynamoDB ends a page
// at 1 MB whatever the Limit.
func cutQueries(n int, match func(*dynamodb.QueryInput) bool) func(in, out any) {
	var seen atomic.Int64
	return func(in, out any) {
		q, ok := in.(*dynamodb.QueryInput)
		res, _ := out.(*dynamodb.QueryOutput)
		if !ok || res == nil || len(res.Items) < 2 || (match != nil && !match(q)) || seen.Add(1) > int64(n) {
			return
		}
		first := res.Items[0]
		attrs := []string{aPK, aSK}
		switch aws.ToString(q.IndexName) {
		case awsres.GSI1:
			attrs = append(attrs, aG1P, aG1S)
		case awsres.GSI2:
			attrs = append(attrs, aG2P, aG2S)
		}
		lek := item{}
		for _, a := range attrs {
			lek[a] = first[a]
		}
		res.Items, res.Count, res.LastEvaluatedKey = res.Items[:1], 1, lek
	}
}

// onIndex matches the queries of one index ("" for the table itself).
func onIndex(name string) func(*dynamodb.QueryInput) bool {
	return func(in *dynamodb.QueryInput) bool { return aws.ToString(in.IndexName) == name }
}
