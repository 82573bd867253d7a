package s3blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/s3blob"
	"github.com/agentry/agentry/internal/kit/awstest"
)

func newStore(t *testing.T) (*s3blob.Store, *s3.Client) {
	t.Helper()
	names, _ := awstest.Resources(t)
	st, err := s3blob.New(awstest.Config(t), names.Bucket)
	require.NoError(t, err)
	raw := s3.NewFromConfig(awstest.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
	return st, raw
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPutGetRoundTrip(t *testing.T) {
	st, raw := newStore(t)
	data := make([]byte, 500<<10)
	_, _ = rand.Read(data)

	ref, err := st.Put(ctx(t), data)
	require.NoError(t, err)
	assert.True(t, s3blob.IsRef(ref), "ref %q", ref)
	got, err := st.Get(ctx(t), ref)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "content differs")

	// The object is encrypted at rest with S3-managed keys.
	head, err := raw.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String("sha256/" + ref[len("sha256:"):])})
	require.NoError(t, err)
	assert.Equal(t, s3types.ServerSideEncryptionAes256, head.ServerSideEncryption)
}

func TestPutIsIdempotent(t *testing.T) {
	st, raw := newStore(t)
	a, err := st.Put(ctx(t), []byte("same body"))
	require.NoError(t, err)
	b, err := st.Put(ctx(t), []byte("same body"))
	require.NoError(t, err)
	assert.Equal(t, a, b)
	c, err := st.Put(ctx(t), []byte("other body"))
	require.NoError(t, err)
	assert.NotEqual(t, a, c)

	list, err := raw.ListObjectsV2(ctx(t), &s3.ListObjectsV2Input{Bucket: aws.String(st.Bucket())})
	require.NoError(t, err)
	assert.Len(t, list.Contents, 2, "one object per distinct content")
}

func TestEmptyBlob(t *testing.T) {
	st, _ := newStore(t)
	ref, err := st.Put(ctx(t), nil)
	require.NoError(t, err)
	got, err := st.Get(ctx(t), ref)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestGetErrors(t *testing.T) {
	st, raw := newStore(t)
	_, err := st.Get(ctx(t), "not a ref")
	assert.ErrorIs(t, err, s3blob.ErrBadRef)
	_, err = st.Get(ctx(t), "sha256:"+string(bytes.Repeat([]byte("A"), 64)))
	assert.ErrorIs(t, err, s3blob.ErrBadRef, "upper-case hex is not what Put hands out")

	missing := "sha256:" + string(bytes.Repeat([]byte("0"), 64))
	_, err = st.Get(ctx(t), missing)
	assert.ErrorIs(t, err, s3blob.ErrNotFound)

	// An object altered behind the store's back is refused, not returned.
	ref, err := st.Put(ctx(t), []byte("original"))
	require.NoError(t, err)
	_, err = raw.PutObject(ctx(t), &s3.PutObjectInput{
		Bucket: aws.String(st.Bucket()),
		Key:    aws.String("sha256/" + ref[len("sha256:"):]),
		Body:   bytes.NewReader([]byte("tampered")),
	})
	require.NoError(t, err)
	_, err = st.Get(ctx(t), ref)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not match")
}

func TestGetHonoursContext(t *testing.T) {
	st, _ := newStore(t)
	ref, err := st.Put(ctx(t), []byte("x"))
	require.NoError(t, err)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = st.Get(c, ref)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestNewValidates(t *testing.T) {
	creds := credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")
	ok := aws.Config{Region: "eu-west-1", Credentials: creds}
	_, err := s3blob.New(ok, "agentry-dev-bodies")
	require.NoError(t, err)

	_, err = s3blob.New(ok, "")
	assert.ErrorContains(t, err, "bucket name is required")
	_, err = s3blob.New(aws.Config{Credentials: creds}, "b")
	assert.ErrorContains(t, err, "region")
	_, err = s3blob.New(aws.Config{Region: "eu-west-1"}, "b")
	assert.ErrorContains(t, err, "credentials")
	_, err = s3blob.New(aws.Config{Region: "eu-west-1/x", Credentials: creds}, "agentry-dev-bodies")
	assert.ErrorContains(t, err, "region")
	// An emulator addresses it path-style: any name S3 accepts will do.
	withEndpoint := ok
	withEndpoint.BaseEndpoint = aws.String("http://127.0.0.1:4566")
	_, err = s3blob.New(withEndpoint, "my.bucket")
	assert.NoError(t, err)
	withEndpoint.BaseEndpoint = aws.String("127.0.0.1:4566")
	_, err = s3blob.New(withEndpoint, "b")
	assert.ErrorContains(t, err, "not a valid URI")
}
