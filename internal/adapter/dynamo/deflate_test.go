package dynamo

import (
	"bytes"
	"compress/flate"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
)

func TestDeflated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		raw    string
		shrink bool
	}{
		{"short: left as it is", `{"a":1}`, false},
		{"JSON that repeats itself", `{"payload":"` + strings.Repeat("ab", 400) + `"}`, true},
		{"already dense", string(randomBytes(2000)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := deflated([]byte(tc.raw))
			if !tc.shrink {
				assert.Nil(t, z, "kept as it is (%d bytes deflated)", len(z))
				return
			}
			require.NotNil(t, z)
			assert.Less(t, len(z), len(tc.raw))
			back, err := inflated(z)
			require.NoError(t, err)
			assert.Equal(t, tc.raw, string(back))
		})
	}
}

// TestInflatedReusesItsReaders: a pooled reader, reset, reads the next
// body and nothing of the one before.
func TestInflatedReusesItsReaders(t *testing.T) {
	bodies := []string{`{"a":"` + strings.Repeat("x", 300) + `"}`, `{"b":"` + strings.Repeat("yz", 200) + `"}`}
	for i := range 6 {
		want := bodies[i%2]
		z := deflated([]byte(want))
		require.NotNil(t, z)
		got, err := inflated(z)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
}

// TestInflatedRefusesWhatWeNeverWrote: garbage is an error, and so is a
// stream that would inflate past the inline limit (a body that size is
// never stored inline, so it is not ours).
func TestInflatedRefusesWhatWeNeverWrote(t *testing.T) {
	_, err := inflated([]byte("not deflate at all"))
	assert.Error(t, err)

	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	require.NoError(t, err)
	_, err = w.Write(bytes.Repeat([]byte{'x'}, awsres.MaxItemBytes+1))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = inflated(buf.Bytes())
	assert.ErrorContains(t, err, "over")
}

// randomBytes is incompressible bytes from a fixed seed.
func randomBytes(n int) []byte {
	out := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(out)
	return out
}
