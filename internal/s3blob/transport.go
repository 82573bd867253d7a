package s3blob

// Why S3 is not called through the SDK's S3 client (service/s3)
//
// The api function links gojsonschema, which formats its errors with
// text/template; text/template calls methods by name (reflect's
// MethodByName), and from then on the linker must keep every exported
// method of every type that is converted to an interface anywhere in the
// program. s3.New itself stores the *s3.Client in an interface (the S3
// Express credentials provider, finalizeExpressCredentials), so merely
// building an S3 client links all of its ~100 operations with their
// serializers and deserializers: 3.4 MB, whatever the code calls. The api
// bootstrap (linux/arm64, -trimpath -s -w) measured 18,612,386 bytes
// (17.75 MiB) with service/s3 and 14,090,402 bytes (13.44 MiB) with this
// file instead; deliver and deadletter went from 12,189,858 bytes
// (11.63 MiB) to 11,272,354 (10.75 MiB).
//
// We need two operations on keys we make ourselves: PutObject and
// GetObject of "sha256/<hex>". They are assembled here from the same
// parts the generated clients use — a smithy middleware stack per call,
// the SDK's retry middleware and retryer, its SigV4 signer, its HTTP
// client handler — so that everything configured through aws.Config keeps
// working unchanged: region, credentials, HTTP client, Retryer and
// RetryMaxAttempts, and above all cfg.APIOptions, through which
// internal/observe records X-Ray subsegments and internal/awscost counts
// calls (both find S3 by ServiceID and the operation name).
//
// The endpoint settings that an SDK client reads from cfg.ConfigSources are
// honoured the same way (endpoint.go): AWS_ENDPOINT_URL_S3 and the shared
// config's services section, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, FIPS and
// dual-stack endpoints, and the partition's domain; so is retry mode
// "adaptive". A FIPS deployment whose DynamoDB and SQS clients go to FIPS
// endpoints must not send bodies to a plain one.
//
// Not supported, because nothing here uses them: S3 Express, access
// points, S3 Accelerate, and clock-skew correction of the signing time
// (Lambda's clock is kept in sync).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ServiceID is S3's service id, as the SDK's S3 client registers it
// (s3.ServiceID): what middleware from cfg.APIOptions sees.
const ServiceID = "S3"

// signingName is the service name in S3's SigV4 credential scope.
const signingName = "s3"

const (
	opPutObject = "PutObject"
	opGetObject = "GetObject"
)

const (
	headerContentSHA256 = "X-Amz-Content-Sha256"
	headerRequestID     = "X-Amz-Request-Id"
	// emptySHA256 is the hex SHA-256 of no bytes: the payload hash of a GET.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// codeNotFound is the error code of a 404 without a body, named after the
// status as the SDK's S3 client names it.
const codeNotFound = "NotFound"

// maxErrorBody bounds what is read of an error response.
const maxErrorBody = 64 << 10

// client makes PutObject and GetObject calls on one bucket.
type client struct {
	bucket     url.URL // the bucket's URL: objects are under its path
	region     string
	creds      aws.CredentialsProvider
	signer     *v4.Signer
	retryer    aws.Retryer // one per client: it holds the retry quota
	http       smithyhttp.ClientDo
	apiOptions []func(*middleware.Stack) error
}

func newClient(cfg aws.Config, bucket string) (*client, error) {
	if cfg.Region == "" {
		return nil, errors.New("no AWS region configured")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("no AWS credentials configured: S3 requests must be signed")
	}
	c := &client{
		region:     cfg.Region,
		creds:      cfg.Credentials,
		apiOptions: slices.Clone(cfg.APIOptions),
		http:       cfg.HTTPClient,
		// S3 signs the path as sent, not escaped a second time.
		signer: v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
	}
	if _, cached := c.creds.(*aws.CredentialsCache); !cached {
		// As the SDK's clients do: a provider that is not cached would be
		// asked again (perhaps over the network) for every request.
		c.creds = aws.NewCredentialsCache(c.creds)
	}
	if c.http == nil {
		c.http = awshttp.NewBuildableClient()
	}
	if cfg.Retryer != nil {
		c.retryer = cfg.Retryer()
	}
	if c.retryer == nil && cfg.RetryMode == aws.RetryModeAdaptive {
		c.retryer = retry.NewAdaptiveMode()
	}
	if c.retryer == nil {
		c.retryer = retry.NewStandard()
	}
	if cfg.RetryMaxAttempts != 0 {
		c.retryer = retry.AddWithMaxAttempts(c.retryer, cfg.RetryMaxAttempts)
	}
	ep, err := resolveEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	if ep.base != "" {
		// An emulator (or a proxy): path-style, <base>/<bucket>/<key>.
		base, err := url.Parse(ep.base)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("endpoint %q is not an http(s) URL", ep.base)
		}
		c.bucket = url.URL{Scheme: base.Scheme, Host: base.Host, Path: strings.TrimSuffix(base.Path, "/") + "/" + url.PathEscape(bucket)}
		return c, nil
	}
	// S3 itself: virtual-hosted, https://<bucket>.<service>.<region>.<domain>/<key>.
	// Both names become part of a host name, so they must be DNS labels;
	// a bucket with dots would not match S3's wildcard certificate.
	if !dnsLabel(bucket) {
		return nil, fmt.Errorf("bucket name %q cannot be addressed virtual-hosted style (lower-case letters, digits and hyphens only)", bucket)
	}
	if !dnsLabel(cfg.Region) {
		return nil, fmt.Errorf("region %q is not a valid region name", cfg.Region)
	}
	c.bucket = url.URL{Scheme: "https", Host: bucket + "." + ep.host(cfg.Region)}
	return c, nil
}

// dnsLabel reports whether s is usable as one label of a host name:
// 1 to 63 lower-case letters, digits and hyphens, not starting or ending
// with a hyphen.
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// objectRequest is an operation's input (the stack's parameters).
type objectRequest struct {
	method string
	key    string
	body   []byte   // PUT only
	sum    [32]byte // PUT only: SHA-256 of body
}

// objectResponse is an operation's result.
type objectResponse struct {
	body io.ReadCloser // GET only; the caller closes it
	size int64         // GET only: Content-Length, -1 when unknown
}

func (c *client) putObject(ctx context.Context, key string, data []byte, sum [32]byte) error {
	_, err := c.invoke(ctx, opPutObject, &objectRequest{method: http.MethodPut, key: key, body: data, sum: sum})
	return err
}

func (c *client) getObject(ctx context.Context, key string) (*objectResponse, error) {
	return c.invoke(ctx, opGetObject, &objectRequest{method: http.MethodGet, key: key})
}

// invoke runs one operation through a middleware stack assembled as the
// SDK's generated clients assemble theirs.
func (c *client) invoke(ctx context.Context, op string, in *objectRequest) (*objectResponse, error) {
	// Values of an enclosing operation's stack must not leak into this one.
	ctx = middleware.ClearStackValues(ctx)
	stack := middleware.NewStack(op, smithyhttp.NewStackRequest)
	err := errors.Join(
		// What observe and awscost read: service, operation, region.
		stack.Initialize.Add(&awsmiddleware.RegisterServiceMetadata{
			ServiceID: ServiceID, SigningName: signingName, Region: c.region, OperationName: op,
		}, middleware.Before),
		stack.Serialize.Add(serializer{c}, middleware.After),
		// Retry, then sign each attempt: a retried request gets a fresh
		// signature (and time). awscost inserts its attempt counter after
		// the middleware with id "Retry".
		stack.Finalize.Add(retry.NewAttemptMiddleware(c.retryer, smithyhttp.RequestCloner), middleware.After),
		stack.Finalize.Add(signer{c}, middleware.After),
		// Outermost to innermost: the raw response into the metadata (the
		// status of a success, for X-Ray), the error wrapper that carries
		// the HTTP response (its status, for the retryer and X-Ray), then
		// our deserializer.
		stack.Deserialize.Add(&awsmiddleware.AddRawResponse{}, middleware.After),
		stack.Deserialize.Add(&awshttp.ResponseErrorWrapper{}, middleware.After),
		stack.Deserialize.Add(deserializer{}, middleware.After),
	)
	for _, fn := range c.apiOptions {
		if err == nil {
			err = fn(stack)
		}
	}
	if err != nil {
		return nil, &smithy.OperationError{ServiceID: ServiceID, OperationName: op, Err: err}
	}
	handler := middleware.DecorateHandler(smithyhttp.NewClientHandler(c.http), stack)
	res, _, err := handler.Handle(ctx, in)
	if err != nil {
		return nil, &smithy.OperationError{ServiceID: ServiceID, OperationName: op, Err: err}
	}
	out, ok := res.(*objectResponse)
	if !ok {
		return nil, &smithy.OperationError{ServiceID: ServiceID, OperationName: op, Err: fmt.Errorf("unexpected result %T", res)}
	}
	return out, nil
}

// serializer turns an objectRequest into the HTTP request.
type serializer struct{ c *client }

func (serializer) ID() string { return "OperationSerializer" }

func (m serializer) HandleSerialize(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("unexpected transport request %T", in.Request)
	}
	p, ok := in.Parameters.(*objectRequest)
	if !ok {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("unexpected parameters %T", in.Parameters)
	}
	u := m.c.bucket
	u.Path += "/" + p.key
	req.Method, req.URL = p.method, &u
	req.Header.Set(headerContentSHA256, emptySHA256)
	// As the SDK's client asks: without it Go's transport would ask for
	// gzip and hide the object's real Content-Length.
	req.Header.Set("Accept-Encoding", "identity")
	if p.method == http.MethodPut {
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Amz-Server-Side-Encryption", "AES256")
		// S3 verifies the upload against the hash that names it.
		req.Header.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(p.sum[:]))
		req.Header.Set(headerContentSHA256, hex.EncodeToString(p.sum[:]))
		// Seekable, so that a retry sends the body again from its start;
		// SetStream sets the Content-Length. No body: Content-Length 0.
		var err error
		if req, err = req.SetStream(bytes.NewReader(p.body)); err != nil {
			return middleware.SerializeOutput{}, middleware.Metadata{}, err
		}
	}
	in.Request = req
	return next.HandleSerialize(ctx, in)
}

// signer signs one attempt with SigV4.
type signer struct{ c *client }

func (signer) ID() string { return "Signing" }

func (m signer) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("unexpected transport request %T", in.Request)
	}
	creds, err := m.c.creds.Retrieve(ctx)
	if err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("retrieve AWS credentials: %w", err)
	}
	// The payload hash is the header the serializer set: S3 wants it both
	// signed and sent.
	if err := m.c.signer.SignHTTP(ctx, creds, req.Request, req.Header.Get(headerContentSHA256), signingName, m.c.region, time.Now()); err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("sign request: %w", err)
	}
	return next.HandleFinalize(ctx, in)
}

// deserializer turns the HTTP response into an objectResponse or an API
// error.
type deserializer struct{}

func (deserializer) ID() string { return "OperationDeserializer" }

func (deserializer) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok {
		return out, md, fmt.Errorf("unexpected transport response %T", out.RawResponse)
	}
	if id := resp.Header.Get(headerRequestID); id != "" {
		awsmiddleware.SetRequestIDMetadata(&md, id)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr, id := responseError(resp)
		if _, ok := awsmiddleware.GetRequestIDMetadata(md); !ok && id != "" {
			awsmiddleware.SetRequestIDMetadata(&md, id)
		}
		return out, md, apiErr
	}
	if req, _ := in.Request.(*smithyhttp.Request); req != nil && req.Method == http.MethodGet {
		out.Result = &objectResponse{body: resp.Body, size: resp.ContentLength}
		return out, md, nil
	}
	// A PUT's answer has nothing we need; reading it lets the connection
	// be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	out.Result = &objectResponse{}
	return out, md, nil
}

// responseError reads S3's error document
// (<Error><Code/><Message/><RequestId/></Error>) from a failed response,
// and closes its body. Without one, the code is named after the status
// ("NotFound", "ServiceUnavailable").
func responseError(resp *smithyhttp.Response) (*smithy.GenericAPIError, string) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	fault := smithy.FaultClient
	if resp.StatusCode >= 500 {
		fault = smithy.FaultServer
	}
	status := http.StatusText(resp.StatusCode)
	var doc struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		RequestID string   `xml:"RequestId"`
	}
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return &smithy.GenericAPIError{Code: strings.ReplaceAll(status, " ", ""), Message: status, Fault: fault}, ""
	case xml.Unmarshal(body, &doc) != nil || doc.Code == "":
		// Not S3's answer (a proxy's page?): say what came back.
		snippet := strings.TrimSpace(string(body[:min(len(body), 200)]))
		return &smithy.GenericAPIError{Code: "UnknownError", Message: status + ": " + snippet, Fault: fault}, ""
	}
	return &smithy.GenericAPIError{Code: doc.Code, Message: doc.Message, Fault: fault}, doc.RequestID
}
