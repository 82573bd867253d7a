package boltimport

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sealFrame frames payload as number lsn, as the engine wrote frames.
func sealFrame(lsn uint64, payload []byte) []byte {
	f := make([]byte, frameHeader, frameHeader+len(payload))
	f = append(f, payload...)
	binary.LittleEndian.PutUint32(f[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(f[8:], lsn)
	binary.LittleEndian.PutUint32(f[4:], crc32.Checksum(f[8:], castagnoli))
	return f
}

func appendOp(p []byte, kind byte, bucket, key, value []byte) []byte {
	p = append(p, kind, byte(len(bucket)))
	p = append(p, bucket...)
	p = binary.AppendUvarint(p, uint64(len(key)))
	p = append(p, key...)
	if kind == opPut {
		p = binary.AppendUvarint(p, uint64(len(value)))
		p = append(p, value...)
	}
	return p
}

// FuzzReplay: any log — raw bytes, or the bytes as one well-formed frame
// — replays without a panic or an error (reading memory cannot fail),
// and a frame whose operations cannot be read is reported, once.
func FuzzReplay(f *testing.F) {
	valid := appendOp(appendOp(nil, opPut, bucketMessages, []byte("k"), []byte("v")), opDelete, []byte("due"), []byte("d"), nil)
	f.Add(valid)
	f.Add(sealFrame(1, valid))
	f.Add(append(sealFrame(1, valid), sealFrame(3, valid)...))
	f.Add([]byte{opPut, 200, 'x'})
	f.Add([]byte{9, 4, 'i', 'd', 'e', 'm', 1, 'k'})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, log := range [][]byte{data, sealFrame(1, data)} {
			var d dump
			v := &view{tables: map[string]*table{}}
			for _, name := range exported {
				v.tables[string(name)] = &table{changes: map[string]change{}}
			}
			l := logFile{f: bytes.NewReader(log), size: int64(len(log)), name: WALFileName}
			require.NoError(t, l.replay(0, v, &d))
			if len(log) > len(data) { // the framed form
				_, err := decodeOps(data)
				assert.Equal(t, err != nil, len(d.Unreadable) == 1, "%v", d.Unreadable)
			}
		}
	})
}

// FuzzDecoders: no stored value makes a decoder panic, and none makes it
// allocate beyond what the value's length allows.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte{codecV1, 0, 5, 'l', 'o', 'c', 'a', 'l', 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte(`{"id":"x","message_id":"m","kind":"remote","attempt":-1}`))
	f.Add([]byte{codecV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{metaV2, 1, 'a', 1, 1, 'b', 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{4, metaV2, 0, 0, 0, 'r', 'a', 'w'})
	f.Fuzz(func(t *testing.T, v []byte) {
		_, _ = decodeTask([]byte("m|b@b.example"), v)
		_, _ = decodeIdem([]byte("a@a.example\x00key"), v)
		_, _ = decodeMessage([]byte("m"), v)
		if rs, err := decodeStatuses(v); err == nil && len(v) > 0 && v[0] == codecV1 {
			assert.LessOrEqual(t, len(rs), len(v))
		}
		if m, err := decodeMeta(v); err == nil && len(v) > 0 && v[0] != '{' {
			assert.LessOrEqual(t, len(m.Recipients), len(v))
		}
	})
}
