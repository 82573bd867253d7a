// Command deadletter is the deadletter Lambda: records of the delivery
// dead-letter queue in; failed recipients and failure reports out.
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
		log.Fatalf("deadletter: %v", err)
	}
	// Init runs once per instance, so this is the instance's cold start:
	// one EMF line on stdout, no network call.
	g.Metrics.ColdStart("deadletter")
	lambda.Start(g.DeadLetterBatch)
}
