package boltimport

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The engine's binary forms: one version byte, then fields in a fixed
// order; strings are uvarint length + bytes, integers uvarints, times a
// uvarint 0 for the zero time or 1 + zig-zag varint Unix nanoseconds. A
// value that starts with '{' (or '[' for statuses) is the JSON of the
// versions before them.
const (
	codecV1 = 1
	// metaV2 is the message meta with the sender verification after the
	// v1 fields.
	metaV2 = 2
)

var errCorrupt = errors.New("truncated or malformed record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

// int reads a count written from a non-negative int; a larger value is
// damage, not a negative count.
func (d *decoder) int() int {
	v := d.uint()
	if v > math.MaxInt {
		d.err = errCorrupt
		return 0
	}
	return int(v)
}

// str copies: a bbolt value is only valid in its transaction.
func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	if d.uint() == 0 || d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return time.Time{}
	}
	d.b = d.b[n:]
	return time.Unix(0, v).UTC()
}

// optTime reads a time that the zero time stands for the absence of.
func (d *decoder) optTime() *time.Time {
	t := d.time()
	if t.IsZero() {
		return nil
	}
	return &t
}

// done reports the first error, or trailing bytes as one.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return errCorrupt
	}
	return d.err
}

// count reads a number of elements, each of which takes at least a byte.
func (d *decoder) count() (int, error) {
	n := d.uint()
	if d.err != nil || n > uint64(len(d.b)) {
		return 0, errCorrupt
	}
	return int(n), nil
}

const timeLen = 8

// getTime reads a time key: big-endian Unix nanoseconds, sign bit flipped.
func getTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// decodeTask reads the task stored under id (its due time cut off). The
// message id is absent when it is the id's prefix (gateway.TaskID).
func decodeTask(id, v []byte) (gateway.Task, error) {
	var t gateway.Task
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &t)
		return t, err
	}
	if len(v) == 0 || v[0] != codecV1 {
		return t, errCorrupt
	}
	d := decoder{b: v[1:]}
	t.ID = string(id)
	if d.uint() == 0 {
		t.MessageID, _, _ = strings.Cut(t.ID, "|")
	} else {
		t.MessageID = d.str()
	}
	t.Kind = gateway.TaskKind(d.str())
	n, err := d.count()
	if err != nil {
		return t, err
	}
	if n > 0 {
		t.Recipients = make([]string, n)
		for i := range t.Recipients {
			t.Recipients[i] = d.str()
		}
	}
	t.Domain = d.str()
	t.Attempt = d.int()
	t.CreatedAt = d.time()
	t.NotBefore = d.time()
	t.Token = d.str()
	t.Round = d.int()
	return t, d.done()
}

// decodeIdem reads the record stored under scope (lower(sender) + 0x00 +
// key): the sender is stored only when its case differs from the scope's,
// the digest as 32 bytes when it is hex SHA-256.
func decodeIdem(scope, v []byte) (gateway.IdempotencyRecord, error) {
	var rec gateway.IdempotencyRecord
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &rec)
		return rec, err
	}
	if len(v) == 0 || v[0] != codecV1 {
		return rec, errCorrupt
	}
	sender, k, ok := bytes.Cut(scope, []byte{0})
	if !ok {
		return rec, errCorrupt
	}
	d := decoder{b: v[1:]}
	if rec.Sender = d.str(); rec.Sender == "" {
		rec.Sender = string(sender)
	}
	rec.Key = string(k)
	rec.MessageID = d.str()
	if d.uint() == 1 {
		if len(d.b) < 32 {
			return rec, errCorrupt
		}
		rec.Digest = hex.EncodeToString(d.b[:32])
		d.b = d.b[32:]
	} else {
		rec.Digest = d.str()
	}
	rec.CreatedAt = d.time()
	return rec, d.done()
}

// decodeStatuses reads a message's recipient statuses.
func decodeStatuses(v []byte) ([]gateway.RecipientStatus, error) {
	var rs []gateway.RecipientStatus
	if len(v) > 0 && v[0] == '[' {
		err := json.Unmarshal(v, &rs)
		return rs, err
	}
	if len(v) == 0 || v[0] != codecV1 {
		return nil, errCorrupt
	}
	d := decoder{b: v[1:]}
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	rs = make([]gateway.RecipientStatus, n)
	for i := range rs {
		r := &rs[i]
		r.Address = d.str()
		r.Status = gateway.State(d.str())
		r.Attempts = d.int()
		r.UpdatedAt = d.time()
		r.NextRetry = d.optTime()
		r.DeliveredAt = d.optTime()
		r.ErrorCode = d.str()
		r.ErrorMessage = d.str()
		r.Via = d.str()
		if p := d.bytes(); len(p) > 0 {
			r.Response = json.RawMessage(bytes.Clone(p))
		}
	}
	return rs, d.done()
}

// messageMeta is the part of a stored message before its raw bytes.
type messageMeta struct {
	Sender       string                      `json:"sender"`
	Recipients   []string                    `json:"recipients"`
	Subject      string                      `json:"subject,omitempty"`
	Origin       gateway.Origin              `json:"origin,omitempty"`
	AcceptedAt   time.Time                   `json:"accepted_at"`
	Verification *gateway.SenderVerification `json:"sender_verification,omitempty"`
}

// decodeMessage reads a messages value; the raw bytes are copied.
func decodeMessage(id, v []byte) (gateway.StoredMessage, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return gateway.StoredMessage{}, errCorrupt
	}
	m, err := decodeMeta(v[k : k+int(n)])
	if err != nil {
		return gateway.StoredMessage{}, fmt.Errorf("message meta: %w", err)
	}
	return gateway.StoredMessage{
		ID: string(id), Raw: append([]byte(nil), v[k+int(n):]...), Sender: m.Sender, Recipients: m.Recipients,
		Subject: m.Subject, Origin: m.Origin, AcceptedAt: m.AcceptedAt, Verification: m.Verification,
	}, nil
}

func decodeMeta(v []byte) (messageMeta, error) {
	var m messageMeta
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &m)
		return m, err
	}
	if len(v) == 0 || (v[0] != codecV1 && v[0] != metaV2) {
		return m, errCorrupt
	}
	d := decoder{b: v[1:]}
	m.Sender = d.str()
	n, err := d.count()
	if err != nil {
		return m, err
	}
	m.Recipients = make([]string, n)
	for i := range m.Recipients {
		m.Recipients[i] = d.str()
	}
	m.Subject = d.str()
	m.Origin = gateway.Origin(d.str())
	m.AcceptedAt = d.time()
	if v[0] == metaV2 {
		sv := gateway.SenderVerification{Result: gateway.VerificationResult(d.str()), Method: d.str(), Domain: d.str(), KeyID: d.str(), Algorithm: d.str()}
		if sv.Result != "" {
			m.Verification = &sv
		}
	}
	return m, d.done()
}
