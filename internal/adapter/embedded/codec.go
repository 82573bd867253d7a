package embedded

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

// Tasks and idempotency records are written in a compact binary form:
// their JSON repeated the bbolt key (task id, sender and key), field names
// and RFC 3339 times, about 400 of the ~2,900 bytes a queued message cost.
// A value that starts with '{' is the JSON of earlier versions and is
// still read, so an existing data directory needs no migration.
//
// Layout: one version byte (codecV1), then fields in a fixed order;
// strings are uvarint length + bytes, integers uvarints, times a uvarint
// 0 for the zero time or 1 + zig-zag varint Unix nanoseconds.
const codecV1 = 1

var errCorrupt = errors.New("truncated or malformed record")

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(p []byte) {
	e.uint(uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.uint(0)
		return
	}
	e.uint(1)
	e.b = binary.AppendVarint(e.b, t.UnixNano())
}

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

// int reads a count the encoder wrote from a non-negative int; a larger
// value is corruption, not a negative count.
func (d *decoder) int() int {
	v := d.uint()
	if v > math.MaxInt {
		d.err = errCorrupt
		return 0
	}
	return int(v)
}

// str copies: the bytes of a bbolt value are only valid in its transaction.
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

// done reports the first error, or trailing bytes as one.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return errCorrupt
	}
	return d.err
}

// encodeTask encodes t for the tasks bucket, where its id is the key. The
// message id is left out when it is the id's prefix (gateway.TaskID); the
// lease is not stored.
func encodeTask(t gateway.Task) []byte {
	e := encoder{b: make([]byte, 0, 64)}
	e.b = append(e.b, codecV1)
	if prefix, _, ok := strings.Cut(t.ID, "|"); ok && prefix == t.MessageID {
		e.uint(0)
	} else {
		e.uint(1)
		e.str(t.MessageID)
	}
	e.str(string(t.Kind))
	e.uint(uint64(len(t.Recipients)))
	for _, r := range t.Recipients {
		e.str(r)
	}
	e.str(t.Domain)
	e.uint(uint64(max(t.Attempt, 0)))
	e.time(t.CreatedAt)
	e.time(t.NotBefore)
	e.str(t.Token)
	e.uint(uint64(max(t.Round, 0)))
	return e.b
}

// decodeTask reads a task stored under id.
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
	n := d.uint()
	if n > uint64(len(d.b)) { // each recipient takes at least a byte
		return t, errCorrupt
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

// encodeIdem encodes rec for the idem bucket, whose key already holds the
// lower-cased sender and the key (see idemKey): the sender is kept only
// when its case differs, the digest as 32 bytes when it is hex SHA-256.
func encodeIdem(rec gateway.IdempotencyRecord) []byte {
	e := encoder{b: make([]byte, 0, 96)}
	e.b = append(e.b, codecV1)
	if rec.Sender == strings.ToLower(rec.Sender) {
		e.str("")
	} else {
		e.str(rec.Sender)
	}
	e.str(rec.MessageID)
	if raw, err := hex.DecodeString(rec.Digest); err == nil && len(raw) == 32 && hex.EncodeToString(raw) == rec.Digest {
		e.uint(1)
		e.b = append(e.b, raw...)
	} else {
		e.uint(0)
		e.str(rec.Digest)
	}
	e.time(rec.CreatedAt)
	return e.b
}

// decodeIdem reads the record stored under key (idemKey's form).
func decodeIdem(key, v []byte) (gateway.IdempotencyRecord, error) {
	var rec gateway.IdempotencyRecord
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &rec)
		return rec, err
	}
	if len(v) == 0 || v[0] != codecV1 {
		return rec, errCorrupt
	}
	sender, k, ok := bytes.Cut(key, []byte{0})
	if !ok {
		return rec, errCorrupt
	}
	d := decoder{b: v[1:]}
	rec.Sender = d.str()
	if rec.Sender == "" {
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
	if err := d.done(); err != nil {
		return rec, fmt.Errorf("idempotency record: %w", err)
	}
	return rec, nil
}

// encodeStatuses encodes a message's recipient statuses (the statuses
// bucket): per status its address, state, attempts, times (next retry and
// delivery absent when nil), error, way of delivery and the push agent's
// reply as raw JSON.
func encodeStatuses(rs []gateway.RecipientStatus) []byte {
	e := encoder{b: make([]byte, 0, 48*len(rs)+2)}
	e.b = append(e.b, codecV1)
	e.uint(uint64(len(rs)))
	for _, r := range rs {
		e.str(r.Address)
		e.str(string(r.Status))
		e.uint(uint64(max(r.Attempts, 0)))
		e.time(r.UpdatedAt)
		e.optTime(r.NextRetry)
		e.optTime(r.DeliveredAt)
		e.str(r.ErrorCode)
		e.str(r.ErrorMessage)
		e.str(r.Via)
		e.bytes(r.Response)
	}
	return e.b
}

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
	n := d.uint()
	if n > uint64(len(d.b)) {
		return nil, errCorrupt
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

// optTime writes a nil time as the zero time: no stored status time is
// the zero instant itself.
func (e *encoder) optTime(t *time.Time) {
	if t == nil {
		e.uint(0)
		return
	}
	e.time(*t)
}

func (d *decoder) optTime() *time.Time {
	t := d.time()
	if t.IsZero() {
		return nil
	}
	return &t
}

// encodeMeta encodes the listing part of a messages value (the raw
// message follows it there).
// metaV2 is the message meta layout with the sender verification after
// the v1 fields; v1 values (written before it was recorded) still decode.
const metaV2 = 2

func encodeMeta(m messageMeta) []byte {
	e := encoder{b: make([]byte, 0, 96)}
	e.b = append(e.b, metaV2)
	e.str(m.Sender)
	e.uint(uint64(len(m.Recipients)))
	for _, r := range m.Recipients {
		e.str(r)
	}
	e.str(m.Subject)
	e.str(string(m.Origin))
	e.time(m.AcceptedAt)
	var sv gateway.SenderVerification
	if m.Verification != nil {
		sv = *m.Verification
	}
	e.str(string(sv.Result))
	e.str(sv.Method)
	e.str(sv.Domain)
	e.str(sv.KeyID)
	e.str(sv.Algorithm)
	return e.b
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
	n := d.uint()
	if n > uint64(len(d.b)) {
		return m, errCorrupt
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
