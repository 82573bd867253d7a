// Package s3blob is Agentry's claim-check store: bodies too big for a
// DynamoDB item (or an SQS message) are written to S3 once, under the
// SHA-256 of their content, and only a short reference travels or is
// stored in their place.
//
// Because the key is derived from the content, Put is idempotent and two
// messages with the same body share one object; Get checks the content
// against the reference, so a body can never silently come back altered.
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
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
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
//
// It holds the two operations it makes as method values, not the client,
// as the other adapters do (functions/TestFunctionsDoNotLinkUnusedAWSOperations
// says why; for S3 the SDK keeps the whole client linked anyway).
type Store struct {
	putObject func(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	getObject func(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	bucket    string
}

// New returns a Store on bucket. The client must already be configured
// for the bucket's endpoint (see NewFromConfig for emulators).
func New(client *s3.Client, bucket string) (*Store, error) {
	if client == nil {
		return nil, errors.New("s3blob: an S3 client is required")
	}
	if bucket == "" {
		return nil, errors.New("s3blob: a bucket name is required")
	}
	return &Store{putObject: client.PutObject, getObject: client.GetObject, bucket: bucket}, nil
}

// NewFromConfig builds the S3 client from cfg. When an endpoint override is
// in effect (AWS_ENDPOINT_URL, or cfg.BaseEndpoint: moto, LocalStack) the
// client uses path-style addressing, because emulators on 127.0.0.1 have no
// DNS for virtual-hosted bucket names.
func NewFromConfig(cfg aws.Config, bucket string, optFns ...func(*s3.Options)) (*Store, error) {
	client := s3.NewFromConfig(cfg, optFns...)
	if o := client.Options(); o.BaseEndpoint != nil && !o.UsePathStyle {
		client = s3.NewFromConfig(cfg, append(optFns, func(o *s3.Options) { o.UsePathStyle = true })...)
	}
	return New(client, bucket)
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
	_, err := s.putObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(s.bucket),
		Key:                  aws.String(keyPrefix + digest),
		Body:                 bytes.NewReader(data),
		ContentLength:        aws.Int64(int64(len(data))),
		ContentType:          aws.String("application/octet-stream"),
		ServerSideEncryption: s3types.ServerSideEncryptionAes256,
		// S3 verifies the upload against the hash that names it.
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
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
	out, err := s.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("s3blob get %s in bucket %s: %w", key, s.bucket, ErrNotFound)
		}
		return nil, fmt.Errorf("s3blob get %s in bucket %s: %w", key, s.bucket, err)
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	if size > MaxBlobBytes {
		return nil, fmt.Errorf("s3blob get %s: object is %d bytes, over the %d-byte limit", key, size, MaxBlobBytes)
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(size, 0)))
	if _, err := io.Copy(buf, io.LimitReader(out.Body, MaxBlobBytes+1)); err != nil {
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
