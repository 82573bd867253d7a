package httpapi

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

var (
	anonymous = gateway.Principal{Kind: gateway.Anonymous}
	anAgent   = gateway.Principal{Kind: gateway.AgentCaller, Agent: &gateway.Agent{Address: "alice@example.org"}}
)

// readWith reads body, declared as declared bytes, within a fresh budget
// of size bytes, and reports what the budget holds afterwards.
func readWith(t *testing.T, r io.Reader, declared, max, size int64) ([]byte, int64, error) {
	t.Helper()
	req := httptest.NewRequest("POST", "/", r)
	req.ContentLength = declared
	g := newBodyBudget(size).open(anonymous)
	data, err := (&bodyReader{w: httptest.NewRecorder(), r: req, g: g, max: max}).all()
	return data, g.bytes, err
}

// TestBodyReaderReadsWhatIOReadAllReads: whatever the declared length
// says and however the reader splits its data, the body is read whole.
func TestBodyReaderReadsWhatIOReadAllReads(t *testing.T) {
	long := strings.Repeat("0123456789", 100_000) // beyond the prefix and several budget steps
	for _, body := range []string{"", "x", "hello", strings.Repeat("m", envelopePrefix), strings.Repeat("m", envelopePrefix+1), long} {
		for _, declared := range []int64{-1, 0, 1, int64(len(body)) - 1, int64(len(body))} {
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"plain":     func(r io.Reader) io.Reader { return r },
				"one byte":  iotest.OneByteReader,
				"data+EOF":  iotest.DataErrReader,
				"half read": iotest.HalfReader,
			} {
				got, held, err := readWith(t, wrap(strings.NewReader(body)), declared, 4<<20, 64<<20)
				require.NoError(t, err)
				require.Equal(t, len(body), len(got), "%s, %d bytes declared as %d", name, len(body), declared)
				require.True(t, string(got) == body, "%s, %d bytes declared as %d", name, len(body), declared)
				// The budget paid for what was held, and not much more.
				assert.GreaterOrEqual(t, held, int64(len(body)))
				assert.LessOrEqual(t, held, int64(len(body))+budgetStep+1, "%s, %d declared as %d", name, len(body), declared)
			}
		}
	}
	boom := errors.New("boom")
	_, _, err := readWith(t, io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 10, 100, 1000)
	assert.True(t, amtp.IsCode(err, amtp.CodeInvalidMessageFormat), "%v", err)
}

func TestBodyReaderLimits(t *testing.T) {
	read := func(body string, declared, max int64) ([]byte, error) {
		data, _, err := readWith(t, strings.NewReader(body), declared, max, 1<<20)
		return data, err
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
		assert.Equal(t, http.StatusRequestEntityTooLarge, statusOf(e.Code))
	}
	_, err = read("hello", 6, 5) // declared too large: refused without reading
	assert.True(t, amtp.IsCode(err, amtp.CodeMessageTooLarge), "%v", err)
}

// TestBodyBudget: bodies in flight never hold more than the budget; a
// request that finds no room is answered 503 (TEMPORARY_FAILURE, which
// writeError gives a Retry-After), anonymous callers are held to half,
// and released room is usable again.
func TestBodyBudget(t *testing.T) {
	const size = 1 << 20
	b := newBodyBudget(size)
	ctx := t.Context()

	agent := b.open(anAgent)
	require.NoError(t, agent.take(ctx, size/4))

	anon := b.open(anonymous)
	require.NoError(t, anon.take(ctx, size/2-1))
	err := b.open(anonymous).take(ctx, 2) // the anonymous half is full
	require.True(t, amtp.IsCode(err, amtp.CodeTemporaryFailure), "%v", err)
	e, _ := amtp.AsError(err)
	assert.Equal(t, http.StatusServiceUnavailable, statusOf(e.Code))

	// An agent still finds the rest of the budget, and no more.
	other := b.open(anAgent)
	require.NoError(t, other.take(ctx, size/4))
	require.True(t, amtp.IsCode(b.open(anAgent).take(ctx, 2), amtp.CodeTemporaryFailure))

	// More than a pool could ever grant is refused without waiting.
	require.True(t, amtp.IsCode(b.open(anonymous).take(ctx, size/2+1), amtp.CodeTemporaryFailure))

	anon.release()
	other.release()
	agent.release()
	full := b.open(anAgent)
	require.NoError(t, full.take(ctx, size), "released room is usable again")
	full.release()
	again := b.open(anonymous)
	require.NoError(t, again.take(ctx, size/2))
	again.release()
}

func TestEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		sender     string
		recipients []string
		ok         bool
	}{
		{"leading", `{"sender":"a@x.org","recipients":["b@y.org","c@y.org"],"payload":{}}`, "a@x.org", []string{"b@y.org", "c@y.org"}, true},
		{"after other members", `{"version":"1.0","message_id":"m","recipients":["b@y.org"],"subject":"s","sender":"a@x.org","payload":`, "a@x.org", []string{"b@y.org"}, true},
		{"prefix ends first", `{"sender":"a@x.org","payload":{"big":"aaaa`, "", nil, false},
		{"payload first", `{"payload":{"x":1},"sender":"a@x.org","recipients":["b@y.org"]}`, "a@x.org", []string{"b@y.org"}, true},
		{"not an object", `["sender"]`, "", nil, false},
		{"sender not a string", `{"sender":{"a":1},"recipients":["b@y.org"]}`, "", nil, false},
		{"recipients not strings", `{"sender":"a@x.org","recipients":[1]}`, "", nil, false},
		{"malformed", `{"sender":"a@x.org",,"recipients":["b@y.org"]}`, "", nil, false},
		{"empty", ``, "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender, recipients, ok := envelope([]byte(tc.json))
			require.Equal(t, tc.ok, ok)
			if ok {
				assert.Equal(t, tc.sender, sender)
				assert.Equal(t, tc.recipients, recipients)
			}
		})
	}
}
