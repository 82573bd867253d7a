package s3blob

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// sdkID is S3's name in service-specific endpoint settings:
// AWS_ENDPOINT_URL_S3, or `s3 =` under a shared config's services section.
const sdkID = "S3"

// The getters that the SDK's configuration sources (config.EnvConfig,
// config.SharedConfig, anything else put in cfg.ConfigSources) provide.
// The SDK's own lookups are internal to it, so they are repeated here,
// with the same rule: the first source that has a value decides.
type (
	fipsSource interface {
		GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error)
	}
	dualStackSource interface {
		GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error)
	}
	serviceEndpointSource interface {
		GetServiceBaseEndpoint(ctx context.Context, sdkID string) (string, bool, error)
	}
	ignoreEndpointsSource interface {
		GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error)
	}
)

// endpoint is where a client's requests go, as the configuration asks.
type endpoint struct {
	base      string // a configured endpoint URL; "" for S3 itself
	fips      bool
	dualStack bool
}

// resolveEndpoint reads the endpoint settings as the SDK's S3 client
// would. A configured endpoint for S3 alone (AWS_ENDPOINT_URL_S3, or the
// shared config's) wins over cfg.BaseEndpoint — except that the
// environment's AWS_ENDPOINT_URL wins over the shared config's setting,
// as in the SDK. FIPS and dual-stack endpoints cannot be combined with a
// configured endpoint: the SDK refuses that, and so does this.
func resolveEndpoint(cfg aws.Config) (endpoint, error) {
	ctx := context.Background()
	var ep endpoint
	if cfg.BaseEndpoint != nil {
		ep.base = *cfg.BaseEndpoint
	}
	_, global := os.LookupEnv("AWS_ENDPOINT_URL")
	_, own := os.LookupEnv("AWS_ENDPOINT_URL_" + sdkID)
	if own || !global {
		base, found, err := serviceEndpoint(ctx, cfg.ConfigSources)
		if err != nil {
			return ep, fmt.Errorf("endpoint for %s: %w", sdkID, err)
		}
		if found {
			ep.base = base
		}
	}
	fips, _, err := firstSetting(cfg.ConfigSources, func(src any) (aws.FIPSEndpointState, bool, error) {
		if s, ok := src.(fipsSource); ok {
			return s.GetUseFIPSEndpoint(ctx)
		}
		return 0, false, nil
	})
	if err != nil {
		return ep, fmt.Errorf("FIPS endpoint setting: %w", err)
	}
	dualStack, _, err := firstSetting(cfg.ConfigSources, func(src any) (aws.DualStackEndpointState, bool, error) {
		if s, ok := src.(dualStackSource); ok {
			return s.GetUseDualStackEndpoint(ctx)
		}
		return 0, false, nil
	})
	if err != nil {
		return ep, fmt.Errorf("dual-stack endpoint setting: %w", err)
	}
	ep.fips = fips == aws.FIPSEndpointStateEnabled
	ep.dualStack = dualStack == aws.DualStackEndpointStateEnabled
	if ep.base != "" && ep.fips {
		return ep, errors.New("a configured endpoint (AWS_ENDPOINT_URL…) cannot be combined with FIPS endpoints (AWS_USE_FIPS_ENDPOINT)")
	}
	if ep.base != "" && ep.dualStack {
		return ep, errors.New("a configured endpoint (AWS_ENDPOINT_URL…) cannot be combined with dual-stack endpoints (AWS_USE_DUALSTACK_ENDPOINT)")
	}
	return ep, nil
}

// serviceEndpoint is the endpoint configured for S3 alone, unless the
// configuration says to ignore configured endpoints.
func serviceEndpoint(ctx context.Context, sources []any) (string, bool, error) {
	ignore, _, err := firstSetting(sources, func(src any) (bool, bool, error) {
		if s, ok := src.(ignoreEndpointsSource); ok {
			return s.GetIgnoreConfiguredEndpoints(ctx)
		}
		return false, false, nil
	})
	if err != nil || ignore {
		return "", false, err
	}
	return firstSetting(sources, func(src any) (string, bool, error) {
		if s, ok := src.(serviceEndpointSource); ok {
			return s.GetServiceBaseEndpoint(ctx, sdkID)
		}
		return "", false, nil
	})
}

// firstSetting is the value of the first source that has one (get
// reports whether src has it), or the first error.
func firstSetting[T any](sources []any, get func(src any) (T, bool, error)) (T, bool, error) {
	for _, src := range sources {
		if v, found, err := get(src); err != nil || found {
			return v, found, err
		}
	}
	var zero T
	return zero, false, nil
}

// host is S3's host name in region: s3, s3-fips, s3.dualstack or
// s3-fips.dualstack, then the region and its partition's domain.
func (ep endpoint) host(region string) string {
	name := "s3"
	if ep.fips {
		name = "s3-fips"
	}
	if ep.dualStack {
		name += ".dualstack"
	}
	return name + "." + region + "." + partitionDomain(region)
}

// partitionDomain is the DNS suffix of the AWS partition that region
// belongs to, recognised by the region name's prefix as the SDK's
// partition table does. S3 uses it for its dual-stack names too. An
// unknown region falls in the commercial partition, as in the SDK.
func partitionDomain(region string) string {
	for _, p := range []struct{ prefix, domain string }{
		{"cn-", "amazonaws.com.cn"},
		{"eusc-", "amazonaws.eu"},
		{"us-iso-", "c2s.ic.gov"},
		{"us-isob-", "sc2s.sgov.gov"},
		{"us-isof-", "csp.hci.ic.gov"},
		{"eu-isoe-", "cloud.adc-e.uk"},
	} {
		if strings.HasPrefix(region, p.prefix) {
			return p.domain
		}
	}
	return "amazonaws.com"
}
