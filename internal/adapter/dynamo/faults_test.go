package dynamo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
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
	cfg := awstest.Config(t)
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("testFaults", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if f.fail != nil {
				if err := f.fail(in.Parameters); err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if err == nil && f.edit != nil {
				f.edit(in.Parameters, out.Result)
			}
			return out, md, err
		}), middleware.Before)
	})
	c := Config{Table: e.names.Table, Blobs: e.blobs, Queue: e.queue, Now: e.clock.Now}
	for _, m := range mod {
		m(&c)
	}
	s, err := New(dynamodb.NewFromConfig(cfg), c)
	require.NoError(t, err)
	return s
}

// failCalls fails every call of type T (an input type) that match
// accepts, from the from-th such match on (1 for all of them), with err.
func failCalls[T any](from int, match func(T) bool, err error) func(any) error {
	var seen atomic.Int64
	return func(in any) error {
		v, ok := in.(T)
		if !ok || (match != nil && !match(v)) {
			return nil
		}
		if seen.Add(1) < int64(from) {
			return nil
		}
		return err
	}
}

// failAll fails every call of type T.
func failAll[T any]() func(any) error { return failCalls[T](1, nil, errInjected) }

// anyOf fails a call when one of rules does, first rule first.
func anyOf(rules ...func(any) error) func(any) error {
	return func(in any) error {
		for _, r := range rules {
			if err := r(in); err != nil {
				return err
			}
		}
		return nil
	}
}

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

// counted counts the calls of type T that reach rule, and passes each on
// to it (nil: none fails).
type counted[T any] struct {
	n    atomic.Int64
	rule func(any) error
}

func (c *counted[T]) fail(in any) error {
	if _, ok := in.(T); ok {
		c.n.Add(1)
	}
	if c.rule == nil {
		return nil
	}
	return c.rule(in)
}

// failFirst fails the first n calls of type T, and no later one.
func failFirst[T any](n int, err error) func(any) error { return failFirstOf[T](n, nil, err) }

// failFirstOf fails the first n calls of type T that match accepts.
func failFirstOf[T any](n int, match func(T) bool, err error) func(any) error {
	var seen atomic.Int64
	return func(in any) error {
		v, ok := in.(T)
		if ok && (match == nil || match(v)) && seen.Add(1) <= int64(n) {
			return err
		}
		return nil
	}
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
