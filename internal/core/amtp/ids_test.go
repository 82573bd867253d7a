package amtp

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	reUUIDv7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	reUUIDv4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// uuidV7Millis decodes the 48-bit Unix-millisecond field of a UUIDv7.
func uuidV7Millis(t *testing.T, id string) int64 {
	t.Helper()
	ms, err := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64)
	require.NoError(t, err)
	return ms
}

// withFreshV7State runs f with the generator's monotonic state cleared and
// restores it afterwards, so tests that feed newUUIDv7 old or fixed times
// neither depend on nor disturb ids made elsewhere in the process.
func withFreshV7State(f func()) {
	v7.Lock()
	savedMS, savedCounter := v7.lastMS, v7.counter
	v7.lastMS, v7.counter = 0, 0
	v7.Unlock()
	defer func() {
		v7.Lock()
		v7.lastMS, v7.counter = max(savedMS, v7.lastMS), savedCounter
		v7.Unlock()
	}()
	f()
}

func TestNewUUIDv7Format(t *testing.T) {
	before := time.Now().UnixMilli()
	id := NewUUIDv7()
	after := time.Now().UnixMilli()

	require.Regexp(t, reUUIDv7, id)
	assert.Equal(t, strings.ToLower(id), id)
	assert.True(t, IsUUID(id))
	assert.True(t, IsUUIDv7(id))
	assert.False(t, IsUUIDv4(id))
	assert.True(t, ValidMessageID(id))

	// The generator may run ahead of the clock (never behind it) to stay
	// monotonic, but only by a few counter roll-overs.
	ms := uuidV7Millis(t, id)
	assert.GreaterOrEqual(t, ms, before)
	assert.LessOrEqual(t, ms, after+1000)
}

func TestAppendUUIDv7(t *testing.T) {
	prefix := []byte("req_")
	out := AppendUUIDv7(prefix)
	require.True(t, strings.HasPrefix(string(out), "req_"))
	id := string(out[len("req_"):])
	require.Regexp(t, reUUIDv7, id)
	assert.True(t, IsUUIDv7(id))
	assert.Less(t, NewUUIDv7(), string(AppendUUIDv7(nil)), "both draw from one monotonic generator")
}

func TestNewUUIDv7MonotonicAndUnique(t *testing.T) {
	const n = 10000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewUUIDv7()
	}
	for i := 1; i < n; i++ {
		require.Less(t, ids[i-1], ids[i], "id %d does not sort after id %d", i, i-1)
	}
	assert.True(t, sort.StringsAreSorted(ids))
	seen := make(map[string]bool, n)
	for _, id := range ids {
		require.Regexp(t, reUUIDv7, id)
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
}

func TestNewUUIDv7Concurrent(t *testing.T) {
	const workers, per = 8, 2000
	results := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ids := make([]string, per)
			for i := range ids {
				ids[i] = NewUUIDv7()
			}
			results[w] = ids
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*per)
	for _, ids := range results {
		// each goroutine's own sequence must still be ordered
		require.True(t, sort.StringsAreSorted(ids))
		for _, id := range ids {
			require.False(t, seen[id], "duplicate %s", id)
			seen[id] = true
		}
	}
	assert.Len(t, seen, workers*per)
}

func TestNewUUIDv7FixedTime(t *testing.T) {
	fixed := time.Date(2025, 8, 14, 10, 30, 0, 123_456_789, time.UTC)
	withFreshV7State(func() {
		id := newUUIDv7(fixed)
		require.Regexp(t, reUUIDv7, id)
		assert.Equal(t, fixed.UnixMilli(), uuidV7Millis(t, id))
		assert.Equal(t, "0198a821-20bb-7", id[:15], "48-bit big-endian milliseconds then version 7")

		next := newUUIDv7(fixed)
		assert.Equal(t, fixed.UnixMilli(), uuidV7Millis(t, next), "same millisecond")
		assert.Less(t, id, next, "the counter orders ids within one millisecond")

		later := newUUIDv7(fixed.Add(5 * time.Millisecond))
		assert.Equal(t, fixed.UnixMilli()+5, uuidV7Millis(t, later))
		assert.Less(t, next, later)
	})
}

func TestNewUUIDv7ClockStepsBack(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	withFreshV7State(func() {
		first := newUUIDv7(base)
		back := newUUIDv7(base.Add(-time.Hour))
		assert.Equal(t, base.UnixMilli(), uuidV7Millis(t, back), "stays on the last timestamp")
		assert.Less(t, first, back)
	})
}

func TestNewUUIDv7CounterOverflow(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	withFreshV7State(func() {
		prev := newUUIDv7(base)
		// Far more ids than the 12-bit counter holds, all in one millisecond.
		for range 3 * 4096 {
			id := newUUIDv7(base)
			require.Regexp(t, reUUIDv7, id)
			require.Less(t, prev, id)
			prev = id
		}
		ms := uuidV7Millis(t, prev)
		assert.Greater(t, ms, base.UnixMilli(), "counter overflow borrows the next millisecond")
		assert.LessOrEqual(t, ms, base.UnixMilli()+6)
	})
}

func TestNewUUIDv4(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewUUIDv4()
		require.Regexp(t, reUUIDv4, id)
		require.True(t, IsUUID(id))
		require.True(t, IsUUIDv4(id))
		require.False(t, IsUUIDv7(id))
		require.True(t, ValidIdempotencyKey(id))
		require.False(t, seen[id])
		seen[id] = true
	}
}

func TestIsUUID(t *testing.T) {
	valid := map[string]string{
		"v1":             "c232ab00-9414-11ec-b3c8-9f6bdeced846",
		"v2":             "000003e8-9414-21ec-8000-9f6bdeced846",
		"v3":             "5df41881-3aed-3515-88a7-2f4a814cf09e",
		"v4":             "919108f7-52d1-4320-9bac-f847db4148a8",
		"v5":             "2ed6657d-e927-568b-95e1-2665a8aea6a2",
		"v6":             "1ec9414c-232a-6b00-b3c8-9f6bdeced846",
		"v7":             "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
		"v8":             "2489e9ad-2ee2-8e00-8ec9-32d5f69181c0",
		"nil":            "00000000-0000-0000-0000-000000000000",
		"max":            "ffffffff-ffff-ffff-ffff-ffffffffffff",
		"max upper-case": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
		"upper-case v4":  "919108F7-52D1-4320-9BAC-F847DB4148A8",
		"variant 9":      "919108f7-52d1-4320-9bac-f847db4148a8",
		"variant a":      "919108f7-52d1-4320-abac-f847db4148a8",
		"variant b":      "919108f7-52d1-4320-bbac-f847db4148a8",
		"variant 8":      "919108f7-52d1-4320-8bac-f847db4148a8",
	}
	for name, s := range valid {
		assert.True(t, IsUUID(s), "%s: %s", name, s)
		assert.True(t, ValidMessageID(s), "%s: %s", name, s)
	}

	invalid := map[string]string{
		"empty":              "",
		"version 0":          "919108f7-52d1-0320-9bac-f847db4148a8",
		"version 9":          "919108f7-52d1-9320-9bac-f847db4148a8",
		"version f":          "919108f7-52d1-f320-9bac-f847db4148a8",
		"NCS variant":        "919108f7-52d1-4320-7bac-f847db4148a8",
		"Microsoft variant":  "919108f7-52d1-4320-cbac-f847db4148a8",
		"future variant":     "919108f7-52d1-4320-fbac-f847db4148a8",
		"variant 0":          "919108f7-52d1-4320-0bac-f847db4148a8",
		"non-hex g":          "919108g7-52d1-4320-9bac-f847db4148a8",
		"non-hex space":      "919108 7-52d1-4320-9bac-f847db4148a8",
		"no dashes":          "919108f752d143209bacf847db4148a8",
		"dash moved":         "919108f-752d1-4320-9bac-f847db4148a8",
		"underscores":        "919108f7_52d1_4320_9bac_f847db4148a8",
		"extra dash":         "919108f7-52d1-4320-9bac-f847-db4148a8",
		"braces":             "{919108f7-52d1-4320-9bac-f847db4148a8}",
		"urn prefix":         "urn:uuid:919108f7-52d1-4320-9bac-f847db4148a8",
		"too short":          "919108f7-52d1-4320-9bac-f847db4148a",
		"too long":           "919108f7-52d1-4320-9bac-f847db4148a80",
		"trailing newline":   "919108f7-52d1-4320-9bac-f847db4148a\n",
		"almost nil":         "00000000-0000-0000-0000-000000000001",
		"almost max":         "ffffffff-ffff-ffff-ffff-fffffffffffe",
		"non-ASCII":          "919108f7-52d1-4320-9bac-f847db4148é",
		"hex with plus sign": "+19108f7-52d1-4320-9bac-f847db4148a8",
	}
	for name, s := range invalid {
		assert.False(t, IsUUID(s), "%s: %q", name, s)
	}
}

func TestIsUUIDv7AndV4(t *testing.T) {
	assert.True(t, IsUUIDv7("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"))
	assert.False(t, IsUUIDv7("017f22e2-79b0-7cc3-c8c4-dc0c0c07398f"), "bad variant")
	assert.False(t, IsUUIDv7("919108f7-52d1-4320-9bac-f847db4148a8"))
	assert.False(t, IsUUIDv7("017f22e2-79b0-7cc3-98c4-dc0c0c07398z"))
	assert.True(t, IsUUIDv4("919108f7-52d1-4320-9bac-f847db4148a8"))
	assert.False(t, IsUUIDv4("919108f7-52d1-4320-1bac-f847db4148a8"), "bad variant")
	assert.False(t, IsUUIDv4("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"))
	assert.False(t, IsUUIDv4(""))
}

func TestIsULID(t *testing.T) {
	valid := []string{
		"01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"01arz3ndektsv4rrffq69g5fav", // the ULID spec is case-insensitive
		"01H8X9Z2K3M4N5P6Q7R8S9T0AB",
		"00000000000000000000000000",
		"7ZZZZZZZZZZZZZZZZZZZZZZZZZ", // the largest ULID
		"7zzzzzzzzzzzzzzzzzzzzzzzzz",
	}
	for _, s := range valid {
		assert.True(t, IsULID(s), s)
		assert.True(t, ValidMessageID(s), s)
	}

	invalid := map[string]string{
		"empty":               "",
		"25 chars":            "01ARZ3NDEKTSV4RRFFQ69G5FA",
		"27 chars":            "01ARZ3NDEKTSV4RRFFQ69G5FAVV",
		"draft's 24-char id":  "01H8X9Z2K3M4N5P6Q7R8S9T0",
		"first char 8":        "81ARZ3NDEKTSV4RRFFQ69G5FAV",
		"first char Z":        "Z1ARZ3NDEKTSV4RRFFQ69G5FAV",
		"contains I":          "01ARZ3NDEKTSV4RRFFQ69G5FAI",
		"contains L":          "01ARZ3NDEKTSV4RRFFQ69G5FAL",
		"contains O":          "01ARZ3NDEKTSV4RRFFQ69G5FAO",
		"contains U":          "01ARZ3NDEKTSV4RRFFQ69G5FAU",
		"contains lower-case": "01ARZ3NDEKTSV4RRFFQ69G5FAu",
		"contains dash":       "01ARZ3NDEKTSV4RR-FQ69G5FAV",
		"contains space":      "01ARZ3NDEKTSV4RR FQ69G5FAV",
		"non-ASCII":           "01ARZ3NDEKTSV4RRFFQ69G5Fé",
	}
	for name, s := range invalid {
		assert.False(t, IsULID(s), "%s: %q", name, s)
	}
}

func TestValidMessageIDRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"hello",
		"msg-123",
		"12345",
		"01H8X9Z2K3M4N5P6Q7R8S9T0", // the draft's example is 24 chars, not a ULID
		"919108f7-52d1-4320-9bac-f847db4148a8 ",
	} {
		assert.False(t, ValidMessageID(s), "%q", s)
	}
}

func TestValidIdempotencyKey(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"empty", "", false},
		{"1 char", "a", true},
		{"uuid v4", "550e8400-e29b-41d4-a716-446655440000", true},
		{"draft placeholder", "uuid-v4-string", true},
		{"all visible punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true},
		{"128 chars", strings.Repeat("k", 128), true},
		{"129 chars", strings.Repeat("k", 129), false},
		{"space inside", "a b", false},
		{"leading space", " ab", false},
		{"tab", "a\tb", false},
		{"newline", "ab\n", false},
		{"NUL", "a\x00", false},
		{"DEL", "a\x7f", false},
		{"non-ASCII", "clé", false},
		{"non-ASCII only", "é", false},
		{"high byte", "a\xff", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ValidIdempotencyKey(tc.in))
		})
	}
}

func TestNormalizeMessageID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"lower-case UUID unchanged", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"},
		{"upper-case UUID", "017F22E2-79B0-7CC3-98C4-DC0C0C07398F", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"},
		{"mixed-case UUID", "919108F7-52d1-4320-9BaC-f847db4148A8", "919108f7-52d1-4320-9bac-f847db4148a8"},
		{"max UUID", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "ffffffff-ffff-ffff-ffff-ffffffffffff"},
		{"nil UUID", "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
		{"upper-case ULID unchanged", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"lower-case ULID", "01arz3ndektsv4rrffq69g5fav", "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"mixed-case ULID", "01aRz3NdEKTSV4RRFFQ69G5fav", "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"all-digit ULID", "00000000000000000000000000", "00000000000000000000000000"},
		// Not ids: left exactly as they are.
		{"empty", "", ""},
		{"word", "Order-42", "Order-42"},
		{"UUID of version 0", "919108F7-52D1-0320-9BAC-F847DB4148A8", "919108F7-52D1-0320-9BAC-F847DB4148A8"},
		{"UUID without dashes", "919108F752D143209BACF847DB4148A8", "919108F752D143209BACF847DB4148A8"},
		{"26 chars with U", "01arz3ndektsv4rrffq69g5fau", "01arz3ndektsv4rrffq69g5fau"},
		{"draft's 24-char id", "01h8x9z2k3m4n5p6q7r8s9t0", "01h8x9z2k3m4n5p6q7r8s9t0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NormalizeMessageID(tc.in)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, got, NormalizeMessageID(got), "idempotent")
			assert.Equal(t, ValidMessageID(tc.in), ValidMessageID(got), "validity unchanged")
			assert.True(t, strings.EqualFold(tc.in, got), "only the case changes")
		})
	}
	// Every spelling of one id normalises alike.
	for _, id := range []string{"017f22e2-79b0-7cc3-98c4-dc0c0c07398f", "01ARZ3NDEKTSV4RRFFQ69G5FAV"} {
		assert.Equal(t, NormalizeMessageID(id), NormalizeMessageID(strings.ToUpper(id)))
		assert.Equal(t, NormalizeMessageID(id), NormalizeMessageID(strings.ToLower(id)))
	}
	// Already canonical ids are returned without a copy.
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = NormalizeMessageID("017f22e2-79b0-7cc3-98c4-dc0c0c07398f") }))
}

func TestValidWorkflowID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"empty", "", false},
		{"UUID", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", true},
		{"ULID", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"another gateway's id", "wf:order/42", true},
		{"128 chars", strings.Repeat("w", 128), true},
		{"129 chars", strings.Repeat("w", 129), false},
		{"space", "wf 42", false},
		{"control", "wf\n42", false},
		{"non-ASCII", "wf-é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ValidWorkflowID(tc.in))
		})
	}
}
