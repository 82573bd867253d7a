package boltimport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
)

// The redo log (agentry.wal) is frames one after the other from offset
// 0. A frame is a 16-byte header — payload length (uint32), CRC-32C of
// the rest (uint32), number (uint64), little-endian — and a payload of
// operations:
//
//	kind (1 = put, 2 = delete), len(bucket) (1 byte), bucket name,
//	uvarint len(key), key, and for a put uvarint len(value), value.
//
// Numbers rise by one per frame. After each checkpoint the engine wrote
// from offset 0 again over the earlier frames, whose numbers are lower,
// so the frames to apply are the chain from offset 0 numbered from the
// checkpoint's on; what follows the chain is a torn write or the
// remains of an earlier round.
const (
	frameHeader = 16
	// maxFrame is the writer's own bound on a frame: a length beyond it
	// is not a frame.
	maxFrame = 1 << 30
	// maxReplayBytes bounds the frames held in memory. The engine
	// checkpointed once its log passed 16 MiB, so a log holds that and
	// one group of writes past its checkpoint.
	maxReplayBytes = 1 << 30
	// maxGap bounds how far past a damaged frame the numbers of the
	// frames that prove answered writes followed it are looked for.
	maxGap = 1 << 16

	opPut    byte = 1
	opDelete byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// op is one operation of a frame; its slices alias the frame's payload.
type op struct {
	kind        byte
	bucket, key []byte
	value       []byte
}

// frame is a whole frame with a good checksum.
type frame struct {
	lsn     uint64
	payload []byte
	end     int64
}

type logFile struct {
	f    io.ReaderAt
	size int64
	name string
}

// replay applies to v the frames numbered past the checkpoint applied,
// reporting damaged ones through r.
func replay(path string, checkpoint uint64, v *view, r Records) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing answered past the checkpoint
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	l := logFile{f: f, size: info.Size(), name: path}
	return l.replay(checkpoint, v, r)
}

func (l logFile) replay(last uint64, v *view, r Records) error {
	var off, held int64
	for {
		fr, ok, err := l.frameAt(off, last+1, last+1)
		if err != nil {
			return err
		}
		if !ok {
			// Frame last+1 is damaged (and reported) when fr is its
			// successor.
			if fr, ok, err = l.afterDamage(off, last, r); err != nil || !ok {
				return err
			}
		}
		if held += int64(len(fr.payload)); held > maxReplayBytes {
			return fmt.Errorf("%s: more than %d bytes of frames past the checkpoint, beyond what the engine wrote", l.name, maxReplayBytes)
		}
		ops, err := decodeOps(fr.payload)
		if err != nil {
			r.Damaged("redo log frame", frameKey(fr.lsn), err)
		}
		for _, o := range ops {
			v.apply(o)
		}
		last, off = fr.lsn, fr.end
	}
}

// afterDamage decides what the frame at off, which is not whole or not
// frame last+1, means. When its header still gives its end and frame
// last+2 is whole there, the frame was damaged in place: it is reported
// and the chain goes on. Otherwise it is the chain's end, unless a whole
// frame numbered past last+1 lies further on: then answered writes
// followed a damaged frame whose length cannot be trusted, and they are
// reported (not applied: where the chain resumes is not known).
func (l logFile) afterDamage(off int64, last uint64, r Records) (frame, bool, error) {
	if end, ok := l.declaredEnd(off); ok {
		fr, ok, err := l.frameAt(end, last+2, last+2)
		if err != nil || ok {
			if ok {
				r.Damaged("redo log frame", frameKey(last+1), fmt.Errorf("%s at offset %d: checksum mismatch; the writes it held are not imported", l.name, off))
			}
			return fr, ok, err
		}
	}
	lsn, at, found, err := l.scan(off+1, last+2, last+1+maxGap)
	if err != nil || !found {
		return frame{}, false, err
	}
	r.Damaged("redo log frames", []byte(fmt.Sprintf("%d on", last+1)),
		fmt.Errorf("%s: frame %d at offset %d cannot be read and frame %d follows at offset %d: the writes answered from frame %d on are not imported", l.name, last+1, off, lsn, at, last+1))
	return frame{}, false, nil
}

func frameKey(lsn uint64) []byte { return strconv.AppendUint(nil, lsn, 10) }

// declaredEnd is where the header at off says its frame ends, when that
// leaves room for another header.
func (l logFile) declaredEnd(off int64) (int64, bool) {
	var h [frameHeader]byte
	if off+frameHeader > l.size {
		return 0, false
	}
	if _, err := l.f.ReadAt(h[:], off); err != nil {
		return 0, false
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	end := off + frameHeader + n
	return end, n <= maxFrame && end+frameHeader <= l.size
}

// frameAt reads the frame at off when it is whole, its checksum holds and
// its number is within [lo, hi].
func (l logFile) frameAt(off int64, lo, hi uint64) (frame, bool, error) {
	var h [frameHeader]byte
	if off < 0 || off+frameHeader > l.size {
		return frame{}, false, nil
	}
	if _, err := l.f.ReadAt(h[:], off); err != nil {
		return frame{}, false, fmt.Errorf("read %s at %d: %w", l.name, off, err)
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	lsn := binary.LittleEndian.Uint64(h[8:])
	if lsn < lo || lsn > hi || n > maxFrame || off+frameHeader+n > l.size {
		return frame{}, false, nil
	}
	p := make([]byte, n)
	if _, err := l.f.ReadAt(p, off+frameHeader); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return frame{}, false, fmt.Errorf("read %s at %d: %w", l.name, off, err)
	}
	crc := crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, p)
	if crc != binary.LittleEndian.Uint32(h[4:]) {
		return frame{}, false, nil
	}
	return frame{lsn: lsn, payload: p, end: off + frameHeader + n}, true, nil
}

// scanWindow is how much of the log scan reads at once.
const scanWindow = 64 << 10

// scan looks from offset from on for a whole frame numbered within
// [lo, hi], and returns the first found.
func (l logFile) scan(from int64, lo, hi uint64) (lsn uint64, at int64, found bool, err error) {
	buf := make([]byte, scanWindow+frameHeader)
	for base := from; base+frameHeader <= l.size; base += scanWindow {
		n, err := l.f.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, false, fmt.Errorf("read %s at %d: %w", l.name, base, err)
		}
		for i := 0; i+frameHeader <= n && i < scanWindow; i++ {
			if num := binary.LittleEndian.Uint64(buf[i+8:]); num < lo || num > hi {
				continue
			}
			fr, ok, err := l.frameAt(base+int64(i), lo, hi)
			if err != nil || ok {
				return fr.lsn, base + int64(i), ok, err
			}
		}
	}
	return 0, 0, false, nil
}

// decodeOps splits a payload into its operations, all or none.
func decodeOps(p []byte) ([]op, error) {
	var ops []op
	for len(p) > 0 {
		if len(p) < 2 || len(p) < 2+int(p[1]) {
			return nil, errors.New("truncated operation")
		}
		o := op{kind: p[0], bucket: p[2 : 2+int(p[1])]}
		if !known(o.bucket) {
			return nil, fmt.Errorf("unknown bucket %q", o.bucket)
		}
		var err error
		if o.key, p, err = uvarintBytes(p[2+int(p[1]):]); err != nil {
			return nil, err
		}
		switch o.kind {
		case opPut:
			if o.value, p, err = uvarintBytes(p); err != nil {
				return nil, err
			}
		case opDelete:
		default:
			return nil, fmt.Errorf("unknown operation %d", o.kind)
		}
		ops = append(ops, o)
	}
	return ops, nil
}

func uvarintBytes(p []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return nil, nil, errors.New("truncated operation")
	}
	return p[k : k+int(n) : k+int(n)], p[k+int(n):], nil
}
