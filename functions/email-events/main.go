// Command email-events is the email-events Lambda: SES bounce and
// complaint notifications in (through SNS); failed recipients and failure
// reports out.
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
		log.Fatalf("email-events: %v", err)
	}
	g.Metrics.ColdStart("email-events")
	lambda.Start(g.EmailEvents)
}
