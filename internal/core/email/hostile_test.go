package email_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/email"
)

const hostileHead = "From: a@x.example\r\nTo: b@y.example\r\nSubject: hostile\r\nMIME-Version: 1.0\r\n"

// endless repeats a pattern for ever without allocating: an input that
// claims to be as large as anyone likes.
type endless struct {
	pattern []byte
	off     int
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.pattern[e.off]
		e.off = (e.off + 1) % len(e.pattern)
	}
	return len(p), nil
}

func manyHeaders(n int) string {
	var b strings.Builder
	b.WriteString(hostileHead)
	for i := range n {
		fmt.Fprintf(&b, "X-Filler-%d: v\r\n", i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbody\r\n")
	return b.String()
}

func nestedMultipart(depth int) string {
	var b strings.Builder
	b.WriteString(hostileHead)
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

func manyParts(n int) string {
	var b strings.Builder
	b.WriteString(hostileHead + "Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n")
	for range n {
		b.WriteString("--p\r\nContent-Type: text/plain\r\n\r\nx\r\n")
	}
	b.WriteString("--p--\r\n")
	return b.String()
}

func singlePart(contentType, encoding string, body []byte) string {
	return hostileHead + "Content-Type: " + contentType + "\r\nContent-Transfer-Encoding: " + encoding + "\r\n\r\n" + string(body)
}

// TestParseRefusesHostileMail: every limit holds, and the error says
// which kind of refusal it is.
func TestParseRefusesHostileMail(t *testing.T) {
	latin1 := bytes.Repeat([]byte{0xe9}, 200<<10) // é: one byte in, two out
	cases := []struct {
		name    string
		in      io.Reader
		limits  email.Limits
		want    error
		complex bool
	}{
		{"10k header fields", strings.NewReader(manyHeaders(10000)), email.Limits{}, email.ErrTooLarge, true},
		{"10k header fields in a part", strings.NewReader(hostileHead + "Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n--p\r\n" +
			strings.TrimPrefix(manyHeaders(10000), hostileHead) + "--p--\r\n"), email.Limits{}, email.ErrTooLarge, true},
		{"100-deep multipart", strings.NewReader(nestedMultipart(100)), email.Limits{}, email.ErrTooLarge, true},
		{"too many parts", strings.NewReader(manyParts(300)), email.Limits{}, email.ErrTooLarge, true},
		{"beyond the size limit", io.MultiReader(strings.NewReader(hostileHead+"\r\n"), &endless{pattern: []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")}),
			email.Limits{MaxBytes: 1 << 20}, email.ErrTooLarge, false},
		{"a part decoding beyond its limit (base64)", io.MultiReader(strings.NewReader(hostileHead+"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
			&endless{pattern: []byte("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n")}),
			email.Limits{MaxBytes: 64 << 20, MaxPartBytes: 1 << 20}, email.ErrTooLarge, false},
		{"a part decoding beyond its limit (quoted-printable)", strings.NewReader(singlePart("text/plain", "quoted-printable", bytes.Repeat([]byte("=41=42=43=44=\r\n"), 100<<10))),
			email.Limits{MaxPartBytes: 256 << 10}, email.ErrTooLarge, false},
		{"a charset growing a part beyond its limit", strings.NewReader(singlePart("text/plain; charset=iso-8859-1", "8bit", latin1)),
			email.Limits{MaxPartBytes: 256 << 10}, email.ErrTooLarge, false},
		{"no From", strings.NewReader("To: b@y.example\r\nSubject: x\r\n\r\nbody\r\n"), email.Limits{}, email.ErrMalformed, false},
		{"unreadable From", strings.NewReader("From: <<<\r\n\r\nbody\r\n"), email.Limits{}, email.ErrMalformed, false},
		{"a header line without a colon", strings.NewReader(hostileHead + "this is not a header\r\n\r\nbody\r\n"), email.Limits{}, email.ErrMalformed, false},
		{"a multipart that never ends", strings.NewReader(hostileHead + "Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n--p\r\nContent-Type: text/plain\r\n\r\nx\r\n"), email.Limits{}, email.ErrMalformed, false},
		{"a multipart without boundary", strings.NewReader(hostileHead + "Content-Type: multipart/mixed\r\n\r\n--p\r\n\r\nx\r\n--p--\r\n"), email.Limits{}, email.ErrMalformed, false},
		{"corrupt base64", strings.NewReader(singlePart("application/pdf", "base64", []byte("!!!!not base64!!!!\r\n"))), email.Limits{}, email.ErrMalformed, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := email.Parse(c.in, c.limits)
			require.Error(t, err)
			assert.Nil(t, e)
			assert.ErrorIs(t, err, c.want)
			assert.Equal(t, c.complex, errors.Is(err, email.ErrTooComplex), "%v", err)
			if errors.Is(c.want, email.ErrMalformed) {
				assert.NotErrorIs(t, err, email.ErrTooLarge)
			}
		})
	}
}

// TestParseWithinLimits: the same shapes just inside the limits are read.
func TestParseWithinLimits(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		limits email.Limits
	}{
		{"1000 header fields", manyHeaders(990), email.Limits{}},
		{"10-deep multipart", nestedMultipart(10), email.Limits{}},
		{"250 parts", manyParts(250), email.Limits{}},
		{"a charset growing a part up to its limit", singlePart("text/plain; charset=iso-8859-1", "8bit", bytes.Repeat([]byte{0xe9}, 100<<10)), email.Limits{MaxPartBytes: 256 << 10}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := email.Parse(strings.NewReader(c.in), c.limits)
			require.NoError(t, err)
			assert.NotEmpty(t, e.Text)
		})
	}
}

// TestParseMemoryIsBounded measures what Parse allocates for inputs that
// claim to be huge or to expand: it must stay proportional to the limits,
// not to the input.
func TestParseMemoryIsBounded(t *testing.T) {
	const limit = 1 << 20
	cases := []struct {
		name   string
		in     func() io.Reader
		limits email.Limits
	}{
		{"an endless message", func() io.Reader {
			return io.MultiReader(strings.NewReader(hostileHead+"\r\n"), &endless{pattern: []byte(strings.Repeat("a", 70) + "\r\n")})
		}, email.Limits{MaxBytes: limit}},
		{"an endless header", func() io.Reader {
			return io.MultiReader(strings.NewReader(hostileHead), &endless{pattern: []byte("X-Filler: vvvvvvvvvvvvvvvvvvvv\r\n")})
		}, email.Limits{MaxBytes: limit}},
		{"an endless base64 part under a large message limit", func() io.Reader {
			return io.MultiReader(strings.NewReader(hostileHead+"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
				&endless{pattern: []byte("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n")})
		}, email.Limits{MaxBytes: 1 << 30, MaxPartBytes: limit}},
		{"an endless text part under a large message limit", func() io.Reader {
			return io.MultiReader(strings.NewReader(hostileHead+"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"),
				&endless{pattern: bytes.Repeat([]byte{0xe9}, 4096)})
		}, email.Limits{MaxBytes: 1 << 30, MaxPartBytes: limit}},
		{"an endless header in a part", func() io.Reader {
			return io.MultiReader(strings.NewReader(hostileHead+"Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n--p\r\n"), &endless{pattern: []byte("X-Filler: vvvvvvvvvvvvvvvvvvvv\r\n")})
		}, email.Limits{MaxBytes: limit}},
		{"100-deep nesting", func() io.Reader { return strings.NewReader(nestedMultipart(100)) }, email.Limits{MaxBytes: limit}},
		{"10k header fields", func() io.Reader { return strings.NewReader(manyHeaders(10000)) }, email.Limits{MaxBytes: limit}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := email.Parse(in, c.limits)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, email.ErrTooLarge)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB", allocated>>10)
			// go-message allocates about 16 bytes per byte of a part's
			// header block (the top-level header is counted as it
			// streams in and stops sooner); everything else far less.
			assert.Less(t, allocated, uint64(24*limit), "allocation follows the limit (%d bytes), not the input", limit)
		})
	}
}

// TestParseHeaderCostIsLinear: no header field shape makes Parse's
// allocation grow faster than the field (go-message's msg-id parser
// allocates quadratically in a comment's length, so msg-id fields with
// comments are read another way).
func TestParseHeaderCostIsLinear(t *testing.T) {
	const n = 64 << 10
	var params, continuations strings.Builder
	for i := range n / 16 {
		fmt.Fprintf(&params, "; p%d=v", i)
		fmt.Fprintf(&continuations, "; filename*%d=ab", i)
	}
	cases := map[string]string{
		"Message-ID of comments":  hostileHead + "Message-ID: " + strings.Repeat("(", n) + "\r\n\r\nbody\r\n",
		"In-Reply-To of comments": hostileHead + "In-Reply-To: <a@b> " + strings.Repeat("(", n) + "\r\n\r\nbody\r\n",
		"References of comments":  hostileHead + "References: " + strings.Repeat("(x", n/2) + "\r\n\r\nbody\r\n",
		"many References":         hostileHead + "References: " + strings.Repeat("<a@b> ", n/6) + "\r\n\r\nbody\r\n",
		"From of comments":        "From: " + strings.Repeat("(", n) + "a@x.example\r\n\r\nbody\r\n",
		"To of many":              hostileHead + "To: " + strings.Repeat("a@b.example, ", n/13) + "c@d.example\r\n\r\nbody\r\n",
		"Subject of words":        hostileHead + "Subject: " + strings.Repeat("=?utf-8?q?a?= ", n/14) + "\r\n\r\nbody\r\n",
		"Date of comments":        hostileHead + "Date: " + strings.Repeat("(", n) + "\r\n\r\nbody\r\n",
		"Content-Type params":     hostileHead + "Content-Type: text/plain" + params.String() + "\r\n\r\nbody\r\n",
		"RFC 2231 continuations":  hostileHead + "Content-Type: application/pdf\r\nContent-Disposition: attachment" + continuations.String() + "\r\n\r\nbody\r\n",
		"many empty parts":        hostileHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\n", 250) + "--b--\r\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := email.Parse(strings.NewReader(in), email.Limits{})
			runtime.ReadMemStats(&after)
			if err != nil {
				require.True(t, errors.Is(err, email.ErrMalformed) || errors.Is(err, email.ErrTooLarge), "%v", err)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes in, %d KiB allocated", len(in), allocated>>10)
			// A part costs about 1 KiB whatever its size (MaxParts bounds
			// that); beyond, allocation follows the input's length.
			assert.Less(t, allocated, uint64(64*len(in)+1<<20), "allocation grows with the input, not with its square")
		})
	}
}

func TestParseMsgIDsWithComments(t *testing.T) {
	in := "From: a@x.example\r\nMessage-ID: (sent by x) <id-1@x.example> (trailing)\r\n" +
		"In-Reply-To: <amtp.0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f@retailer.example> (our message)\r\n" +
		"References: <r1@y.example> (first) <r2@y.example>\r\n\r\nbody\r\n"
	e, err := email.Parse(strings.NewReader(in), email.Limits{})
	require.NoError(t, err)
	assert.Equal(t, "id-1@x.example", e.MessageID)
	assert.Equal(t, []string{"r1@y.example", "r2@y.example"}, e.References)
	id, ok := e.RepliesTo("retailer.example")
	assert.True(t, ok)
	assert.Equal(t, "0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f", id)
}
