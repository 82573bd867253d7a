package awscost

import (
	"math"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// sqsChunkBytes: SQS bills every 64 KB chunk of a request's payload as
// one request.
const sqsChunkBytes = 64 * 1024

// SQSRequests is what one SQS call carrying payload bytes (message
// bodies and message attributes, summed over a batch) is billed as.
func SQSRequests(payload int) float64 {
	return math.Max(1, math.Ceil(float64(payload)/sqsChunkBytes))
}

func attributesSize(attrs map[string]types.MessageAttributeValue) int {
	n := 0
	for name, v := range attrs {
		n += len(name) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

// meterSQS adds what an SQS call cost to u. A call that failed is still
// one request.
func meterSQS(u *Usage, params, result any, callErr error) {
	payload := 0
	if callErr == nil {
		switch in := params.(type) {
		case *sqs.SendMessageInput:
			payload = len(aws.ToString(in.MessageBody)) + attributesSize(in.MessageAttributes)
			u.SQSMessagesSent++
		case *sqs.SendMessageBatchInput:
			for _, e := range in.Entries {
				payload += len(aws.ToString(e.MessageBody)) + attributesSize(e.MessageAttributes)
			}
			failed := 0
			if out, ok := result.(*sqs.SendMessageBatchOutput); ok && out != nil {
				failed = len(out.Failed)
			}
			u.SQSMessagesSent += float64(len(in.Entries) - failed)
		case *sqs.ReceiveMessageInput:
			if out, ok := result.(*sqs.ReceiveMessageOutput); ok && out != nil {
				for _, m := range out.Messages {
					payload += len(aws.ToString(m.Body)) + attributesSize(m.MessageAttributes)
				}
			}
		}
	}
	u.SQSRequests += SQSRequests(payload)
}

// meterS3 sorts an S3 call into its request tier.
func meterS3(u *Usage, op string) {
	switch {
	case strings.HasPrefix(op, "Delete"):
		// DELETE and CANCEL requests are free.
	case strings.HasPrefix(op, "Put"), strings.HasPrefix(op, "Copy"), strings.HasPrefix(op, "List"),
		strings.HasPrefix(op, "Create"), strings.HasPrefix(op, "Upload"), strings.HasPrefix(op, "Complete"),
		strings.HasPrefix(op, "Post"):
		u.S3Tier1++
	default:
		u.S3Tier2++
	}
}
