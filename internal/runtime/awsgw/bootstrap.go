package awsgw

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/runtime/config"
)

// Bootstrap creates whatever of cfg's resources is missing (table,
// queues, bucket: awsres.Ensure) and returns cfg with the URLs of the
// queues it found or created filled in where cfg left them empty. It is
// what AGENTRY_AWS_BOOTSTRAP=1 asks `agentry serve` to do before New.
//
// New does not call it: the Lambda functions never create resources (the
// stack does), and a binary that links Ensure keeps every operation of
// the DynamoDB client it hands a waiter — 1.5 MB of the api function,
// whose schema validator (text/template) makes the linker keep every
// exported method of a type stored in an interface.
func Bootstrap(ctx context.Context, cfg config.Config, awsCfg aws.Config) (config.Config, error) {
	names, err := awsres.NamesFor(cfg.ResourcePrefix)
	if err != nil {
		return cfg, err
	}
	names.Table, names.Bucket = cfg.Table, cfg.Bucket
	// As New's clients are: traced when X-Ray tracing is on.
	observe.InstrumentAWS(&awsCfg)
	ep, err := awsres.Ensure(ctx, awsCfg, names)
	if err != nil {
		return cfg, fmt.Errorf("bootstrap AWS resources: %w", err)
	}
	if cfg.QueueURL == "" {
		cfg.QueueURL = ep.DeliveryQueueURL
	}
	if cfg.DLQURL == "" {
		cfg.DLQURL = ep.DeadLetterURL
	}
	return cfg, nil
}
