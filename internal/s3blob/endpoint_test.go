package s3blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/s3blob"
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

// TestEndpointAsTheSDKResolvesIt loads a configuration from the environment
// and a shared config file, as `agentry serve` does, and checks that the
// store sends its PUT where the SDK's own S3 client sends the same PUT:
// the SDK is the reference for FIPS, dual-stack, partitions and the
// precedence of configured endpoints. (With a configured endpoint the
// store addresses the bucket path-style, so the SDK client is asked for
// path style there.)
func TestEndpointAsTheSDKResolvesIt(t *testing.T) {
	const bucket = "agentry-prod-bodies"
	cases := []struct {
		name   string
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

			ours := &recordingTransport{}
			cfg.HTTPClient = &http.Client{Transport: ours}
			st, err := s3blob.New(cfg, bucket)
			require.NoError(t, err)
			data := []byte("body")
			ref, err := st.Put(ctx(t), data)
			require.NoError(t, err)
			key := "sha256/" + strings.TrimPrefix(ref, "sha256:")
			require.Len(t, ours.urls, 1)
			assert.Equal(t, tc.want+"/"+key, ours.urls[0])

			sdk := &recordingTransport{}
			cfg.HTTPClient = &http.Client{Transport: sdk}
			client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = strings.HasPrefix(tc.want, "http://") })
			_, err = client.PutObject(ctx(t), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
			require.NoError(t, err)
			require.Len(t, sdk.urls, 1)
			u, err := url.Parse(sdk.urls[0])
			require.NoError(t, err)
			u.RawQuery = "" // the SDK adds ?x-id=PutObject
			assert.Equal(t, u.String(), ours.urls[0], "the SDK's S3 client sends it elsewhere")
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
			assert.Contains(t, err.Error(), "cannot be combined with "+name)

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

// source is a configuration source (what cfg.ConfigSources holds) with
// one value or error for each of the endpoint settings the store reads.
type source struct {
	ignore   bool
	endpoint string
	fips     aws.FIPSEndpointState
	err      error // returned by the getter named in failing
	failing  string
}

func (s source) GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error) {
	return s.ignore, s.ignore, s.errFor("ignore")
}

func (s source) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if sdkID != "S3" {
		return "", false, nil
	}
	return s.endpoint, s.endpoint != "", s.errFor("endpoint")
}

func (s source) GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error) {
	return s.fips, s.fips != aws.FIPSEndpointStateUnset, s.errFor("fips")
}

func (s source) GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error) {
	return aws.DualStackEndpointStateUnset, false, s.errFor("dualstack")
}

func (s source) errFor(getter string) error {
	if s.failing == getter {
		return s.err
	}
	return nil
}

// TestConfigSources: the first source that has a setting decides it,
// sources that know nothing of a setting are passed over, and a source
// that fails to read one fails New with the setting named.
func TestConfigSources(t *testing.T) {
	loadEnvConfig(t, nil, "") // no endpoint variables in the environment
	broken := errors.New("shared config unreadable")
	base := func(sources ...any) aws.Config {
		return aws.Config{Region: "eu-west-1", Credentials: credentials.StaticCredentialsProvider{Value: testCreds}, ConfigSources: sources}
	}
	for _, tc := range []struct {
		name    string
		sources []any
		want    string // the PUT's URL up to the key, or
		wantErr string
	}{
		{name: "sources without endpoint settings", sources: []any{struct{}{}, "not a source"},
			want: "https://bodies.s3.eu-west-1.amazonaws.com"},
		{name: "the first source with an endpoint", sources: []any{struct{}{}, source{endpoint: "http://127.0.0.1:9000"}, source{endpoint: "http://127.0.0.1:9001"}},
			want: "http://127.0.0.1:9000/bodies"},
		{name: "FIPS from a later source", sources: []any{struct{}{}, source{fips: aws.FIPSEndpointStateEnabled}},
			want: "https://bodies.s3-fips.eu-west-1.amazonaws.com"},
		{name: "ignore configured endpoints", sources: []any{source{ignore: true}, source{endpoint: "http://127.0.0.1:9000"}},
			want: "https://bodies.s3.eu-west-1.amazonaws.com"},
		{name: "ignore setting unreadable", sources: []any{source{failing: "ignore", err: broken}}, wantErr: "endpoint for S3"},
		{name: "endpoint unreadable", sources: []any{source{failing: "endpoint", err: broken}}, wantErr: "endpoint for S3"},
		{name: "FIPS setting unreadable", sources: []any{source{failing: "fips", err: broken}}, wantErr: "FIPS endpoint setting"},
		{name: "dual-stack setting unreadable", sources: []any{source{failing: "dualstack", err: broken}}, wantErr: "dual-stack endpoint setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base(tc.sources...)
			rt := &recordingTransport{}
			cfg.HTTPClient = &http.Client{Transport: rt}
			st, err := s3blob.New(cfg, "bodies")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.ErrorIs(t, err, broken)
				return
			}
			require.NoError(t, err)
			ref, err := st.Put(ctx(t), []byte("x"))
			require.NoError(t, err)
			assert.Equal(t, []string{tc.want + "/sha256/" + strings.TrimPrefix(ref, "sha256:")}, rt.urls)
		})
	}
}
