// Command deliver is the deliver Lambda: SQS batches of delivery tasks in,
// partial batch failures out.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/agentry/agentry/internal/runtime/awsgw"
)

func main() {
	g, err := awsgw.WorkerFromEnv(context.Background())
	if err != nil {
		log.Fatalf("deliver: %v", err)
	}
	// Init runs once per instance, so this is the instance's cold start:
	// one EMF line on stdout, no network call.
	g.Metrics.ColdStart("deliver")
	lambda.Start(g.DeliverBatch)
}
