package awscost

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
)

// TestHeatByPartition: with partitions tracked, every unit a call costs is
// booked on the partition key it lands on — the base table's for the item,
// the index's for each index entry written or removed (a moved entry in
// both its old and its new partition), the queried one for a query.
func TestHeatByPartition(t *testing.T) {
	cfg := awstest.Config(t)
	table := newTable(t, cfg)
	c := New(cfg)
	db := dynamodb.NewFromConfig(c.Instrument(cfg))
	ctx := context.Background()
	tbl := aws.String(table)
	base := func(k string) Partition { return Partition{Table: table, Key: k} }
	index := func(k string) Partition { return Partition{Table: table, Index: "g1", Key: k} }

	require.Nil(t, c.TakeHeat(), "off by default")
	c.TrackPartitions(true)

	for _, tc := range []struct {
		name string
		call func() error
		want Heat
	}{
		{"indexed put", func() error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: Item{"pk": s("a"), "sk": s("S"), "g1p": s("I"), "g1s": s("1")}})
			return err
		}, Heat{base("a"): {WriteUnits: 1}, index("I"): {WriteUnits: 1}}},
		{"move the entry to another index partition", func() error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: Item{"pk": s("a"), "sk": s("S")},
				UpdateExpression: aws.String("SET g1p = :p"), ExpressionAttributeValues: Item{":p": s("J")}})
			return err
		}, Heat{base("a"): {WriteUnits: 1}, index("I"): {WriteUnits: 1}, index("J"): {WriteUnits: 1}}},
		{"strong read", func() error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: Item{"pk": s("a"), "sk": s("S")}, ConsistentRead: aws.Bool(true)})
			return err
		}, Heat{base("a"): {ReadUnits: 1}}},
		{"index query", func() error {
			_, err := db.Query(ctx, &dynamodb.QueryInput{TableName: tbl, IndexName: aws.String("g1"),
				KeyConditionExpression:    aws.String("#p = :p AND #s > :s"),
				ExpressionAttributeNames:  map[string]string{"#p": "g1p", "#s": "g1s"},
				ExpressionAttributeValues: Item{":p": s("J"), ":s": s("0")}})
			return err
		}, Heat{index("J"): {ReadUnits: 0.5}}},
		{"batch read", func() error {
			_, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				table: {Keys: []Item{{"pk": s("a"), "sk": s("S")}, {"pk": s("b"), "sk": s("S")}}},
			}})
			return err
		}, Heat{base("a"): {ReadUnits: 0.5}, base("b"): {ReadUnits: 0.5}}},
		{"delete", func() error {
			_, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: Item{"pk": s("a"), "sk": s("S")}})
			return err
		}, Heat{base("a"): {WriteUnits: 1}, index("J"): {WriteUnits: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.call())
			_, _, err := c.Take()
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.TakeHeat())
		})
	}

	c.TrackPartitions(false)
	_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: Item{"pk": s("b"), "sk": s("S")}})
	require.NoError(t, err)
	assert.Nil(t, c.TakeHeat(), "off again")
}

func TestHottest(t *testing.T) {
	h := Heat{{Key: "a"}: {WriteUnits: 1, ReadUnits: 9}, {Key: "b"}: {WriteUnits: 3}, {Key: "c"}: {WriteUnits: 2}}
	writes := func(l Load) float64 { return l.WriteUnits }
	assert.Equal(t, []Partition{{Key: "b"}, {Key: "c"}}, h.Hottest(2, writes))
	assert.Equal(t, []Partition{{Key: "a"}, {Key: "b"}, {Key: "c"}}, h.Hottest(0, func(l Load) float64 { return l.ReadUnits }))
}
