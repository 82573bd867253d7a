package pebblestore

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"time"
)

// One byte in front of every key names the table it belongs to (doc.go).
const (
	tMessage  byte = 'M'
	tStatus   byte = 'S'
	tMsgTime  byte = 'T'
	tIdem     byte = 'I'
	tInbox    byte = 'B'
	tInboxRef byte = 'R'
	tAgent    byte = 'A'
	tAgentKey byte = 'K'
	tQueue    byte = 'Q'
	tTaskDue  byte = 'D'
	tDead     byte = 'X'
	tWorkflow byte = 'W'
	tSchema   byte = 'C'
	tMeta     byte = 'V'
	tWebhook  byte = 'H'
)

// An id in a key is self-delimiting: a canonical lower-case UUID (every id
// the gateway makes) is its 16 bytes after idUUID; any other spelling —
// a client's own message id, the contract tests' ids — is its text after
// idText and a uvarint length.
const (
	idUUID byte = 1
	idText byte = 2
)

var errBadKey = errors.New("malformed key")

const timeLen = 8

// appendID appends the key form of id.
func appendID(b []byte, id string) []byte {
	if u, ok := parseUUID(id); ok {
		b = append(b, idUUID)
		return append(b, u[:]...)
	}
	b = append(b, idText)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...)
}

// readID reads what appendID wrote at the start of b and returns the rest.
func readID(b []byte) (id string, rest []byte, err error) {
	if len(b) == 0 {
		return "", nil, errBadKey
	}
	switch b[0] {
	case idUUID:
		if len(b) < 17 {
			return "", nil, errBadKey
		}
		return formatUUID(b[1:17]), b[17:], nil
	case idText:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) {
			return "", nil, errBadKey
		}
		start := 1 + k
		return string(b[start : start+int(n)]), b[start+int(n):], nil
	}
	return "", nil, errBadKey
}

// parseUUID accepts only the canonical lower-case spelling, so that
// formatUUID gives back exactly the id that was stored.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, lo := unhex(s[i]), unhex(s[i+1])
		if hi > 15 || lo > 15 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}

func formatUUID(u []byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// A task id is gateway.TaskID's message id + "|" + destination: its key
// form is the message id's (16 bytes for a UUID) then the destination.
const (
	taskPair  byte = 1
	taskWhole byte = 0
)

func appendTaskID(b []byte, id string) []byte {
	if msg, dest, ok := strings.Cut(id, "|"); ok {
		b = append(b, taskPair)
		b = appendID(b, msg)
		return append(b, dest...)
	}
	b = append(b, taskWhole)
	return appendID(b, id)
}

// readTaskID reads a task id that runs to the end of b.
func readTaskID(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errBadKey
	}
	id, rest, err := readID(b[1:])
	if err != nil {
		return "", err
	}
	switch b[0] {
	case taskPair:
		return id + "|" + string(rest), nil
	case taskWhole:
		if len(rest) != 0 {
			return "", errBadKey
		}
		return id, nil
	}
	return "", errBadKey
}

func key(table byte, n int) []byte {
	b := make([]byte, 1, 1+n)
	b[0] = table
	return b
}

func messageKey(id string) []byte  { return appendID(key(tMessage, 18), id) }
func statusKey(id string) []byte   { return appendID(key(tStatus, 18), id) }
func workflowKey(id string) []byte { return appendID(key(tWorkflow, 18), id) }
func taskDueKey(id string) []byte  { return appendTaskID(key(tTaskDue, 20+len(id)), id) }

func queueKey(due []byte, taskID string) []byte {
	return appendTaskID(append(key(tQueue, timeLen+20+len(taskID)), due...), taskID)
}

func msgTimeKey(at time.Time, id string) []byte {
	return appendID(putTime(key(tMsgTime, timeLen+18), at), id)
}

// address keys end in 0x00, which no address contains, so that "bob"
// is no prefix of "bobby".
func addressPrefix(table byte, addr string) []byte {
	b := key(table, len(addr)+1+timeLen+18)
	b = append(b, strings.ToLower(addr)...)
	return append(b, 0)
}

func idemKey(sender, k string) []byte {
	b := key(tIdem, len(sender)+1+len(k))
	b = append(b, strings.ToLower(sender)...)
	b = append(b, 0)
	return append(b, k...)
}

// prefixEnd is the first key after every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// putTime appends t as 8 bytes whose byte order is time order: flipping the
// sign bit maps int64 order onto uint64 order.
func putTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(unixNano(t))^(1<<63))
}

func getTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)
