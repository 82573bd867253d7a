package pebblestore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Values are in a compact binary form: one version byte, then fields in a
// fixed order; strings are uvarint length + bytes, integers uvarints,
// times a uvarint 0 for the zero time or 1 + zig-zag varint Unix
// nanoseconds. Nothing a value's key holds is repeated in it.
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

// optTime writes a nil time as the zero time: no stored status time is
// the zero instant itself.
func (e *encoder) optTime(t *time.Time) {
	if t == nil {
		e.uint(0)
		return
	}
	e.time(*t)
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

func (d *decoder) int() int {
	v := d.uint()
	if v > math.MaxInt {
		d.err = errCorrupt
		return 0
	}
	return int(v)
}

// count reads a list length; each element takes at least a byte.
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return 0
	}
	return int(n)
}

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

func (d *decoder) optTime() *time.Time {
	t := d.time()
	if t.IsZero() {
		return nil
	}
	return &t
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return errCorrupt
	}
	return d.err
}

func (d *decoder) version() {
	if len(d.b) == 0 || d.b[0] != codecV1 {
		d.err = errCorrupt
		return
	}
	d.b = d.b[1:]
}

// encodeTask encodes t for the queue, where its id (and so, for
// gateway.TaskID ids, its message id) and its due time are the key. The
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

func decodeTask(id string, v []byte) (gateway.Task, error) {
	t := gateway.Task{ID: id}
	d := decoder{b: v}
	d.version()
	if d.uint() == 0 {
		t.MessageID, _, _ = strings.Cut(id, "|")
	} else {
		t.MessageID = d.str()
	}
	t.Kind = gateway.TaskKind(d.str())
	if n := d.count(); n > 0 {
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

// encodeIdem encodes rec for its key (idemKey: the lower-cased sender and
// the key): the sender only when its case differs, the message id in its
// key form, the digest as 32 bytes when it is hex SHA-256.
func encodeIdem(rec gateway.IdempotencyRecord) []byte {
	e := encoder{b: make([]byte, 0, 64)}
	e.b = append(e.b, codecV1)
	if rec.Sender == strings.ToLower(rec.Sender) {
		e.str("")
	} else {
		e.str(rec.Sender)
	}
	e.bytes(appendID(nil, rec.MessageID))
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

// decodeIdem reads the record stored under k (idemKey's form).
func decodeIdem(k, v []byte) (gateway.IdempotencyRecord, error) {
	var rec gateway.IdempotencyRecord
	if len(k) < 1 {
		return rec, errCorrupt
	}
	sender, scopeKey, ok := bytes.Cut(k[1:], []byte{0})
	if !ok {
		return rec, errCorrupt
	}
	d := decoder{b: v}
	d.version()
	rec.Sender = d.str()
	if rec.Sender == "" {
		rec.Sender = string(sender)
	}
	rec.Key = string(scopeKey)
	if idb := d.bytes(); d.err == nil {
		id, rest, err := readID(idb)
		if err != nil || len(rest) != 0 {
			return rec, errCorrupt
		}
		rec.MessageID = id
	}
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
	encodeHistories(&e, rs)
	return e.b
}

func decodeStatuses(v []byte) ([]gateway.RecipientStatus, error) {
	d := decoder{b: v}
	d.version()
	rs := make([]gateway.RecipientStatus, d.count())
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
	decodeHistories(&d, rs)
	if err := d.done(); err != nil {
		return nil, err
	}
	return rs, nil
}

// messageMeta is the part of a stored message that listings read; the raw
// message follows it in the value so that listings never decode the body.
type messageMeta struct {
	Sender       string
	Recipients   []string
	Subject      string
	Origin       gateway.Origin
	AcceptedAt   time.Time
	Verification *gateway.SenderVerification
}

func encodeMessage(m *gateway.StoredMessage, acceptedAt time.Time) []byte {
	meta := encodeMeta(m, acceptedAt, len(m.Raw))
	return append(meta, m.Raw...)
}

// encodeMeta encodes the part of a message value before the raw message,
// with room for extra more bytes.
func encodeMeta(m *gateway.StoredMessage, acceptedAt time.Time, extra int) []byte {
	e := encoder{b: make([]byte, 0, 128+extra)}
	e.b = append(e.b, codecV1)
	e.str(m.Sender)
	e.uint(uint64(len(m.Recipients)))
	for _, r := range m.Recipients {
		e.str(r)
	}
	e.str(m.Subject)
	e.str(string(m.Origin))
	e.time(acceptedAt)
	var sv gateway.SenderVerification
	if m.Verification != nil {
		sv = *m.Verification
	}
	e.str(string(sv.Result))
	e.str(sv.Method)
	e.str(sv.Domain)
	e.str(sv.KeyID)
	e.str(sv.Algorithm)
	// The raw message follows and runs to the end: no length, and
	// listings stop before it.
	return e.b
}

// decodeMessage splits a message value; an inline body aliases v, a body
// in a file (codecBodyFile, bodies.go) is its reference.
func decodeMessage(v []byte) (m messageMeta, body storedBody, err error) {
	d := decoder{b: v}
	inFile := len(v) > 0 && v[0] == codecBodyFile
	if inFile {
		d.b = v[1:]
	} else {
		d.version()
	}
	m.Sender = d.str()
	m.Recipients = make([]string, d.count())
	for i := range m.Recipients {
		m.Recipients[i] = d.str()
	}
	m.Subject = d.str()
	m.Origin = gateway.Origin(d.str())
	m.AcceptedAt = d.time()
	sv := gateway.SenderVerification{Result: gateway.VerificationResult(d.str()), Method: d.str(), Domain: d.str(), KeyID: d.str(), Algorithm: d.str()}
	if d.err != nil {
		return m, body, d.err
	}
	if sv.Result != "" {
		m.Verification = &sv
	}
	if !inFile {
		return m, storedBody{inline: d.b}, nil
	}
	body.file, err = decodeBodyRef(d.b)
	return m, body, err
}
