package embedded

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// The redo log lets the committer answer a group of writes after one
// append and one flush of a small file, instead of after a bbolt commit
// (which writes every page it dirtied and flushes twice). The committer
// keeps one bbolt write transaction open across groups and commits it now
// and then (a checkpoint, commit.go); the log holds every group answered
// since the last checkpoint, so that a crash loses nothing that was
// answered: Open re-applies those groups to bbolt.
//
// The log records physical changes (put this value under this key of this
// bucket, delete this key), in the order they were made. Re-applying them
// to the checkpoint they followed reproduces the transaction exactly, so
// no write needs to be idempotent and no decision is taken twice.
//
// Layout: frames one after the other from offset 0. A frame is a 16-byte
// header — payload length (uint32), CRC-32C of the rest (uint32), sequence
// number (uint64), all little-endian — and a payload of operations:
//
//	op (1 = put, 2 = delete), len(bucket) (1 byte), bucket name,
//	uvarint len(key), key, and for a put uvarint len(value), value.
//
// Sequence numbers rise by one per frame. The checkpoint stores the number
// it includes (bucketWAL, appliedKey), and the log is then written from
// offset 0 again, so it never holds more than one checkpoint's worth.
// Recovery reads frames while each carries the next number and a good
// checksum; anything after that is a torn write or the remains of an
// earlier round, which by construction carries older numbers.

const (
	// WALFileName is the redo log's name inside Options.Dir.
	WALFileName = "agentry.wal"

	frameHeader = 16
	// maxFrame bounds a frame's payload as recovery reads it: a length
	// beyond it is garbage after the log's end, not a frame to allocate.
	maxFrame = 1 << 30

	opPut    byte = 1
	opDelete byte = 2
)

var (
	bucketWAL  = []byte("wal")
	appliedKey = []byte("applied")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// redoLog is the log file and the offset of the next frame. Only the
// committer uses it, after Open's recovery.
type redoLog struct {
	f   *os.File
	off int64
}

func openRedoLog(dir string) (*redoLog, error) {
	path := filepath.Join(dir, WALFileName)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// The file's name must be durable before anything in it is
		// relied on.
		if err := syncDir(dir); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return &redoLog{f: f}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// append writes frame — its header space reserved, its payload after it —
// as number lsn at the log's end and flushes it to the device.
func (l *redoLog) append(lsn uint64, frame []byte) error {
	sealFrame(lsn, frame)
	if _, err := l.f.WriteAt(frame, l.off); err != nil {
		return fmt.Errorf("append frame %d: %w", lsn, err)
	}
	if err := fdatasync(l.f); err != nil {
		return fmt.Errorf("flush frame %d: %w", lsn, err)
	}
	l.off += int64(len(frame))
	return nil
}

// sealFrame fills in the header of frame as number lsn.
func sealFrame(lsn uint64, frame []byte) {
	binary.LittleEndian.PutUint32(frame[0:], uint32(len(frame)-frameHeader))
	binary.LittleEndian.PutUint64(frame[8:], lsn)
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(frame[8:], castagnoli))
}

// rewind starts the next round at offset 0, once a checkpoint holds every
// frame written so far. The file keeps its size: overwriting blocks that
// are already allocated flushes without a metadata update.
func (l *redoLog) rewind() { l.off = 0 }

func (l *redoLog) close() error { return l.f.Close() }

// replay re-applies, inside tx, the frames that follow checkpoint applied,
// up to frame upTo at most, and returns the number of the last one
// (applied when there are none).
func (l *redoLog) replay(tx *bolt.Tx, applied, upTo uint64) (uint64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(l.f, 0, 1<<62), 1<<16)
	var header [frameHeader]byte
	last := applied
	for last < upTo {
		if _, err := io.ReadFull(r, header[:]); err != nil {
			return last, nil // the end of the file
		}
		n := binary.LittleEndian.Uint32(header[0:])
		lsn := binary.LittleEndian.Uint64(header[8:])
		if lsn != last+1 || n > maxFrame {
			return last, nil // an earlier round's frame, or garbage
		}
		// Fresh for every frame: bbolt keeps the slices it is given
		// until the transaction ends.
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return last, nil // torn: never answered
		}
		crc := crc32.Update(crc32.Checksum(header[8:], castagnoli), castagnoli, payload)
		if crc != binary.LittleEndian.Uint32(header[4:]) {
			return last, nil
		}
		if err := applyOps(tx, payload); err != nil {
			return last, fmt.Errorf("redo frame %d: %w", lsn, err)
		}
		last = lsn
	}
	return last, nil
}

// applyOps performs a frame's operations in order.
func applyOps(tx *bolt.Tx, p []byte) error {
	for len(p) > 0 {
		if len(p) < 2 || len(p) < 2+int(p[1]) {
			return errors.New("truncated operation")
		}
		op, name := p[0], p[2:2+int(p[1])]
		p = p[2+int(p[1]):]
		key, rest, err := uvarintBytes(p)
		if err != nil {
			return err
		}
		p = rest
		b := tx.Bucket(name)
		if b == nil {
			return fmt.Errorf("unknown bucket %q", name)
		}
		switch op {
		case opPut:
			var value []byte
			if value, p, err = uvarintBytes(p); err != nil {
				return err
			}
			if err := b.Put(key, value); err != nil {
				return fmt.Errorf("put %s: %w", name, err)
			}
		case opDelete:
			if err := b.Delete(key); err != nil {
				return fmt.Errorf("delete %s: %w", name, err)
			}
		default:
			return fmt.Errorf("unknown operation %d", op)
		}
	}
	return nil
}

func uvarintBytes(p []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return nil, nil, errors.New("truncated operation")
	}
	return p[k : k+int(n) : k+int(n)], p[k+int(n):], nil
}

func appendOp(frame []byte, op byte, bucket, key, value []byte) []byte {
	frame = append(frame, op, byte(len(bucket)))
	frame = append(frame, bucket...)
	frame = binary.AppendUvarint(frame, uint64(len(key)))
	frame = append(frame, key...)
	if op == opPut {
		frame = binary.AppendUvarint(frame, uint64(len(value)))
		frame = append(frame, value...)
	}
	return frame
}

// readApplied is the number of the last frame the checkpoint includes.
func readApplied(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketWAL).Get(appliedKey)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putApplied(tx *bolt.Tx, lsn uint64) error {
	return tx.Bucket(bucketWAL).Put(appliedKey, binary.BigEndian.AppendUint64(nil, lsn))
}

// wtx is what a write function sees: the committer's open transaction,
// whose puts and deletes are also recorded in the group's frame. Writes
// must go through it — a write made on the bbolt handles directly would
// be lost by a crash before the next checkpoint.
type wtx struct {
	tx      *bolt.Tx
	frame   []byte
	buckets [16]wbucket
}

// wbucket is a bucket of a wtx.
type wbucket struct {
	w    *wtx
	b    *bolt.Bucket
	name []byte
}

func (w *wtx) reset(tx *bolt.Tx) {
	w.tx = tx
	for i := range w.buckets {
		w.buckets[i] = wbucket{}
	}
}

// Bucket returns the named bucket, which must exist.
func (w *wtx) Bucket(name []byte) *wbucket {
	i := bucketIndex(name)
	if i < 0 || i >= len(w.buckets) {
		return &wbucket{w: w, b: w.tx.Bucket(name), name: name}
	}
	wb := &w.buckets[i]
	if wb.b == nil {
		*wb = wbucket{w: w, b: w.tx.Bucket(name), name: name}
	}
	return wb
}

func (w *wtx) bucket(name []byte) bucketReader { return w.Bucket(name) }

// bucketIndex finds a bucket among allBuckets, by identity first since
// callers pass the package's own names.
func bucketIndex(name []byte) int {
	if len(name) == 0 {
		return -1
	}
	for i, n := range allBuckets {
		if &n[0] == &name[0] {
			return i
		}
	}
	for i, n := range allBuckets {
		if bytes.Equal(n, name) {
			return i
		}
	}
	return -1
}

func (b *wbucket) Get(key []byte) []byte { return b.b.Get(key) }

// Cursor is for reading: deleting through it would bypass the log.
func (b *wbucket) Cursor() *bolt.Cursor { return b.b.Cursor() }

// Put stores value under key; bbolt keeps both slices until the
// checkpoint, so neither may change afterwards.
func (b *wbucket) Put(key, value []byte) error {
	if err := b.b.Put(key, value); err != nil {
		return err
	}
	b.w.frame = appendOp(b.w.frame, opPut, b.name, key, value)
	return nil
}

func (b *wbucket) Delete(key []byte) error {
	if err := b.b.Delete(key); err != nil {
		return err
	}
	b.w.frame = appendOp(b.w.frame, opDelete, b.name, key, nil)
	return nil
}

// bucketReader and reader are the reads that a bbolt view and the
// committer's transaction both offer, so that one read function serves
// either (see DB.read).
type bucketReader interface {
	Get(key []byte) []byte
	Cursor() *bolt.Cursor
}

type reader interface {
	bucket(name []byte) bucketReader
}

type viewTx struct{ tx *bolt.Tx }

func (v viewTx) bucket(name []byte) bucketReader { return v.tx.Bucket(name) }
