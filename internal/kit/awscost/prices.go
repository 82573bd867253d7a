package awscost

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// PricesRead says when, and for what, the prices below were read.
const PricesRead = "2026-11-24, us-east-1 list prices: on-demand, first volume tier, free tiers ignored"

// Price is one list price: USD for Per units of Unit.
type Price struct {
	Service string
	Item    string
	USD     float64
	Per     float64
	Unit    string
	// Source is where the figure was read. The stored copies of the AWS
	// pricing pages that the search tool holds show no figures, so the
	// sources are pages quoting them, dated where they say.
	Source string
}

// Cost is the price of quantity units.
func (p Price) Cost(quantity float64) float64 { return quantity / p.Per * p.USD }

func (p Price) String() string {
	per := fmt.Sprintf("%g", p.Per)
	switch p.Per {
	case 1:
		per = ""
	case 1000:
		per = "1,000 "
	case 1e6:
		per = "1M "
	}
	return fmt.Sprintf("%s %s $%s/%s%s", p.Service, p.Item, strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.10f", p.USD), "0"), "."), per, p.Unit)
}

// Services, as bills name them.
const (
	ServiceAPIGateway = "API Gateway"
	ServiceLambda     = "Lambda"
	ServiceSQS        = "SQS"
	ServiceDynamoDB   = "DynamoDB"
	ServiceS3         = "S3"
	ServiceLogs       = "CloudWatch Logs"
)

// The price table.
var (
	APIGatewayHTTPRequest = Price{ServiceAPIGateway, "HTTP API", 1.00, 1e6, "requests (metered per 512 KB; first 300M/month)",
		"aws.amazon.com/api-gateway/pricing as quoted by apigatewaycost.com/aws and amnic.com/blogs/aws-api-gateway-pricing (2026); 512 KB metering: stormit.cloud/blog/amazon-api-gateway-pricing"}
	LambdaRequest = Price{ServiceLambda, "requests", 0.20, 1e6, "invocations",
		"aws.amazon.com/lambda/pricing as quoted by cloudchipr.com/blog/aws-lambda-pricing"}
	LambdaARMGBSecond = Price{ServiceLambda, "arm64 duration", 0.0000133334, 1, "GB-s (first 7.5 billion GB-s/month; billed per 1 ms)",
		"aws.amazon.com/lambda/pricing as quoted by cloudchipr.com/blog/aws-lambda-pricing"}
	SQSStandardRequest = Price{ServiceSQS, "standard queue", 0.40, 1e6, "requests (each 64 KB chunk of payload is one request)",
		"aws.amazon.com/sqs/pricing as quoted by cloudburn.io/blog/amazon-sqs-pricing (2026-03) and factualminds.com (2026-06)"}
	DynamoDBWriteUnit = Price{ServiceDynamoDB, "on-demand writes", 0.625, 1e6, "write request units (Standard table class)",
		"aws.amazon.com/dynamodb/pricing/on-demand after the 2024-11 price cut, as quoted by airbyte.com/data-engineering-resources/dynamodb-pricing (2025-07); older pages still say $1.25"}
	DynamoDBReadUnit = Price{ServiceDynamoDB, "on-demand reads", 0.125, 1e6, "read request units (Standard table class)",
		"as DynamoDBWriteUnit; older pages still say $0.25"}
	S3Tier1Request = Price{ServiceS3, "PUT, COPY, POST, LIST", 0.005, 1000, "requests (S3 Standard)",
		"aws.amazon.com/s3/pricing as quoted by c3x.dev/blog/s3-request-fees-explained"}
	S3Tier2Request = Price{ServiceS3, "GET, HEAD", 0.0004, 1000, "requests (S3 Standard)",
		"aws.amazon.com/s3/pricing as quoted by c3x.dev/blog/s3-request-fees-explained"}
	LogsIngestion = Price{ServiceLogs, "ingestion", 0.50, 1, "GB (2^30 bytes; Standard class, first tier of Lambda logs)",
		"aws.amazon.com/cloudwatch/pricing as quoted by c3x.dev/blog/cloudwatch-logs-cost-optimization (2026-06) and duckbillgroup.com (2025-05 Lambda log tiers)"}
)

// Prices is the whole table, for reports.
var Prices = []Price{
	APIGatewayHTTPRequest, LambdaRequest, LambdaARMGBSecond, SQSStandardRequest,
	DynamoDBWriteUnit, DynamoDBReadUnit, S3Tier1Request, S3Tier2Request, LogsIngestion,
}

// GBSeconds is what one invocation of a function with memoryMB of memory
// that ran for d is billed: its duration rounded up to the millisecond,
// times its memory in GB (1024 MB).
func GBSeconds(memoryMB int, d time.Duration) float64 {
	ms := math.Ceil(float64(d) / float64(time.Millisecond))
	return float64(memoryMB) / 1024 * ms / 1000
}

// Quantities are what one message uses of each billed dimension.
type Quantities struct {
	APIRequests       float64 // API Gateway HTTP API requests
	LambdaInvocations float64
	LambdaGBSeconds   float64 // arm64
	SQSRequests       float64 // billed requests (64 KB chunks)
	WriteUnits        float64 // DynamoDB on-demand
	ReadUnits         float64
	S3Tier1, S3Tier2  float64
	LogBytes          float64 // written to CloudWatch Logs
}

// Line is one priced quantity.
type Line struct {
	Price    Price
	Quantity float64 // per message
	// USDPerMillion is the price of a million messages.
	USDPerMillion float64
}

// Bill is a message's cost, line by line.
type Bill []Line

// Estimate prices q at the list prices for a million messages.
func Estimate(q Quantities) Bill {
	lines := []struct {
		p Price
		q float64
	}{
		{APIGatewayHTTPRequest, q.APIRequests},
		{LambdaRequest, q.LambdaInvocations},
		{LambdaARMGBSecond, q.LambdaGBSeconds},
		{SQSStandardRequest, q.SQSRequests},
		{DynamoDBWriteUnit, q.WriteUnits},
		{DynamoDBReadUnit, q.ReadUnits},
		{S3Tier1Request, q.S3Tier1},
		{S3Tier2Request, q.S3Tier2},
		{LogsIngestion, q.LogBytes / (1 << 30)},
	}
	b := make(Bill, 0, len(lines))
	for _, l := range lines {
		b = append(b, Line{Price: l.p, Quantity: l.q, USDPerMillion: l.p.Cost(l.q * 1e6)})
	}
	return b
}

// Total is the price of a million messages.
func (b Bill) Total() float64 {
	t := 0.0
	for _, l := range b {
		t += l.USDPerMillion
	}
	return t
}

// Service is the part of the total one service bills.
func (b Bill) Service(name string) float64 {
	t := 0.0
	for _, l := range b {
		if l.Price.Service == name {
			t += l.USDPerMillion
		}
	}
	return t
}
