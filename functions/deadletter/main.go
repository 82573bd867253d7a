// Command deadletter is the deadletter Lambda: records of the delivery
// dead-letter queue in; failed recipients and failure reports out.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/agentry/agentry/internal/awsgw"
)

func main() {
	g, err := awsgw.FromEnv(context.Background())
	if err != nil {
		log.Fatalf("deadletter: %v", err)
	}
	lambda.Start(g.DeadLetterBatch)
}
