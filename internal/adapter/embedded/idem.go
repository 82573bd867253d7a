package embedded

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"

	bolt "go.etcd.io/bbolt"
)

// Idempotency records are written to idem_log, keyed by their creation
// time and scope (time(created_at) + lower(sender) + 0x00 + key), so that
// accepts append to it. Keyed by scope alone, as the idem bucket is, each
// accept inserted at a random place (keys are random, as UUIDv4 keys
// are) and dirtied a page of its own that the next checkpoint had to
// write. Written in time order, checkpoints write 0.6 pages per accepted
// message instead of 1.9, and accept went from 0.42–0.44 to 0.51–0.54 ×
// the floor in make bench (docs/performance.md, session 8).
//
// A key in time order cannot be found from the scope alone, so
// recentIndex maps every scope in idem_log to its record's time: by a
// keyed hash of the scope, and, for the rare scope whose hash was already
// taken by another scope's record when it was stored, by the scope
// itself (clash). That costs memory for every record in the log (26 to
// 36 bytes, measured), so the log is bounded (DB.maxRecent): beyond it
// the oldest records move to the idem bucket, where lookups also look and
// where earlier versions wrote every record.
//
// The index is only touched by the committer's goroutine (or before it
// starts): it mirrors the committer's open transaction, including writes
// not yet answered, and is rebuilt from that transaction whenever the
// committer rebuilds it.
type recentIndex struct {
	seed   maphash.Seed
	hash   func(maphash.Seed, []byte) uint64
	byHash map[uint64]uint64
	clash  map[string]uint64
}

func newRecentIndex() *recentIndex {
	return &recentIndex{
		seed: maphash.MakeSeed(), hash: maphash.Bytes,
		byHash: make(map[uint64]uint64), clash: make(map[string]uint64),
	}
}

// A stamp is a record's creation time as putTime encodes it: idem_log's
// key is the stamp's 8 bytes followed by the scope.
func stampOf(logKey []byte) uint64 { return binary.BigEndian.Uint64(logKey) }

func logKey(stamp uint64, scope []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, timeLen+len(scope)), stamp), scope...)
}

// len is the number of records in idem_log.
func (x *recentIndex) len() int { return len(x.byHash) + len(x.clash) }

// find returns the key and value of scope's record in log (idem_log),
// or nils.
func (x *recentIndex) find(log bucketReader, scope []byte) (key, value []byte) {
	stamp, ok := x.clash[string(scope)]
	if !ok {
		if stamp, ok = x.byHash[x.hash(x.seed, scope)]; !ok {
			return nil, nil
		}
	}
	// Under a hash it may be another scope's record: then this scope has
	// none, or it would be in clash.
	key = logKey(stamp, scope)
	if v := log.Get(key); v != nil {
		return key, v
	}
	return nil, nil
}

// add records that idem_log now holds a record under key. Its scope has
// no other record there (Accept deletes an expired one first, and build
// starts empty), so a hash already held is another scope's.
func (x *recentIndex) add(key []byte) {
	stamp, scope := stampOf(key), key[timeLen:]
	h := x.hash(x.seed, scope)
	if _, held := x.byHash[h]; held {
		x.clash[string(scope)] = stamp
		return
	}
	x.byHash[h] = stamp
}

// remove records that the record under key left log.
func (x *recentIndex) remove(key []byte) {
	if len(key) < timeLen {
		return // never indexed (see build)
	}
	stamp, scope := stampOf(key), key[timeLen:]
	if held, ok := x.clash[string(scope)]; ok {
		if held == stamp {
			delete(x.clash, string(scope))
		}
		return
	}
	h := x.hash(x.seed, scope)
	if x.byHash[h] == stamp {
		delete(x.byHash, h)
	}
}

// build indexes every record in tx's idem_log, forgetting what it held.
func (x *recentIndex) build(tx *bolt.Tx) {
	clear(x.byHash)
	clear(x.clash)
	c := tx.Bucket(bucketIdemLog).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) > timeLen && bytes.IndexByte(k[timeLen:], 0) >= 0 {
			x.add(k)
		}
	}
}
