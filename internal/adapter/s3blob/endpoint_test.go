package s3blob_test

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/s3blob"
)

// endpointEnv lists every variable that bears on where S3 requests go;
// each case starts with all of them unset.
var endpointEnv = []string{
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS",
}

// TestEndpointFromConfiguration loads a configuration from the environment
// and a shared config file, as `agentry serve` does, and checks where the
// store sends its PUT: FIPS, dual-stack, partitions, the precedence of
// configured endpoints, path-style under a configured endpoint (emulators
// on 127.0.0.1 have no DNS for bucket host names), and path-style on AWS
// for a bucket name that cannot be a host name.
func TestEndpointFromConfiguration(t *testing.T) {
	const bucket = "agentry-prod-bodies"
	cases := []struct {
		name   string
		bucket string // bucket when empty
		env    map[string]string
		shared string // the shared config file's default profile, after [default]
		want   string // the URL of the PUT, up to the key
	}{
		{name: "commercial", env: map[string]string{"AWS_REGION": "eu-west-1"},
			want: "https://agentry-prod-bodies.s3.eu-west-1.amazonaws.com"},
		{name: "FIPS in GovCloud", env: map[string]string{"AWS_REGION": "us-gov-west-1", "AWS_USE_FIPS_ENDPOINT": "true"},
			want: "https://agentry-prod-bodies.s3-fips.us-gov-west-1.amazonaws.com"},
		{name: "FIPS from the shared config", env: map[string]string{"AWS_REGION": "us-east-2"}, shared: "use_fips_endpoint = true",
			want: "https://agentry-prod-bodies.s3-fips.us-east-2.amazonaws.com"},
		{name: "the environment's FIPS setting wins", env: map[string]string{"AWS_REGION": "us-east-2", "AWS_USE_FIPS_ENDPOINT": "false"}, shared: "use_fips_endpoint = true",
			want: "https://agentry-prod-bodies.s3.us-east-2.amazonaws.com"},
		{name: "dual-stack", env: map[string]string{"AWS_REGION": "eu-central-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
			want: "https://agentry-prod-bodies.s3.dualstack.eu-central-1.amazonaws.com"},
		{name: "the environment's dual-stack setting wins", env: map[string]string{"AWS_REGION": "eu-central-1", "AWS_USE_DUALSTACK_ENDPOINT": "false"}, shared: "use_dualstack_endpoint = true",
			want: "https://agentry-prod-bodies.s3.eu-central-1.amazonaws.com"},
		{name: "FIPS and dual-stack", env: map[string]string{"AWS_REGION": "us-east-1", "AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
			want: "https://agentry-prod-bodies.s3-fips.dualstack.us-east-1.amazonaws.com"},
		{name: "China, dual-stack", env: map[string]string{"AWS_REGION": "cn-north-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
			want: "https://agentry-prod-bodies.s3.dualstack.cn-north-1.amazonaws.com.cn"},
		{name: "European Sovereign Cloud", env: map[string]string{"AWS_REGION": "eusc-de-east-1"},
			want: "https://agentry-prod-bodies.s3.eusc-de-east-1.amazonaws.eu"},
		{name: "ISO", env: map[string]string{"AWS_REGION": "us-iso-east-1"},
			want: "https://agentry-prod-bodies.s3.us-iso-east-1.c2s.ic.gov"},
		{name: "ISO-B, FIPS", env: map[string]string{"AWS_REGION": "us-isob-east-1", "AWS_USE_FIPS_ENDPOINT": "true"},
			want: "https://agentry-prod-bodies.s3-fips.us-isob-east-1.sc2s.sgov.gov"},
		{name: "ISO-F", env: map[string]string{"AWS_REGION": "us-isof-south-1"},
			want: "https://agentry-prod-bodies.s3.us-isof-south-1.csp.hci.ic.gov"},
		{name: "ISO-E", env: map[string]string{"AWS_REGION": "eu-isoe-west-1"},
			want: "https://agentry-prod-bodies.s3.eu-isoe-west-1.cloud.adc-e.uk"},
		{name: "a bucket name with dots, path-style on AWS", bucket: "agentry.prod.bodies", env: map[string]string{"AWS_REGION": "eu-west-1"},
			want: "https://s3.eu-west-1.amazonaws.com/agentry.prod.bodies"},
		{name: "AWS_ENDPOINT_URL", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
			want: "http://127.0.0.1:4566/agentry-prod-bodies"},
		{name: "AWS_ENDPOINT_URL_S3", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000/s3"},
			want: "http://127.0.0.1:9000/s3/agentry-prod-bodies"},
		{name: "AWS_ENDPOINT_URL_S3 wins", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"},
			want: "http://127.0.0.1:9000/agentry-prod-bodies"},
		{name: "the shared config's S3 endpoint", env: map[string]string{"AWS_REGION": "eu-west-1"}, shared: "services = local\n[services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9001",
			want: "http://127.0.0.1:9001/agentry-prod-bodies"},
		{name: "AWS_ENDPOINT_URL wins over the shared config's", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, shared: "services = local\n[services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9001",
			want: "http://127.0.0.1:4566/agentry-prod-bodies"},
		{name: "configured endpoints ignored", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
			want: "https://agentry-prod-bodies.s3.eu-west-1.amazonaws.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadEnvConfig(t, tc.env, tc.shared)
			rt := &recordingTransport{}
			cfg.HTTPClient = &http.Client{Transport: rt}
			name := cmp.Or(tc.bucket, bucket)
			st, err := s3blob.New(cfg, name)
			require.NoError(t, err)
			ref, err := st.Put(ctx(t), []byte("body"))
			require.NoError(t, err)
			assert.Equal(t, []string{tc.want + "/sha256/" + strings.TrimPrefix(ref, "sha256:")}, rt.urls)
		})
	}
}

// TestEndpointConflicts: FIPS and dual-stack endpoints are AWS's own, so
// they cannot be combined with a configured endpoint; the store refuses
// the configuration when it is built, where the SDK's client would fail
// every request.
func TestEndpointConflicts(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"FIPS":       {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_USE_FIPS_ENDPOINT": "true"},
		"dual-stack": {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := loadEnvConfig(t, env, "")
			_, err := s3blob.New(cfg, "agentry-prod-bodies")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "no usable S3 endpoint")
			assert.Contains(t, err.Error(), name)
			assert.Contains(t, err.Error(), "custom endpoint")

			cfg.HTTPClient = &http.Client{Transport: &recordingTransport{}}
			sum := sha256.Sum256(nil)
			_, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).PutObject(ctx(t), &s3.PutObjectInput{
				Bucket: aws.String("agentry-prod-bodies"), Key: aws.String("sha256/" + hex.EncodeToString(sum[:])), Body: bytes.NewReader(nil)})
			assert.Error(t, err, "the SDK's client accepts this configuration, so should the store")
		})
	}
}

// loadEnvConfig loads the SDK configuration from exactly env and a shared
// config file holding shared under [default], with static credentials.
func loadEnvConfig(t *testing.T, env map[string]string, shared string) aws.Config {
	t.Helper()
	for _, k := range endpointEnv {
		t.Setenv(k, "") // restored after the test
		require.NoError(t, os.Unsetenv(k))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(file, []byte("[default]\n"+shared+"\n"), 0o600))
	t.Setenv("AWS_CONFIG_FILE", file)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ACCESS_KEY_ID", testCreds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testCreds.SecretAccessKey)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(ctx(t))
	require.NoError(t, err)
	return cfg
}
