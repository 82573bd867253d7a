// Package s3blob is Agentry's claim-check store: bodies too big for a
// DynamoDB item (or an SQS message) are written to S3 once, under the
// SHA-256 of their content, and only a short reference travels or is
// stored in their place.
//
// Because the key is derived from the content, Put is idempotent and two
// messages with the same body share one object; Get checks the content
// against the reference, so a body can never silently come back altered.
//
// S3 is called through the SDK's S3 client, built from the shared
// aws.Config, so that everything configured there (region, credentials,
// endpoints, FIPS and dual-stack, retries, and the middleware of
// cfg.APIOptions that traces and counts calls) applies to it as to every
// other AWS client.
package s3blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// refPrefix names the hash in a reference, so that a later change of
// algorithm can coexist with references already stored.
const refPrefix = "sha256:"

// keyPrefix groups the bodies in the bucket; the bucket's lifecycle rule
// (awsres.BodyLifecycleDays) applies to it.
const keyPrefix = "sha256/"

// MaxBlobBytes bounds what Put accepts and Get reads. It is far above any
// message the gateway accepts (its advertised max-size), and keeps a
// corrupt or foreign object from exhausting memory.
const MaxBlobBytes = 64 << 20

// ErrNotFound is returned (wrapped) by Get when no object holds the
// reference: a body past its lifecycle, or a reference from another bucket.
var ErrNotFound = errors.New("blob not found")

// ErrBadRef is returned (wrapped) for a string that is not a reference Put
// hands out.
var ErrBadRef = errors.New("not a blob reference")

// Store reads and writes content-addressed blobs in one bucket.
type Store struct {
	bucket string
	s3     *s3.Client
}

// New returns a Store on bucket, talking to S3 as cfg says. With an
// endpoint configured (cfg.BaseEndpoint from AWS_ENDPOINT_URL, or
// AWS_ENDPOINT_URL_S3: moto, LocalStack) the bucket is addressed
// path-style under it, since emulators on 127.0.0.1 have no DNS for bucket
// host names; otherwise the SDK's rules apply (virtual-hosted on S3's
// regional, FIPS or dual-stack endpoint).
//
// A configuration that cannot work is refused here rather than on the
// first large message, which may come long after deployment.
func New(cfg aws.Config, bucket string) (*Store, error) {
	if bucket == "" {
		return nil, errors.New("s3blob: a bucket name is required")
	}
	if cfg.Region == "" {
		return nil, errors.New("s3blob: no AWS region configured")
	}
	if cfg.Credentials == nil {
		// The SDK would send unsigned (anonymous) requests.
		return nil, errors.New("s3blob: no AWS credentials configured: S3 requests must be signed")
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// BaseEndpoint is already resolved here, from cfg and from the
		// S3-specific settings (AWS_ENDPOINT_URL_S3, shared config).
		o.UsePathStyle = o.BaseEndpoint != nil
	})
	if err := checkEndpoint(client.Options(), bucket); err != nil {
		return nil, fmt.Errorf("s3blob: bucket %s: %w", bucket, err)
	}
	return &Store{bucket: bucket, s3: client}, nil
}

// checkEndpoint resolves the bucket's endpoint as the client will for each
// call, so that a bad region, a malformed endpoint URL, or a configured
// endpoint combined with FIPS or dual-stack fails at start-up.
func checkEndpoint(o s3.Options, bucket string) error {
	params := s3.EndpointParameters{
		Bucket:         aws.String(bucket),
		Region:         aws.String(o.Region),
		Endpoint:       o.BaseEndpoint,
		UseFIPS:        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		ForcePathStyle: aws.Bool(o.UsePathStyle),
	}
	if _, err := o.EndpointResolverV2.ResolveEndpoint(context.Background(), params); err != nil {
		return fmt.Errorf("no usable S3 endpoint: %w", err)
	}
	return nil
}

// Bucket is the bucket the store writes to.
func (s *Store) Bucket() string { return s.bucket }

// Put stores data and returns its reference. Storing the same bytes again
// returns the same reference.
func (s *Store) Put(ctx context.Context, data []byte) (string, error) {
	if len(data) > MaxBlobBytes {
		return "", fmt.Errorf("s3blob put: %d bytes is over the %d-byte limit", len(data), MaxBlobBytes)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	key := keyPrefix + digest
	// The object is written even when it already exists: rewriting it
	// restarts its lifecycle clock, so a body shared with an older message
	// cannot expire under a newer one that still refers to it.
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(s.bucket),
		Key:                  aws.String(key),
		Body:                 bytes.NewReader(data), // seekable: a retry resends it whole
		ContentLength:        aws.Int64(int64(len(data))),
		ContentType:          aws.String("application/octet-stream"),
		ServerSideEncryption: types.ServerSideEncryptionAes256,
		// S3 verifies the upload against the hash that names it.
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return "", fmt.Errorf("s3blob put %s in bucket %s: %w", key, s.bucket, err)
	}
	return refPrefix + digest, nil
}

// Get returns the bytes stored under ref, verified against it.
func (s *Store) Get(ctx context.Context, ref string) ([]byte, error) {
	digest, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("s3blob get: %w", err)
	}
	key := keyPrefix + digest
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if isMissingKey(err) {
			return nil, fmt.Errorf("s3blob get %s in bucket %s: %w", key, s.bucket, ErrNotFound)
		}
		return nil, fmt.Errorf("s3blob get %s in bucket %s: %w", key, s.bucket, err)
	}
	defer out.Body.Close()
	data, err := readLimited(out.Body, aws.ToInt64(out.ContentLength))
	if err != nil {
		return nil, fmt.Errorf("s3blob get %s: %w", key, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != digest {
		return nil, fmt.Errorf("s3blob get %s: content does not match its hash", key)
	}
	return data, nil
}

// isMissingKey reports whether err says the object does not exist: S3's
// NoSuchKey, or a 404 without an error document ("NotFound"). A missing
// bucket (NoSuchBucket) is a misconfiguration, not a missing body.
func isMissingKey(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound")
}

// readLimited reads a body of declared size (0 when S3 did not declare
// one), refusing more than MaxBlobBytes: a corrupt or foreign object must
// not exhaust memory.
func readLimited(body io.Reader, size int64) ([]byte, error) {
	if size > MaxBlobBytes {
		return nil, fmt.Errorf("object is %d bytes, over the %d-byte limit", size, MaxBlobBytes)
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(size, 0)))
	if _, err := io.Copy(buf, io.LimitReader(body, MaxBlobBytes+1)); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if buf.Len() > MaxBlobBytes {
		return nil, fmt.Errorf("object is over the %d-byte limit", MaxBlobBytes)
	}
	return buf.Bytes(), nil
}

// IsRef reports whether v has the form of a reference Put returns.
func IsRef(v string) bool {
	_, err := parseRef(v)
	return err == nil
}

func parseRef(ref string) (string, error) {
	digest, ok := strings.CutPrefix(ref, refPrefix)
	if !ok || len(digest) != sha256.Size*2 {
		return "", fmt.Errorf("%q: %w", ref, ErrBadRef)
	}
	for i := 0; i < len(digest); i++ {
		c := digest[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%q: %w", ref, ErrBadRef)
		}
	}
	return digest, nil
}
