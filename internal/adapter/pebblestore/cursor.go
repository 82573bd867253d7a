package pebblestore

import (
	"encoding/base64"
	"fmt"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// ErrBadCursor is returned (wrapped) for a cursor this store did not hand
// out. It is gateway.ErrBadCursor itself, which the service turns into a
// client error.
var ErrBadCursor = gateway.ErrBadCursor

// A cursor is a position in one index. Its first byte names the index so
// that a cursor from one listing is refused by another instead of being
// read as a nonsensical position.
const (
	cursorMessages byte = 'm'
	cursorInbox    byte = 'i'
)

func encodeCursor(kind byte, pos []byte) string {
	b := make([]byte, 0, 1+len(pos))
	b = append(b, kind)
	b = append(b, pos...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the position, which must be longer than minLen.
func decodeCursor(kind byte, s string, minLen int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	// The decoder skips CR and LF and ignores stray trailing bits, so other
	// spellings decode too; only the one encodeCursor writes was handed out.
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	if len(b) < 1 || b[0] != kind || len(b)-1 <= minLen {
		return nil, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	return b[1:], nil
}

// pageLimit applies the listing defaults shared by every store.
func pageLimit(n int) int { return gateway.PageLimit(n) }
