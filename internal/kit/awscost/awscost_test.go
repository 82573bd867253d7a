package awscost

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func s(v string) types.AttributeValue   { return &types.AttributeValueMemberS{Value: v} }
func pad(size int) types.AttributeValue { return s(strings.Repeat("x", size)) }

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		size       int
		write      float64
		consistent float64
		eventual   float64
	}{
		{0, 1, 1, 0.5}, // a missing item still costs the minimum
		{1, 1, 1, 0.5},
		{1024, 1, 1, 0.5},
		{1025, 2, 1, 0.5},
		{4096, 4, 1, 0.5},
		{4097, 5, 2, 1},
		{10 * 1024, 10, 3, 1.5},
	} {
		assert.Equal(t, tc.write, WriteUnits(tc.size), "write %d bytes", tc.size)
		assert.Equal(t, tc.consistent, ReadUnits(tc.size, true), "consistent read of %d bytes", tc.size)
		assert.Equal(t, tc.eventual, ReadUnits(tc.size, false), "eventual read of %d bytes", tc.size)
	}
}

// schema: a table keyed pk/sk with one keys-only index on g1p/g1s and one
// index projecting attribute "body".
func testSchema() *tableSchema {
	return &tableSchema{keys: []string{"pk", "sk"}, indexes: []indexSchema{
		{name: "g1", keys: []string{"g1p", "g1s"}, projection: projectKeysOnly},
		{name: "g2", keys: []string{"g2p"}, projection: projectInclude, include: []string{"body"}},
	}}
}

func TestWriteCost(t *testing.T) {
	base := Item{"pk": s("M#1"), "sk": s("M")}
	with := func(extra Item) Item {
		it := Item{}
		for k, v := range base {
			it[k] = v
		}
		for k, v := range extra {
			it[k] = v
		}
		return it
	}
	big := with(Item{"body": pad(1500)})                    // 2 KB started
	indexed := with(Item{"g1p": s("I#bob"), "g1s": s("1")}) // in g1
	moved := with(Item{"g1p": s("I#bob"), "g1s": s("2")})   // g1 sort key changed
	inBoth := with(Item{"g1p": s("I#bob"), "g1s": s("1"), "g2p": s("x"), "body": s("a")})
	bodyChanged := with(Item{"g1p": s("I#bob"), "g1s": s("1"), "g2p": s("x"), "body": s("b")})
	other := with(Item{"g1p": s("I#bob"), "g1s": s("1"), "g2p": s("x"), "body": s("a"), "st": s("done")})

	for _, tc := range []struct {
		name           string
		kind           writeKind
		before, after  Item
		tx, failed     bool
		table, indexes float64
	}{
		{"new small item", writePut, nil, base, false, false, 1, 0},
		{"new item over 1 KB", writePut, nil, big, false, false, 2, 0},
		{"put over a larger item costs the larger", writePut, big, base, false, false, 2, 0},
		{"update that grows it", writeUpdate, base, big, false, false, 2, 0},
		{"transaction doubles the table write", writePut, nil, big, true, false, 4, 0},
		{"new index entry", writePut, nil, indexed, false, false, 1, 1},
		{"transaction does not double index writes", writePut, nil, indexed, true, false, 2, 1},
		{"index key changed: delete and put", writeUpdate, indexed, moved, false, false, 1, 2},
		{"leaves the index", writeUpdate, indexed, base, false, false, 1, 1},
		{"unprojected attribute changed", writeUpdate, inBoth, other, false, false, 1, 0},
		{"projected attribute changed", writeUpdate, inBoth, bodyChanged, false, false, 1, 1},
		{"delete removes its entries", writeDelete, inBoth, nil, false, false, 1, 2},
		{"delete of a missing item", writeDelete, nil, nil, false, false, 1, 0},
		{"failed condition: existing item, no index", writePut, big, big, false, true, 2, 0},
		{"failed condition on a new item", writePut, nil, nil, false, true, 1, 0},
		{"cancelled transaction", writeUpdate, indexed, indexed, true, true, 2, 0},
		{"condition check", writeCheck, big, big, true, false, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table, index := testSchema().writeCost(tc.kind, tc.before, tc.after, tc.tx, tc.failed)
			assert.Equal(t, tc.table, table, "table units")
			assert.Equal(t, tc.indexes, index, "index units")
		})
	}
}

func TestIndexEntry(t *testing.T) {
	sc := testSchema()
	it := Item{"pk": s("p"), "sk": s("s"), "g2p": s("x"), "body": s("hello"), "other": s("no")}
	assert.Nil(t, sc.entry(sc.indexes[0], it), "no g1 keys: not in g1")
	assert.Equal(t, Item{"pk": s("p"), "sk": s("s"), "g2p": s("x"), "body": s("hello")}, sc.entry(sc.indexes[1], it))
	assert.Equal(t, Item{"pk": s("p"), "sk": s("s")}, sc.keyOf(it))
	assert.Nil(t, sc.keyOf(Item{"pk": s("p")}))
}

func TestSQSRequests(t *testing.T) {
	for _, tc := range []struct {
		payload int
		want    float64
	}{
		{0, 1}, {1, 1}, {64 * 1024, 1}, {64*1024 + 1, 2}, {256 * 1024, 4},
	} {
		assert.Equal(t, tc.want, SQSRequests(tc.payload), "%d bytes", tc.payload)
	}
}

func TestS3Tiers(t *testing.T) {
	var u Usage
	for _, op := range []string{"PutObject", "GetObject", "HeadObject", "DeleteObject", "ListObjectsV2"} {
		meterS3(&u, op)
	}
	assert.Equal(t, 2.0, u.S3Tier1)
	assert.Equal(t, 2.0, u.S3Tier2)
}

func TestGBSeconds(t *testing.T) {
	assert.InDelta(t, 0.5*0.023, GBSeconds(512, 23*time.Millisecond), 1e-12)
	// Billed per started millisecond.
	assert.InDelta(t, 0.5*0.024, GBSeconds(512, 23*time.Millisecond+time.Microsecond), 1e-12)
	assert.InDelta(t, 0.25*0.001, GBSeconds(256, 10*time.Microsecond), 1e-12)
}

func TestEstimate(t *testing.T) {
	q := Quantities{
		APIRequests: 1, LambdaInvocations: 1.1, LambdaGBSeconds: 0.02, SQSRequests: 1.2,
		WriteUnits: 3, ReadUnits: 2.5, S3Tier1: 0, S3Tier2: 0, LogBytes: 1 << 10,
	}
	bill := Estimate(q)
	for _, tc := range []struct {
		service string
		want    float64
	}{
		{ServiceAPIGateway, 1.00},                       // 1M requests at $1.00/M
		{ServiceLambda, 1.1*0.20 + 0.02e6*0.0000133334}, // 0.22 + 0.266668
		{ServiceSQS, 1.2 * 0.40},
		{ServiceDynamoDB, 3*0.625 + 2.5*0.125},
		{ServiceS3, 0},
		{ServiceLogs, 1e6 * 1024 / (1 << 30) * 0.50}, // ≈ 0.4768 GB
	} {
		assert.InDelta(t, tc.want, bill.Service(tc.service), 1e-9, tc.service)
	}
	assert.InDelta(t, 1.00+0.22+0.266668+0.48+1.875+0.3125+0.476837158203125, bill.Total(), 1e-6)

	assert.Equal(t, 5.0, S3Tier1Request.Cost(1e6), "$0.005 per 1,000")
	assert.Contains(t, DynamoDBWriteUnit.String(), "$0.625/1M write request units")
	require.Len(t, Prices, 9)
	for _, p := range Prices {
		assert.Positive(t, p.USD, p.String())
		assert.NotEmpty(t, p.Source, p.String())
	}
}

func TestUsageArithmetic(t *testing.T) {
	a := Usage{Calls: map[string]float64{"dynamodb:GetItem": 2}, WriteUnits: 3, SQSRequests: 1}
	b := Usage{Calls: map[string]float64{"dynamodb:GetItem": 1, "sqs:SendMessage": 1}, WriteUnits: 1, Unmetered: map[string]float64{"sfn:StartExecution": 1}}
	sum := a.Add(b)
	assert.Equal(t, 4.0, sum.TotalCalls())
	assert.Equal(t, 4.0, sum.WriteUnits)
	assert.Equal(t, "dynamodb:GetItem 3, sqs:SendMessage 1", sum.CallList())
	per := sum.Scale(0.5)
	assert.Equal(t, "dynamodb:GetItem 1.5, sqs:SendMessage 0.5", per.CallList())
	assert.Equal(t, 0.5, per.Unmetered["sfn:StartExecution"])
	assert.Equal(t, 2.0, a.Calls["dynamodb:GetItem"], "Add and Scale copy their maps")
	assert.Equal(t, "0.1", Num(0.1))
	assert.Equal(t, "2", Num(2))
}
