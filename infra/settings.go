package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
)

// Settings are everything that differs between deployments. They come
// from CDK context (`cdk deploy -c stage=prod -c domain=example.com`;
// the Makefile turns STAGE=, DOMAIN=, … into those flags), so nothing in
// the stack is tied to one account or domain.
type Settings struct {
	Stage  string // context "stage": dev (default), prod, or another name
	Prefix string // context "prefix": resource name prefix, default agentry-<stage>
	Domain string // context "domain": the AMTP domain served (AGENTRY_DOMAIN)

	// LambdaDir holds <function>/bootstrap for each function (context
	// "lambdaDir", else AGENTRY_LAMBDA_DIR, else ../bin/lambda as built by
	// `make lambdas` — cdk runs in infra/).
	LambdaDir string

	// Custom domain for the API. With a hosted zone (context hostedZoneId
	// + hostedZoneName) the stack also validates the certificate, points
	// APIHost at the API and publishes the _amtp TXT record itself.
	HostedZoneID   string // context "hostedZoneId"
	HostedZoneName string // context "hostedZoneName", e.g. example.com
	APIHost        string // context "apiHost", default amtp.<domain> when a zone is given
	CertificateARN string // context "certificateArn": an existing ACM certificate for APIHost

	AlarmEmail      string // context "alarmEmail": subscribed to the alarm topic
	LogLevel        string // context "logLevel": AGENTRY_LOG_LEVEL, default info
	MaxMessageBytes int64  // context "maxMessageBytes": AGENTRY_MAX_MESSAGE_BYTES

	// PolicyFile (context "policyFile") is the access policy (draft §9.4)
	// read at synth time: a policy that does not parse fails the synth with
	// the parser's line and path, never a deployment. Its text (Policy)
	// reaches the api function as AGENTRY_POLICY.
	PolicyFile string
	Policy     string

	// OAuth 2.0 (context "oauthIssuer", "oauthAudience", both or
	// neither): an HTTP API JWT authorizer guards ANY /oauth/{proxy+};
	// the api function reads the verified claims from the request.
	OAuthIssuer   string
	OAuthAudience string

	// Mutual TLS for peer gateways (context "mtlsTruststore", an
	// s3://bucket/key PEM bundle of the CAs whose client certificates are
	// accepted, and optionally "mtlsTruststoreVersion"). API Gateway's
	// mTLS applies to a whole custom domain, so peers get their own host,
	// PeerHost (context "peerHost", default amtp-peer.<domain>), which
	// becomes the TXT record's gateway=; agents keep the API host and
	// their keys. Needs a hosted zone, or peerCertificateArn.
	MTLSTruststore        string
	MTLSTruststoreVersion string
	PeerHost              string
	PeerCertificateARN    string
}

// OAuth is whether OAuth bearer tokens are accepted.
func (s Settings) OAuth() bool { return s.OAuthIssuer != "" }

// MTLS is whether peers must present client certificates.
func (s Settings) MTLS() bool { return s.MTLSTruststore != "" }

// MaxPolicyBytes bounds the policy carried in AGENTRY_POLICY: Lambda allows
// 4 KB of environment per function, shared with the other variables.
const MaxPolicyBytes = 2048

// Production is whether data must survive mistakes: retained tables,
// buckets, secrets and logs, deletion protection, termination protection.
func (s Settings) Production() bool { return s.Stage == "prod" }

// CustomDomain is whether the API gets its own host name.
func (s Settings) CustomDomain() bool { return s.APIHost != "" }

// HostedZone is whether DNS records are managed by the stack.
func (s Settings) HostedZone() bool { return s.HostedZoneID != "" }

// DefaultMaxMessageBytes is the largest message accepted on AWS. Lower
// than the local gateway's 10 MiB because API Gateway hands the request
// to Lambda in a synchronous invocation, whose payload limit is 6 MB for
// the whole event (headers and JSON envelope included).
const DefaultMaxMessageBytes = 5 << 20

var stageRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// SettingsFromContext reads Settings from the construct tree's context
// (cdk.json, -c flags, or the test's AppProps) and, for the Lambda
// directory, the environment.
func SettingsFromContext(node constructs.Node, getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	ctx := func(key string) string {
		if v := node.TryGetContext(&key); v != nil {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		return ""
	}
	s := Settings{
		Stage: ctx("stage"), Prefix: ctx("prefix"), Domain: ctx("domain"), LambdaDir: ctx("lambdaDir"),
		HostedZoneID: ctx("hostedZoneId"), HostedZoneName: strings.TrimSuffix(ctx("hostedZoneName"), "."),
		APIHost: ctx("apiHost"), CertificateARN: ctx("certificateArn"), AlarmEmail: ctx("alarmEmail"),
		LogLevel: ctx("logLevel"), PolicyFile: ctx("policyFile"),
		OAuthIssuer: ctx("oauthIssuer"), OAuthAudience: ctx("oauthAudience"),
		MTLSTruststore: ctx("mtlsTruststore"), MTLSTruststoreVersion: ctx("mtlsTruststoreVersion"),
		PeerHost: ctx("peerHost"), PeerCertificateARN: ctx("peerCertificateArn"),
	}
	if s.LambdaDir == "" {
		s.LambdaDir = getenv("AGENTRY_LAMBDA_DIR")
	}
	if v := ctx("maxMessageBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("context maxMessageBytes %q: %w", v, err)
		}
		s.MaxMessageBytes = n
	}
	return s.withDefaults()
}

// withDefaults fills in and checks the settings.
func (s Settings) withDefaults() (Settings, error) {
	var errs []error
	if s.Stage == "" {
		s.Stage = "dev"
	}
	if !stageRE.MatchString(s.Stage) {
		errs = append(errs, fmt.Errorf("stage %q: use 1-16 lower-case letters, digits and hyphens", s.Stage))
	}
	if s.Prefix == "" {
		s.Prefix = "agentry-" + s.Stage
	}
	if _, err := awsres.NamesFor(s.Prefix); err != nil {
		errs = append(errs, err)
	}
	if s.Domain == "" {
		if s.Production() {
			// A production gateway for a made-up domain would be reachable
			// by nobody: make the operator say which domain it serves.
			errs = append(errs, errors.New("stage prod needs the AMTP domain: -c domain=example.com (make deploy DOMAIN=…)"))
		}
		s.Domain = "example.com"
	}
	if d, err := amtp.NormalizeDomain(s.Domain); err != nil {
		errs = append(errs, fmt.Errorf("domain %q: %w", s.Domain, err))
	} else {
		s.Domain = d
	}
	if s.LambdaDir == "" {
		s.LambdaDir = filepath.Join("..", "bin", "lambda")
	}
	if abs, err := filepath.Abs(s.LambdaDir); err == nil {
		s.LambdaDir = abs
	}
	if s.HostedZone() != (s.HostedZoneName != "") {
		errs = append(errs, errors.New("hostedZoneId and hostedZoneName go together"))
	}
	if s.HostedZone() {
		if s.Domain != s.HostedZoneName && !strings.HasSuffix(s.Domain, "."+s.HostedZoneName) {
			errs = append(errs, fmt.Errorf("domain %s is not in hosted zone %s, so its _amtp record cannot be published there", s.Domain, s.HostedZoneName))
		}
		if s.APIHost == "" {
			s.APIHost = "amtp." + s.Domain
		}
	}
	if s.APIHost != "" {
		if !s.HostedZone() && s.CertificateARN == "" {
			errs = append(errs, errors.New("apiHost without a hosted zone needs certificateArn (a certificate for that name)"))
		}
		if s.HostedZone() && s.APIHost != s.HostedZoneName && !strings.HasSuffix(s.APIHost, "."+s.HostedZoneName) {
			errs = append(errs, fmt.Errorf("apiHost %s is not in hosted zone %s", s.APIHost, s.HostedZoneName))
		}
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}
	if s.PolicyFile != "" {
		if err := s.readPolicy(); err != nil {
			errs = append(errs, err)
		}
	}
	if (s.OAuthIssuer == "") != (s.OAuthAudience == "") {
		errs = append(errs, errors.New("oauthIssuer and oauthAudience go together (a token for another API must not work here)"))
	}
	if s.OAuthIssuer != "" && !strings.HasPrefix(s.OAuthIssuer, "https://") {
		errs = append(errs, fmt.Errorf("oauthIssuer %q: API Gateway's JWT authorizer needs an https issuer", s.OAuthIssuer))
	}
	if s.MTLS() {
		if _, _, ok := s.truststore(); !ok {
			errs = append(errs, fmt.Errorf("mtlsTruststore %q: want s3://bucket/key", s.MTLSTruststore))
		}
		if s.PeerHost == "" {
			s.PeerHost = "amtp-peer." + s.Domain
		}
		if !s.HostedZone() && s.PeerCertificateARN == "" {
			errs = append(errs, errors.New("mtlsTruststore without a hosted zone needs peerCertificateArn (a certificate for peerHost)"))
		}
	} else if s.PeerHost != "" || s.PeerCertificateARN != "" || s.MTLSTruststoreVersion != "" {
		errs = append(errs, errors.New("peerHost, peerCertificateArn and mtlsTruststoreVersion need mtlsTruststore"))
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("logLevel %q: debug, info, warn or error", s.LogLevel))
	}
	if s.MaxMessageBytes == 0 {
		s.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if s.MaxMessageBytes < 1024 || s.MaxMessageBytes > DefaultMaxMessageBytes {
		errs = append(errs, fmt.Errorf("maxMessageBytes %d: from 1024 to %d (the Lambda payload limit)", s.MaxMessageBytes, DefaultMaxMessageBytes))
	}
	return s, errors.Join(errs...)
}

// truststore splits s3://bucket/key.
func (s Settings) truststore() (bucket, key string, ok bool) {
	rest, ok := strings.CutPrefix(s.MTLSTruststore, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, key, ok = strings.Cut(rest, "/")
	return bucket, key, ok && bucket != "" && key != ""
}

func (s *Settings) readPolicy() error {
	data, err := os.ReadFile(s.PolicyFile)
	if err != nil {
		return fmt.Errorf("policyFile: %w", err)
	}
	if len(data) > MaxPolicyBytes {
		return fmt.Errorf("policyFile %s: %d bytes; a policy for AWS must fit in %d (it travels in a Lambda environment variable)", s.PolicyFile, len(data), MaxPolicyBytes)
	}
	if _, err := policy.Parse(data); err != nil {
		return fmt.Errorf("policyFile %s: %w", s.PolicyFile, err)
	}
	s.Policy = string(data)
	return nil
}

// checkLambdaDir makes a missing build a clear error at synth time
// rather than a deployment of empty functions.
func (s Settings) checkLambdaDir() error {
	var missing []string
	for _, f := range functionSpecs {
		if st, err := os.Stat(filepath.Join(s.LambdaDir, f.Name, "bootstrap")); err != nil || st.IsDir() {
			missing = append(missing, filepath.Join(s.LambdaDir, f.Name, "bootstrap"))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("function code missing (run `make lambdas`, or point -c lambdaDir / AGENTRY_LAMBDA_DIR at the built functions): %s", strings.Join(missing, ", "))
	}
	return nil
}
