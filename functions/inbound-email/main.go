// Command inbound-email is the inbound-email Lambda: SES receipt events
// in (the rule stored each email in S3 first); AMTP mail out, through the
// same accept path as the API.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/agentry/agentry/internal/runtime/awsgw"
)

func main() {
	g, err := awsgw.InboundFromEnv(context.Background())
	if err != nil {
		log.Fatalf("inbound-email: %v", err)
	}
	g.Metrics.ColdStart("inbound-email")
	lambda.Start(g.ReceiveEmail)
}
