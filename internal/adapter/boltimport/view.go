package boltimport

import (
	"bytes"
	"encoding/binary"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The buckets Export reads.
var (
	bucketMessages    = []byte("messages")
	bucketStatuses    = []byte("statuses")
	bucketIdem        = []byte("idem")
	bucketIdemLog     = []byte("idem_log")
	bucketInboxRef    = []byte("inbox_ref")
	bucketAgents      = []byte("agents")
	bucketTasks       = []byte("tasks")
	bucketDeadLetters = []byte("dead_letters")
	bucketWorkflows   = []byte("workflows")
	bucketSchemas     = []byte("schemas")
	bucketWAL         = []byte("wal")
	appliedKey        = []byte("applied")

	exported = [][]byte{
		bucketMessages, bucketStatuses, bucketIdem, bucketIdemLog, bucketInboxRef, bucketAgents,
		bucketTasks, bucketDeadLetters, bucketWorkflows, bucketSchemas,
	}
	// indexes are the engine's other buckets: log frames write to them,
	// and Export has no use for what they hold.
	indexes = []string{"msg_time", "idem_time", "inbox", "agent_keys", "due", "wal"}
)

// view is the file's buckets with the log's frames past the checkpoint
// applied over them, in memory.
type view struct {
	tables map[string]*table
}

// table is one bucket: the file's records (b, nil when the file has no
// such bucket) under the changes the log made.
type table struct {
	b       *bolt.Bucket
	changes map[string]change
}

// change is a put of value, or a deletion.
type change struct {
	value   []byte
	deleted bool
}

func newView(tx *bolt.Tx) *view {
	v := &view{tables: make(map[string]*table, len(exported))}
	for _, name := range exported {
		v.tables[string(name)] = &table{b: tx.Bucket(name), changes: map[string]change{}}
	}
	return v
}

// applied is the number of the last log frame the file holds (0 when the
// file records none).
func applied(tx *bolt.Tx) uint64 {
	b := tx.Bucket(bucketWAL)
	if b == nil {
		return 0
	}
	v := b.Get(appliedKey)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (v *view) table(name []byte) *table { return v.tables[string(name)] }

// known reports whether the engine had a bucket of that name.
func known(name []byte) bool {
	return slices.ContainsFunc(exported, func(b []byte) bool { return bytes.Equal(b, name) }) ||
		slices.Contains(indexes, string(name))
}

// apply records a frame's operation; those on indexes are dropped. The
// slices are kept, so they must not change afterwards.
func (v *view) apply(o op) {
	t := v.table(o.bucket)
	if t == nil {
		return
	}
	t.changes[string(o.key)] = change{value: o.value, deleted: o.kind == opDelete}
}

// get returns key's value, or nil.
func (t *table) get(key []byte) []byte {
	if c, ok := t.changes[string(key)]; ok {
		if c.deleted {
			return nil
		}
		return c.value
	}
	if t.b == nil {
		return nil
	}
	return t.b.Get(key)
}

// each calls fn for every record in key order, as the engine's own walk
// after recovery did, and stops at the first error fn returns. Values
// from the file are valid only during the call.
func (t *table) each(fn func(k, v []byte) error) error {
	keys := make([]string, 0, len(t.changes))
	for k := range t.changes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var c *bolt.Cursor
	var k, val []byte
	if t.b != nil {
		c = t.b.Cursor()
		k, val = c.First()
	}
	for k != nil || len(keys) > 0 {
		if k != nil && (len(keys) == 0 || bytes.Compare(k, []byte(keys[0])) < 0) {
			if err := fn(k, val); err != nil {
				return err
			}
			k, val = c.Next()
			continue
		}
		if k != nil && string(k) == keys[0] {
			k, val = c.Next() // replaced or deleted by the log
		}
		ch := t.changes[keys[0]]
		key := []byte(keys[0])
		keys = keys[1:]
		if ch.deleted {
			continue
		}
		if err := fn(key, ch.value); err != nil {
			return err
		}
	}
	return nil
}
