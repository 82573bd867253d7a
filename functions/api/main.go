// Command api is the api Lambda: API Gateway HTTP API (payload v2) events
// in, the one REST handler of internal/adapter/httpapi behind them.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/agentry/agentry/internal/runtime/awsgw"
)

func main() {
	g, err := awsgw.FromEnv(context.Background())
	if err != nil {
		log.Fatalf("api: %v", err)
	}
	// Init runs once per instance, so this is the instance's cold start:
	// one EMF line on stdout, no network call.
	g.Metrics.ColdStart("api")
	lambda.Start(g.ServeAPIGateway)
}
