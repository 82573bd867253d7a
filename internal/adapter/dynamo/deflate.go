package dynamo

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"

	"github.com/agentry/agentry/internal/adapter/awsres"
)

// Message bodies are stored deflated (aRawZ) when that makes them smaller.
// DynamoDB bills a write by the kilobyte of the whole item: a 512-byte
// payload in its envelope made the message item just over 1 KB, two write
// units, and AMTP's JSON deflates to half or less. Bodies that do not
// shrink, and items written before, keep aRaw; readers take either.

// minDeflate is the smallest body worth trying: below it the deflate
// stream's own overhead eats the gain.
const minDeflate = 128

var deflaters = sync.Pool{New: func() any {
	w, err := flate.NewWriter(nil, flate.DefaultCompression)
	if err != nil {
		panic(err) // only for an invalid level
	}
	return w
}}

var inflaters sync.Pool // of flate readers (io.ReadCloser and flate.Resetter)

// deflated returns raw deflated, or nil when that is not smaller.
func deflated(raw []byte) []byte {
	if len(raw) < minDeflate {
		return nil
	}
	var buf bytes.Buffer
	buf.Grow(len(raw) / 2)
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(raw); err != nil {
		return nil // a bytes.Buffer does not fail; keep the body as it is
	}
	if err := w.Close(); err != nil {
		return nil
	}
	if buf.Len() >= len(raw) {
		return nil
	}
	return buf.Bytes()
}

// inflated undoes deflated. Only bodies up to awsres.MaxItemBytes are
// stored inline, so anything longer is not one of ours.
func inflated(z []byte) ([]byte, error) {
	// Pooled like the writers: a reader carries a 32 KB window, and the
	// deliver function inflates every message it delivers.
	src := bytes.NewReader(z)
	r, _ := inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReader(src)
	} else if err := r.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, fmt.Errorf("inflate body: %w", err)
	}
	defer inflaters.Put(r)
	raw, err := io.ReadAll(io.LimitReader(r, awsres.MaxItemBytes+1))
	if err != nil {
		return nil, fmt.Errorf("inflate body: %w", err)
	}
	if len(raw) > awsres.MaxItemBytes {
		return nil, fmt.Errorf("inflate body: over %d bytes", awsres.MaxItemBytes)
	}
	return raw, nil
}
