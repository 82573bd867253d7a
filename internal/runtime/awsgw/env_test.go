package awsgw

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lambdaEnv sets what Lambda (and a test pointing the SDK at an
// emulator) gives a function; "" unsets.
func lambdaEnv(t *testing.T, vars map[string]string) {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_MAX_ATTEMPTS"} {
		t.Setenv(k, vars[k])
	}
}

// TestFunctionAWSConfig: the functions' SDK configuration honours what
// LoadDefaultConfig would for a Lambda environment — region, the role's
// session credentials, the global and per-service endpoints, retry
// attempts — and refuses to start without a region or credentials.
func TestFunctionAWSConfig(t *testing.T) {
	lambdaEnv(t, map[string]string{
		"AWS_REGION": "eu-west-3", "AWS_ACCESS_KEY_ID": "ASIATEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
		"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9324", "AWS_MAX_ATTEMPTS": "5",
	})
	cfg, err := functionAWSConfig()
	require.NoError(t, err)
	assert.Equal(t, "eu-west-3", cfg.Region)
	assert.Equal(t, 5, cfg.RetryMaxAttempts)
	creds, err := cfg.Credentials.Retrieve(t.Context())
	require.NoError(t, err)
	assert.Equal(t, aws.Credentials{AccessKeyID: "ASIATEST", SecretAccessKey: "secret", SessionToken: "token", Source: creds.Source}, creds)
	assert.Equal(t, "http://127.0.0.1:4566", aws.ToString(dynamodb.NewFromConfig(cfg).Options().BaseEndpoint))
	assert.Equal(t, "http://127.0.0.1:9324", aws.ToString(sqs.NewFromConfig(cfg).Options().BaseEndpoint), "AWS_ENDPOINT_URL_SQS")

	lambdaEnv(t, map[string]string{"AWS_REGION": "eu-west-3", "AWS_ACCESS_KEY_ID": "ASIATEST", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
	cfg, err = functionAWSConfig()
	require.NoError(t, err)
	assert.Nil(t, cfg.BaseEndpoint)

	lambdaEnv(t, map[string]string{"AWS_ACCESS_KEY_ID": "ASIATEST", "AWS_SECRET_ACCESS_KEY": "secret"})
	_, err = functionAWSConfig()
	assert.ErrorContains(t, err, "AWS_REGION")
	lambdaEnv(t, map[string]string{"AWS_REGION": "eu-west-3"})
	_, err = functionAWSConfig()
	assert.ErrorContains(t, err, "AWS_ACCESS_KEY_ID")
}
