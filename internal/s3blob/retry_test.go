package s3blob

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetryMode: the client's retryer follows the configuration as an SDK
// client's does — a retryer given in the configuration first, else the
// retry mode (AWS_RETRY_MODE), standard by default.
func TestRetryMode(t *testing.T) {
	given := retry.NewStandard()
	for name, tc := range map[string]struct {
		cfg   aws.Config
		check func(t *testing.T, r aws.Retryer)
	}{
		"default": {aws.Config{}, func(t *testing.T, r aws.Retryer) {
			assert.IsType(t, &retry.Standard{}, r)
		}},
		"adaptive": {aws.Config{RetryMode: aws.RetryModeAdaptive}, func(t *testing.T, r aws.Retryer) {
			assert.IsType(t, &retry.AdaptiveMode{}, r)
		}},
		"given retryer wins": {aws.Config{RetryMode: aws.RetryModeAdaptive, Retryer: func() aws.Retryer { return given }}, func(t *testing.T, r aws.Retryer) {
			assert.Same(t, given, r)
		}},
		"max attempts": {aws.Config{RetryMode: aws.RetryModeAdaptive, RetryMaxAttempts: 7}, func(t *testing.T, r aws.Retryer) {
			assert.Equal(t, 7, r.MaxAttempts())
		}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Region = "eu-west-1"
			cfg.Credentials = credentials.StaticCredentialsProvider{Value: aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}}
			c, err := newClient(cfg, "agentry-bodies")
			require.NoError(t, err)
			tc.check(t, c.retryer)
		})
	}
}
