// Package config reads Agentry's AGENTRY_* environment variables, the one
// way every entry point (the local gateway, each Lambda) is configured.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/signature"
)

// Config is the gateway's configuration. README documents each variable.
type Config struct {
	Domain           string        // AGENTRY_DOMAIN, default localhost
	Addr             string        // AGENTRY_ADDR, default 127.0.0.1:8080
	MetricsAddr      string        // AGENTRY_METRICS_ADDR: the Prometheus listener (GET /metrics); off when empty
	DataDir          string        // AGENTRY_DATA_DIR, default ./.agentry
	AdminKey         string        // AGENTRY_ADMIN_KEY; generated into the data dir when empty
	DNSServer        string        // AGENTRY_DNS_SERVER host:port; default the system resolver
	AllowInsecure    bool          // AGENTRY_ALLOW_INSECURE=1: http:// and private targets (dev/test only)
	MaxMessageBytes  int64         // AGENTRY_MAX_MESSAGE_BYTES, default 10 MiB
	MaxInflightBytes int64         // AGENTRY_MAX_INFLIGHT_BYTES, default 32 MiB: request bodies in memory at once
	MaxRecipients    int           // AGENTRY_MAX_RECIPIENTS, default 100
	TLSCert          string        // AGENTRY_TLS_CERT
	TLSKey           string        // AGENTRY_TLS_KEY
	PublicURL        string        // AGENTRY_PUBLIC_URL, default derived from Addr and TLS
	LogLevel         string        // AGENTRY_LOG_LEVEL: debug, info, warn, error
	Workers          int           // AGENTRY_WORKERS, parallel deliveries, default 64
	RetryBase        time.Duration // AGENTRY_RETRY_BASE, default 1s (first retry delay)
	RetryMax         time.Duration // AGENTRY_RETRY_MAX, default 1h (cap)
	RetryWindow      time.Duration // AGENTRY_RETRY_WINDOW, default 168h (give up after)

	// StoreEngine is the embedded store's engine (AGENTRY_STORE_ENGINE):
	// pebble, the only one since the bbolt engine was cut down to an
	// importer (issue 22); empty for the local gateway's default
	// (localgw.DefaultEngine).
	StoreEngine string

	// Message signatures (shared/PROTOCOL.md "Signatures").
	SigningKey      string // AGENTRY_SIGNING_KEY: PKCS#8 PEM text of the gateway's signing key
	SigningKeyFile  string // AGENTRY_SIGNING_KEY_FILE: path of that PEM; local default <data dir>/signing.pem (generated)
	SigningSelector string // AGENTRY_SIGNING_SELECTOR, default "k1": the key is published at <selector>._amtpkey.<domain>
	// SignaturePolicy (AGENTRY_SIGNATURE_POLICY) is what happens to mail
	// from other domains that is unsigned, invalid or whose key cannot be
	// fetched: accept, flag (default, as the draft) or reject.
	SignaturePolicy string
	// Deprecations are warnings about deprecated settings, for the
	// runtime to log once at start.
	Deprecations []string

	// The AWS backend (AGENTRY_BACKEND=aws; the Lambdas always use it).
	Backend           string // AGENTRY_BACKEND: embedded (default) or aws
	AWSBootstrap      bool   // AGENTRY_AWS_BOOTSTRAP=1: create missing resources at start
	ResourcePrefix    string // AGENTRY_RESOURCE_PREFIX, default agentry-<domain with dashes>
	Table             string // AGENTRY_TABLE, default <prefix>-main
	QueueURL          string // AGENTRY_QUEUE_URL, default looked up by name <prefix>-delivery
	DLQURL            string // AGENTRY_DLQ_URL, default looked up by name <prefix>-delivery-dlq
	Bucket            string // AGENTRY_BUCKET, default <prefix>-bodies
	AdminKeySecretARN string // AGENTRY_ADMIN_KEY_SECRET_ARN: admin key in Secrets Manager
	// ListingShards (AGENTRY_DYNAMO_LISTING_SHARDS) and InboxShards
	// (AGENTRY_DYNAMO_INBOX_SHARDS): partitions per DynamoDB listing and
	// per inbox; 0 takes the dynamo adapter's defaults. Grow only.
	ListingShards, InboxShards int
	// AGENTRY_SIGNING_KEY_SECRET_ARN: the signing key's PEM in Secrets
	// Manager, read on first use like the admin key.
	SigningKeySecretARN string
	// StateMachineARN (AGENTRY_STATE_MACHINE_ARN): the coordination state
	// machine; workflows run on Step Functions when it is set, in process
	// (queue tasks as timers) when it is not.
	StateMachineARN string
	// VerifyAttachments (AGENTRY_VERIFY_ATTACHMENTS, default 0): fetch the
	// attachments local agents submit, through the SSRF guard, and check
	// size and hash; AttachmentMaxBytes (AGENTRY_ATTACHMENT_MAX_BYTES,
	// default 25 MiB) bounds each download.
	VerifyAttachments  bool
	AttachmentMaxBytes int64
	// SchemaValidation (AGENTRY_SCHEMA_VALIDATION, default 1): validate
	// payloads that name a schema against the registry, and hold agents
	// to their supported_schemas.
	SchemaValidation bool
	// Policy is the access policy (draft §9.4), parsed at start so that a
	// bad file stops the gateway instead of letting everything through:
	// from the file AGENTRY_POLICY_FILE names, or inline YAML in
	// AGENTRY_POLICY (how the CDK stack hands it to the Lambdas). nil when
	// neither is set: everything allowed, nothing limited.
	Policy     *policy.Policy
	PolicyFile string

	// OAuth 2.0 bearer tokens (JWTs), accepted under /oauth/…. Locally the
	// gateway verifies them against the issuer's keys; on AWS the HTTP
	// API's JWT authorizer has, and these only say how to read the claims.
	OAuthIssuer     string // AGENTRY_OAUTH_ISSUER: exact iss; enables OAuth
	OAuthAudience   string // AGENTRY_OAUTH_AUDIENCE: required with the issuer
	OAuthJWKSURL    string // AGENTRY_OAUTH_JWKS_URL: default from the issuer's OpenID configuration
	OAuthAgentClaim string // AGENTRY_OAUTH_AGENT_CLAIM, default sub: the claim naming the agent
	OAuthAdminScope string // AGENTRY_OAUTH_ADMIN_SCOPE, default amtp:admin

	// Mutual TLS with other gateways. TLSClientCA (AGENTRY_TLS_CLIENT_CA,
	// a PEM bundle) makes the local TLS listener ask for and verify client
	// certificates; RequirePeerMTLS (AGENTRY_REQUIRE_PEER_MTLS, default 1
	// when a CA is given) refuses mail from other domains whose gateway did
	// not present one naming the sender's domain. TLSClientCert/Key
	// (AGENTRY_TLS_CLIENT_CERT / _KEY) are the certificate this gateway
	// presents when it delivers to others.
	TLSClientCA     string
	RequirePeerMTLS bool
	TLSClientCert   string
	TLSClientKey    string
	// TLSRootCA (AGENTRY_TLS_ROOT_CA, a PEM bundle) adds trust roots for
	// outbound TLS: partners on a private PKI, and tests.
	TLSRootCA string

	// Email is the SMTP bridge (email.go).
	Email Email
}

// OAuth reports whether OAuth bearer tokens are accepted.
func (c Config) OAuth() bool { return c.OAuthIssuer != "" }

// Getenv is os.Getenv; tests pass a map's lookup instead.
type Getenv func(string) string

// DefaultSigningSelector is the selector of the gateway's signing key when
// none is configured (the draft's examples use k1).
const DefaultSigningSelector = "k1"

// Signature policies (draft §9.3.4).
const (
	SignatureAccept = "accept"
	SignatureFlag   = "flag"
	SignatureReject = "reject"
)

// signaturePolicy reads AGENTRY_SIGNATURE_POLICY, or for one release the
// AGENTRY_REQUIRE_SIGNATURES it replaces (1 = reject, 0 = accept). Both
// set and disagreeing is refused rather than resolved by precedence.
func signaturePolicy(getenv Getenv) (string, error) {
	pol := strings.ToLower(strings.TrimSpace(getenv("AGENTRY_SIGNATURE_POLICY")))
	switch pol {
	case "", SignatureAccept, SignatureFlag, SignatureReject:
	default:
		return "", fmt.Errorf("AGENTRY_SIGNATURE_POLICY %q: must be accept, flag or reject", pol)
	}
	old := strings.TrimSpace(getenv("AGENTRY_REQUIRE_SIGNATURES"))
	if old == "" {
		if pol == "" {
			return SignatureFlag, nil
		}
		return pol, nil
	}
	require, err := parseBool(old)
	if err != nil {
		return "", fmt.Errorf("AGENTRY_REQUIRE_SIGNATURES: %w", err)
	}
	mapped := SignatureAccept
	if require {
		mapped = SignatureReject
	}
	if pol != "" && pol != mapped {
		return "", fmt.Errorf("AGENTRY_REQUIRE_SIGNATURES=%s (deprecated) means %s, but AGENTRY_SIGNATURE_POLICY=%s: unset AGENTRY_REQUIRE_SIGNATURES", old, mapped, pol)
	}
	return mapped, nil
}

// FromEnv reads the configuration.
func FromEnv(getenv Getenv) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		Domain:    get("AGENTRY_DOMAIN", "localhost"),
		Addr:      get("AGENTRY_ADDR", "127.0.0.1:8080"),
		DataDir:   get("AGENTRY_DATA_DIR", "./.agentry"),
		AdminKey:  getenv("AGENTRY_ADMIN_KEY"),
		DNSServer: get("AGENTRY_DNS_SERVER", ""),
		TLSCert:   get("AGENTRY_TLS_CERT", ""),
		TLSKey:    get("AGENTRY_TLS_KEY", ""),
		PublicURL: get("AGENTRY_PUBLIC_URL", ""),
		LogLevel:  get("AGENTRY_LOG_LEVEL", "info"),
		// PEM text keeps its line breaks; only surrounding blanks go.
		SigningKey:      strings.TrimSpace(getenv("AGENTRY_SIGNING_KEY")),
		SigningKeyFile:  get("AGENTRY_SIGNING_KEY_FILE", ""),
		SigningSelector: strings.ToLower(get("AGENTRY_SIGNING_SELECTOR", DefaultSigningSelector)),
	}
	var errs []error
	d, err := amtp.NormalizeDomain(c.Domain)
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_DOMAIN %q: %w", c.Domain, err))
	}
	c.Domain = d
	c.AllowInsecure, err = parseBool(get("AGENTRY_ALLOW_INSECURE", "0"))
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_ALLOW_INSECURE: %w", err))
	}
	c.MaxMessageBytes, err = parseInt(get("AGENTRY_MAX_MESSAGE_BYTES", "10485760"), 1024, 1<<30)
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_MAX_MESSAGE_BYTES: %w", err))
	}
	c.MaxInflightBytes, err = parseInt(get("AGENTRY_MAX_INFLIGHT_BYTES", "33554432"), 1<<20, 1<<40)
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_MAX_INFLIGHT_BYTES: %w", err))
	}
	n, err := parseInt(get("AGENTRY_MAX_RECIPIENTS", "100"), 1, 10000)
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_MAX_RECIPIENTS: %w", err))
	}
	c.MaxRecipients = int(n)
	n, err = parseInt(get("AGENTRY_WORKERS", "64"), 1, 1024)
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_WORKERS: %w", err))
	}
	c.Workers = int(n)
	for _, d := range []struct {
		name, def string
		dst       *time.Duration
	}{
		{"AGENTRY_RETRY_BASE", "1s", &c.RetryBase},
		{"AGENTRY_RETRY_MAX", "1h", &c.RetryMax},
		{"AGENTRY_RETRY_WINDOW", "168h", &c.RetryWindow},
	} {
		v, err := time.ParseDuration(get(d.name, d.def))
		if err != nil || v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be a positive duration like 1s", d.name))
		}
		*d.dst = v
	}
	c.Backend = get("AGENTRY_BACKEND", "embedded")
	if c.Backend != "embedded" && c.Backend != "aws" {
		errs = append(errs, fmt.Errorf("AGENTRY_BACKEND %q: must be embedded or aws", c.Backend))
	}
	c.StoreEngine = get("AGENTRY_STORE_ENGINE", "")
	switch c.StoreEngine {
	case "", "pebble":
	case "bbolt":
		errs = append(errs, errors.New("AGENTRY_STORE_ENGINE bbolt: that engine was removed; unset the variable "+
			"(the Pebble store imports a bbolt data directory at its first start and keeps its files as *.pre-pebble)"))
	default:
		errs = append(errs, fmt.Errorf("AGENTRY_STORE_ENGINE %q: must be pebble", c.StoreEngine))
	}
	if c.MetricsAddr, err = loopbackByDefault(get("AGENTRY_METRICS_ADDR", "")); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_METRICS_ADDR: %w", err))
	}
	c.AWSBootstrap, err = parseBool(get("AGENTRY_AWS_BOOTSTRAP", "0"))
	if err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_AWS_BOOTSTRAP: %w", err))
	}
	c.ResourcePrefix = get("AGENTRY_RESOURCE_PREFIX", awsres.DefaultPrefix(c.Domain))
	if names, err := awsres.NamesFor(c.ResourcePrefix); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_RESOURCE_PREFIX: %w", err))
	} else {
		c.Table = get("AGENTRY_TABLE", names.Table)
		c.Bucket = get("AGENTRY_BUCKET", names.Bucket)
	}
	c.QueueURL = get("AGENTRY_QUEUE_URL", "")
	for _, sh := range []struct {
		name string
		dst  *int
	}{{"AGENTRY_DYNAMO_LISTING_SHARDS", &c.ListingShards}, {"AGENTRY_DYNAMO_INBOX_SHARDS", &c.InboxShards}} {
		n, err := parseInt(get(sh.name, "0"), 0, 16)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sh.name, err))
		}
		*sh.dst = int(n)
	}
	c.DLQURL = get("AGENTRY_DLQ_URL", "")
	c.AdminKeySecretARN = get("AGENTRY_ADMIN_KEY_SECRET_ARN", "")
	c.SigningKeySecretARN = get("AGENTRY_SIGNING_KEY_SECRET_ARN", "")
	c.StateMachineARN = get("AGENTRY_STATE_MACHINE_ARN", "")
	if c.SchemaValidation, err = parseBool(get("AGENTRY_SCHEMA_VALIDATION", "1")); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_SCHEMA_VALIDATION: %w", err))
	}
	if c.VerifyAttachments, err = parseBool(get("AGENTRY_VERIFY_ATTACHMENTS", "0")); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_VERIFY_ATTACHMENTS: %w", err))
	}
	if c.AttachmentMaxBytes, err = strconv.ParseInt(get("AGENTRY_ATTACHMENT_MAX_BYTES", "26214400"), 10, 64); err != nil || c.AttachmentMaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("AGENTRY_ATTACHMENT_MAX_BYTES: want a positive number of bytes"))
	}
	if c.SignaturePolicy, err = signaturePolicy(getenv); err != nil {
		errs = append(errs, err)
	} else if getenv("AGENTRY_REQUIRE_SIGNATURES") != "" && getenv("AGENTRY_SIGNATURE_POLICY") == "" {
		c.Deprecations = append(c.Deprecations, fmt.Sprintf("AGENTRY_REQUIRE_SIGNATURES is deprecated and will be removed in the next release: set AGENTRY_SIGNATURE_POLICY=%s instead", c.SignaturePolicy))
	}
	// One source of the key, so that which key signs is never a question
	// of precedence rules.
	keySources := 0
	for _, v := range []string{c.SigningKey, c.SigningKeyFile, c.SigningKeySecretARN} {
		if v != "" {
			keySources++
		}
	}
	if keySources > 1 {
		errs = append(errs, errors.New("set only one of AGENTRY_SIGNING_KEY, AGENTRY_SIGNING_KEY_FILE and AGENTRY_SIGNING_KEY_SECRET_ARN"))
	}
	// The selector becomes a DNS label (<selector>._amtpkey.<domain>), so
	// it is checked now rather than at the first signature.
	if _, err := signature.ParseSelector(c.SigningSelector); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_SIGNING_SELECTOR %q: %w", c.SigningSelector, err))
	}
	email, emailErrs := emailFromEnv(getenv, c.DataDir, c.Domain)
	c.Email = email
	errs = append(errs, emailErrs...)
	c.PolicyFile = get("AGENTRY_POLICY_FILE", "")
	if c.Policy, err = loadPolicy(c.PolicyFile, getenv("AGENTRY_POLICY")); err != nil {
		errs = append(errs, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("AGENTRY_TLS_CERT and AGENTRY_TLS_KEY must be set together"))
	}
	c.OAuthIssuer = get("AGENTRY_OAUTH_ISSUER", "")
	c.OAuthAudience = get("AGENTRY_OAUTH_AUDIENCE", "")
	c.OAuthJWKSURL = get("AGENTRY_OAUTH_JWKS_URL", "")
	c.OAuthAgentClaim = get("AGENTRY_OAUTH_AGENT_CLAIM", "sub")
	c.OAuthAdminScope = get("AGENTRY_OAUTH_ADMIN_SCOPE", "amtp:admin")
	if c.OAuthIssuer != "" && c.OAuthAudience == "" {
		errs = append(errs, errors.New("AGENTRY_OAUTH_AUDIENCE is required with AGENTRY_OAUTH_ISSUER (a token for another API must not work here)"))
	}
	if c.OAuthIssuer == "" && (c.OAuthAudience != "" || c.OAuthJWKSURL != "") {
		errs = append(errs, errors.New("AGENTRY_OAUTH_AUDIENCE and AGENTRY_OAUTH_JWKS_URL need AGENTRY_OAUTH_ISSUER"))
	}
	c.TLSClientCA = get("AGENTRY_TLS_CLIENT_CA", "")
	c.TLSClientCert = get("AGENTRY_TLS_CLIENT_CERT", "")
	c.TLSClientKey = get("AGENTRY_TLS_CLIENT_KEY", "")
	c.TLSRootCA = get("AGENTRY_TLS_ROOT_CA", "")
	def := "0"
	if c.TLSClientCA != "" {
		def = "1"
	}
	if c.RequirePeerMTLS, err = parseBool(get("AGENTRY_REQUIRE_PEER_MTLS", def)); err != nil {
		errs = append(errs, fmt.Errorf("AGENTRY_REQUIRE_PEER_MTLS: %w", err))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("AGENTRY_TLS_CLIENT_CA needs AGENTRY_TLS_CERT: client certificates are only asked for over TLS"))
	}
	if (c.TLSClientCert == "") != (c.TLSClientKey == "") {
		errs = append(errs, errors.New("AGENTRY_TLS_CLIENT_CERT and AGENTRY_TLS_CLIENT_KEY must be set together"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("AGENTRY_LOG_LEVEL %q: must be debug, info, warn or error", c.LogLevel))
	}
	if c.PublicURL == "" {
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		c.PublicURL = scheme + "://" + c.Addr
	}
	return c, errors.Join(errs...)
}

// maxPolicyBytes bounds the policy file: it is read whole, at start.
const maxPolicyBytes = 1 << 20

func loadPolicy(file, inline string) (*policy.Policy, error) {
	var (
		src  []byte
		name string
	)
	switch {
	case file != "" && strings.TrimSpace(inline) != "":
		return nil, errors.New("set only one of AGENTRY_POLICY_FILE and AGENTRY_POLICY")
	case file != "":
		name = "AGENTRY_POLICY_FILE " + file
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer func() { _ = f.Close() }()
		src, err = io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(src) > maxPolicyBytes {
			return nil, fmt.Errorf("%s: larger than %d bytes", name, maxPolicyBytes)
		}
	case strings.TrimSpace(inline) != "":
		name, src = "AGENTRY_POLICY", []byte(inline)
	default:
		return nil, nil
	}
	p, err := policy.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use 1 or 0)", v)
}

func parseInt(v string, min, max int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%q must be a whole number from %d to %d", v, min, max)
	}
	return n, nil
}
