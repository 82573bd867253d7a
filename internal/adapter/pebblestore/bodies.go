package pebblestore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// A message body of largeBody bytes or more is kept in a file of its own
// beside Pebble's, in <store>/bodies, and its message value holds the
// body's size and SHA-256 instead of the body. The file is written and
// synced (file and directory) before the batch that refers to it commits,
// and never changed after: a committed message always finds its body, and
// a backup hard-links the files.
//
// Why not in Pebble: a value larger than half a memtable becomes a
// "flushable batch" that is written into a table at once, and that flush
// copies it several times in Go heap (the compaction iterator's saved
// value, the block builder, the encoded block, the compression buffer);
// a 10 MiB message then held four to six times its size in live heap,
// where the hardening issue's target is three (make bench, "large message
// live heap"). Pebble's own value separation (blob files) goes through the
// same flush and did not change the figure. In a file the body is written
// once, from the request's bytes, and read once.
const largeBody = 128 << 10

// bodiesDir is the directory of the body files inside the store's.
const bodiesDir = "bodies"

// codecBodyFile is the first byte of a message value whose body is in a
// file: the message's meta as in codecV1, then the body's size (uvarint)
// and SHA-256.
const codecBodyFile = 2

// bodyRef is what a message value holds of a body kept in a file.
type bodyRef struct {
	size uint64
	sum  [sha256.Size]byte
}

// storedBody is a decoded message value's body: inline, or in a file.
type storedBody struct {
	inline []byte
	file   *bodyRef
}

// errBodyDamaged is a body file that is missing, short or altered.
var errBodyDamaged = fmt.Errorf("message body file: %w", errCorrupt)

// bodyFileName names the body file of a message key: the key's id in hex,
// which holds only file-name-safe characters whatever the id's spelling.
func bodyFileName(messageKey []byte) string { return hex.EncodeToString(messageKey[1:]) }

func (db *DB) bodyPath(messageKey []byte) string {
	return filepath.Join(db.dir, bodiesDir, bodyFileName(messageKey))
}

// writeBody puts raw in the body file of messageKey and syncs it and its
// directory, and returns the reference the message value keeps.
func (db *DB) writeBody(messageKey, raw []byte) (*bodyRef, error) {
	dir := filepath.Join(db.dir, bodiesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("body file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("body file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, db.bodyPath(messageKey))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("body file: %w", err)
	}
	return &bodyRef{size: uint64(len(raw)), sum: sha256.Sum256(raw)}, nil
}

// removeBody deletes the body file of a message whose batch did not commit.
func (db *DB) removeBody(messageKey []byte) { _ = os.Remove(db.bodyPath(messageKey)) }

// readBody returns a message's body: the inline bytes, or the file's
// contents once its size and SHA-256 match the reference.
func (db *DB) readBody(messageKey []byte, b storedBody) ([]byte, error) {
	if b.file == nil {
		return b.inline, nil
	}
	return readBodyFile(db.bodyPath(messageKey), b.file)
}

func readBodyFile(path string, ref *bodyRef) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: missing", errBodyDamaged)
	}
	if err != nil {
		return nil, fmt.Errorf("message body file: %w", err)
	}
	defer f.Close()
	// One byte more than the reference says, so that a longer file is
	// told from the right one without reading all of it.
	raw := make([]byte, ref.size+1)
	n, err := io.ReadFull(f, raw)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("message body file: %w", err)
	}
	raw = raw[:n]
	if uint64(n) != ref.size || sha256.Sum256(raw) != ref.sum {
		return nil, fmt.Errorf("%w: size or checksum differs", errBodyDamaged)
	}
	return raw, nil
}

// appendBodyRef ends a message value whose meta (encodeMeta) is in meta.
func appendBodyRef(meta []byte, ref *bodyRef) []byte {
	meta[0] = codecBodyFile
	meta = binary.AppendUvarint(meta, ref.size)
	return append(meta, ref.sum[:]...)
}

// decodeBodyRef reads what appendBodyRef appended.
func decodeBodyRef(b []byte) (*bodyRef, error) {
	size, n := binary.Uvarint(b)
	if n <= 0 || len(b)-n != sha256.Size {
		return nil, errCorrupt
	}
	ref := &bodyRef{size: size}
	copy(ref.sum[:], b[n:])
	return ref, nil
}

// sweepBodies removes body files no message refers to: a body whose batch
// never committed (a crash between the two), and temporary files. It runs
// at open, before any write.
func (db *DB) sweepBodies() error {
	dir := filepath.Join(db.dir, bodiesDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("body files: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, ".tmp-") {
			k, err := hex.DecodeString(name)
			if err != nil {
				continue // not ours: left alone
			}
			if ok, err := db.has(append([]byte{tMessage}, k...)); err != nil || ok {
				if err != nil {
					return fmt.Errorf("body files: %w", err)
				}
				continue
			}
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("body files: %w", err)
		}
	}
	return nil
}

// backupBodies hard-links (or, across file systems, copies) every body
// file into the backup dest. Bodies are never changed once written, and
// each one a committed message refers to was synced before its commit, so
// the files present after the checkpoint cover every message in it.
func (db *DB) backupBodies(dest string) error {
	src := filepath.Join(db.dir, bodiesDir)
	entries, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	to := filepath.Join(dest, bodiesDir)
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		from, target := filepath.Join(src, e.Name()), filepath.Join(to, e.Name())
		if err := os.Link(from, target); err != nil {
			if err := copyFile(from, target); err != nil {
				return err
			}
		}
	}
	return syncDir(to)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
