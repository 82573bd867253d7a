package awsgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/logging"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/runtime/config"
)

// FromEnv builds the whole gateway (New) from AGENTRY_* variables and the
// standard AWS variables of a Lambda function: what the api function
// calls.
func FromEnv(ctx context.Context) (*Gateway, error) {
	return fromEnv(ctx, New)
}

// WorkerFromEnv builds the gateway without its HTTP API (NewWorker) in
// the same way: what the deliver and deadletter functions call.
func WorkerFromEnv(ctx context.Context) (*Gateway, error) {
	return fromEnv(ctx, NewWorker)
}

func fromEnv(ctx context.Context, build func(context.Context, config.Config, aws.Config, *slog.Logger, ...Option) (*Gateway, error)) (*Gateway, error) {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := observe.NewLogger(os.Stdout, level)
	slog.SetDefault(log)
	if cfg.AWSBootstrap {
		log.Warn("AGENTRY_AWS_BOOTSTRAP is ignored by the functions: the stack creates their resources (it is for agentry serve)")
	}
	awsCfg, err := functionAWSConfig()
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	return build(ctx, cfg, awsCfg, log)
}

// functionAWSConfig is the SDK configuration of a Lambda function, read
// from the environment Lambda gives it (region, the execution role's
// credentials) and the standard variables that tests and `sam local` add
// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, retry settings).
//
// It stands in for config.LoadDefaultConfig, whose credential chain
// (profiles, SSO, assume-role, web identity, containers, IMDS) links the
// STS, SSO, SSO OIDC and sign-in clients: 1.8 MB of each function, for
// sources a function never has. `agentry serve` keeps LoadDefaultConfig.
func functionAWSConfig() (aws.Config, error) {
	env, err := awsconfig.NewEnvConfig()
	if err != nil {
		return aws.Config{}, err
	}
	if env.Region == "" {
		return aws.Config{}, errors.New("AWS_REGION is not set (Lambda sets it)")
	}
	if !env.Credentials.HasKeys() {
		return aws.Config{}, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them from the function's role)")
	}
	cfg := aws.Config{
		Region:      env.Region,
		Credentials: credentials.StaticCredentialsProvider{Value: env.Credentials},
		// One connection pool for every client, as LoadDefaultConfig gives.
		HTTPClient: awshttp.NewBuildableClient(),
		Logger:     logging.NewStandardLogger(os.Stderr),
		// Each client looks here for its own endpoint
		// (AWS_ENDPOINT_URL_SQS, …) and the FIPS and dual-stack settings.
		ConfigSources:              []any{env},
		RetryMaxAttempts:           env.RetryMaxAttempts,
		RetryMode:                  env.RetryMode,
		AppID:                      env.AppID,
		AccountIDEndpointMode:      env.AccountIDEndpointMode,
		RequestChecksumCalculation: env.RequestChecksumCalculation,
		ResponseChecksumValidation: env.ResponseChecksumValidation,
	}
	if env.BaseEndpoint != "" && (env.IgnoreConfiguredEndpoints == nil || !*env.IgnoreConfiguredEndpoints) {
		cfg.BaseEndpoint = aws.String(env.BaseEndpoint)
	}
	return cfg, nil
}
