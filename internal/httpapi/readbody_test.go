package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/amtp"
)

// TestReadAllIsIOReadAll: whatever the declared length says, readAll reads
// what io.ReadAll reads.
func TestReadAllIsIOReadAll(t *testing.T) {
	long := strings.Repeat("0123456789", 20_000) // beyond the 64 KiB pre-allocation
	for _, body := range []string{"", "x", "hello", strings.Repeat("m", 511), strings.Repeat("m", 513), long} {
		for _, declared := range []int64{-1, 0, 1, int64(len(body)) - 1, int64(len(body)), int64(len(body)) + 1, 1 << 40} {
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"plain":     func(r io.Reader) io.Reader { return r },
				"one byte":  iotest.OneByteReader,
				"data+EOF":  iotest.DataErrReader,
				"half read": iotest.HalfReader,
			} {
				got, err := readAll(wrap(strings.NewReader(body)), declared)
				require.NoError(t, err)
				require.Equal(t, len(body), len(got), "%s, %d bytes declared as %d", name, len(body), declared)
				require.True(t, string(got) == body, "%s, %d bytes declared as %d", name, len(body), declared)
			}
		}
	}
	boom := errors.New("boom")
	_, err := readAll(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 10)
	require.ErrorIs(t, err, boom)
}

func TestReadBodyLimits(t *testing.T) {
	read := func(body string, declared int64, max int64) ([]byte, error) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader([]byte(body)))
		req.ContentLength = declared
		return readBody(httptest.NewRecorder(), req, max)
	}
	data, err := read("hello", 5, 5)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	data, err = read("hello", -1, 5)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	for _, declared := range []int64{-1, 0, 3} { // under-declared or unknown: the actual size counts
		_, err = read("hello!", declared, 5)
		e, ok := amtp.AsError(err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, amtp.CodeMessageTooLarge, e.Code)
		assert.Equal(t, http.StatusRequestEntityTooLarge, e.HTTPStatus())
	}
	_, err = read("hello", 6, 5) // declared too large: refused without reading
	assert.True(t, amtp.IsCode(err, amtp.CodeMessageTooLarge), "%v", err)
}
