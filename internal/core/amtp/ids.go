package amtp

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

// UUIDv7 generation keeps a process-wide monotonic state so that ids made in
// the same millisecond still sort in creation order (RFC 9562 §6.2 method 1:
// a 12-bit counter in rand_a, re-seeded randomly each millisecond).
var v7 struct {
	sync.Mutex
	lastMS  int64
	counter uint16
}

// NewUUIDv7 returns a new lower-case UUIDv7.
func NewUUIDv7() string { return newUUIDv7(time.Now()) }

// AppendUUIDv7 appends a new lower-case UUIDv7 to dst, for callers that
// want it inside a longer string without building the UUID's own first.
func AppendUUIDv7(dst []byte) []byte {
	b := uuidV7(time.Now())
	return appendUUID(dst, &b)
}

func newUUIDv7(now time.Time) string {
	b := uuidV7(now)
	return formatUUID(b)
}

func uuidV7(now time.Time) [16]byte {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic("amtp: crypto/rand failed: " + err.Error())
	}
	ms := now.UnixMilli()
	v7.Lock()
	if ms <= v7.lastMS {
		// Same millisecond, or the clock stepped back: keep ordering by
		// staying on the last timestamp and bumping the counter.
		ms = v7.lastMS
		v7.counter++
		if v7.counter > 0x0fff {
			ms++
			v7.counter = binary.BigEndian.Uint16(b[6:8]) & 0x07ff
		}
	} else {
		// Start each millisecond in the lower half so there is room to count.
		v7.counter = binary.BigEndian.Uint16(b[6:8]) & 0x07ff
	}
	v7.lastMS = ms
	counter := v7.counter
	v7.Unlock()

	b[0] = byte(ms >> 40)
	b[1] = byte(ms >> 32)
	b[2] = byte(ms >> 24)
	b[3] = byte(ms >> 16)
	b[4] = byte(ms >> 8)
	b[5] = byte(ms)
	b[6] = 0x70 | byte(counter>>8)
	b[7] = byte(counter)
	b[8] = 0x80 | (b[8] & 0x3f)
	return b
}

// NewUUIDv4 returns a new random lower-case UUIDv4.
func NewUUIDv4() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("amtp: crypto/rand failed: " + err.Error())
	}
	b[6] = 0x40 | (b[6] & 0x0f)
	b[8] = 0x80 | (b[8] & 0x3f)
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var out [36]byte
	return string(appendUUID(out[:0], &b))
}

// appendUUID appends the 8-4-4-4-12 lower-case hex form of b to dst.
func appendUUID(dst []byte, b *[16]byte) []byte {
	dst = hex.AppendEncode(dst, b[0:4])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, b[4:6])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, b[6:8])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, b[8:10])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, b[10:])
}

// parseUUID decodes the 8-4-4-4-12 hex form (either case).
func parseUUID(s string) ([16]byte, bool) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, false
	}
	var compact [32]byte
	n := 0
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		compact[n] = s[i]
		n++
	}
	if _, err := hex.Decode(b[:], compact[:]); err != nil {
		return b, false
	}
	return b, true
}

// IsUUID reports whether s is an RFC 9562 UUID: versions 1 to 8 with the
// RFC variant, or the Nil and Max UUIDs.
func IsUUID(s string) bool {
	b, ok := parseUUID(s)
	if !ok {
		return false
	}
	if b == [16]byte{} {
		return true
	}
	if b == [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		return true
	}
	ver := b[6] >> 4
	return ver >= 1 && ver <= 8 && b[8]&0xc0 == 0x80
}

// IsUUIDv7 reports whether s is a UUID of version 7.
func IsUUIDv7(s string) bool {
	b, ok := parseUUID(s)
	return ok && b[6]>>4 == 7 && b[8]&0xc0 == 0x80
}

// IsUUIDv4 reports whether s is a UUID of version 4.
func IsUUIDv4(s string) bool {
	b, ok := parseUUID(s)
	return ok && b[6]>>4 == 4 && b[8]&0xc0 == 0x80
}

// IsULID reports whether s is a ULID: 26 Crockford base32 characters whose
// first character is 0–7 (the 128-bit bound). Either case is accepted, as
// the ULID spec allows.
func IsULID(s string) bool {
	if len(s) != 26 {
		return false
	}
	if s[0] < '0' || s[0] > '7' {
		return false
	}
	for i := 1; i < 26; i++ {
		if !isCrockford(s[i]) {
			return false
		}
	}
	return true
}

func isCrockford(c byte) bool {
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	switch {
	case c >= '0' && c <= '9':
		return true
	case c >= 'A' && c <= 'Z':
		return c != 'I' && c != 'L' && c != 'O' && c != 'U'
	}
	return false
}

// ValidMessageID reports whether a supplied message_id is acceptable.
func ValidMessageID(s string) bool { return IsUUID(s) || IsULID(s) }

// NormalizeMessageID returns the canonical spelling of a message id, so
// that ids compare case-insensitively as the protocol requires: a UUID in
// lower case (as this gateway generates them), a ULID in upper case (the
// canonical Crockford form). Anything else is returned unchanged. The
// result is a valid id exactly when s is one.
func NormalizeMessageID(s string) string {
	switch {
	case IsUUID(s):
		return asciiCase(s, 'A', 'Z')
	case IsULID(s):
		return asciiCase(s, 'a', 'z')
	}
	return s
}

// asciiCase flips the case of the ASCII letters of s in lo..hi, allocating
// only when there is one: ids arrive in their canonical case nearly always.
func asciiCase(s string, lo, hi byte) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; c >= lo && c <= hi {
			b[i] = c ^ 0x20
		}
	}
	return string(b)
}

// MaxIdempotencyKeyLen is the longest idempotency key accepted.
const MaxIdempotencyKeyLen = 128

// ValidIdempotencyKey reports whether s is 1–128 visible ASCII characters.
func ValidIdempotencyKey(s string) bool {
	if len(s) == 0 || len(s) > MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// MaxWorkflowIDLen is the longest workflow_id accepted.
const MaxWorkflowIDLen = 128

// ValidWorkflowID reports whether s is an acceptable workflow_id (draft
// §4.2.2): 1–128 visible ASCII characters, like an idempotency key. A
// message id is one, and other gateways' workflow ids need not be.
func ValidWorkflowID(s string) bool {
	return len(s) <= MaxWorkflowIDLen && ValidIdempotencyKey(s)
}
