// Package s3blob is Agentry's claim-check store: bodies too big for a
// DynamoDB item (or an SQS message) are written to S3 once, under the
// SHA-256 of their content, and only a short reference travels or is
// stored in their place.
//
// Because the key is derived from the content, Put is idempotent and two
// messages with the same body share one object; Get checks the content
// against the reference, so a body can never silently come back altered.
//
// The two S3 operations are made without the SDK's S3 client (package
// service/s3), on the SDK's own machinery instead (transport.go): see
// there why, and what that keeps working.
package s3blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	s3     *client
}

// New returns a Store on bucket, talking to S3 as cfg says: region,
// credentials, HTTP client, retryer, and the middleware of cfg.APIOptions
// (tracing, cost counting). With an endpoint configured (cfg.BaseEndpoint
// from AWS_ENDPOINT_URL, or AWS_ENDPOINT_URL_S3: moto, LocalStack) the
// bucket is addressed path-style under it, since emulators on 127.0.0.1
// have no DNS for bucket host names; otherwise virtual-hosted style on
// S3's regional endpoint (FIPS and dual-stack as configured), which needs
// a bucket name that is a plain DNS label (no dots).
func New(cfg aws.Config, bucket string) (*Store, error) {
	if bucket == "" {
		return nil, errors.New("s3blob: a bucket name is required")
	}
	c, err := newClient(cfg, bucket)
	if err != nil {
		return nil, fmt.Errorf("s3blob: %w", err)
	}
	return &Store{bucket: bucket, s3: c}, nil
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
	// The object is written even when it already exists: rewriting it
	// restarts its lifecycle clock, so a body shared with an older message
	// cannot expire under a newer one that still refers to it.
	if err := s.s3.putObject(ctx, keyPrefix+digest, data, sum); err != nil {
		return "", fmt.Errorf("s3blob put %s%s in bucket %s: %w", keyPrefix, digest, s.bucket, err)
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
	out, err := s.s3.getObject(ctx, key)
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == codeNotFound) {
			return nil, fmt.Errorf("s3blob get %s in bucket %s: %w", key, s.bucket, ErrNotFound)
		}
		return nil, fmt.Errorf("s3blob get %s in bucket %s: %w", key, s.bucket, err)
	}
	defer out.body.Close()
	if out.size > MaxBlobBytes {
		return nil, fmt.Errorf("s3blob get %s: object is %d bytes, over the %d-byte limit", key, out.size, MaxBlobBytes)
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(out.size, 0)))
	if _, err := io.Copy(buf, io.LimitReader(out.body, MaxBlobBytes+1)); err != nil {
		return nil, fmt.Errorf("s3blob get %s: read body: %w", key, err)
	}
	data := buf.Bytes()
	if len(data) > MaxBlobBytes {
		return nil, fmt.Errorf("s3blob get %s: object is over the %d-byte limit", key, MaxBlobBytes)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != digest {
		return nil, fmt.Errorf("s3blob get %s: content does not match its hash", key)
	}
	return data, nil
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
