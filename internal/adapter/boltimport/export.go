package boltimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

const (
	// FileName is the engine's bbolt file inside the data directory.
	FileName = "agentry.db"
	// WALFileName is its redo log.
	WALFileName = "agentry.wal"
	// lockTimeout: the engine held an exclusive lock on its file while it
	// ran; a process still running on the directory is reported rather
	// than waited for.
	lockTimeout = 2 * time.Second
)

// Records receives what Export reads. Values handed to it are its own
// (copied out of the file).
type Records interface {
	Message(m gateway.StoredMessage, statuses []gateway.RecipientStatus) error
	Idempotency(rec gateway.IdempotencyRecord) error
	Inbox(recipient, messageID string, received time.Time) error
	Agent(a gateway.Agent) error
	Task(t gateway.Task, due time.Time) error
	DeadLetter(d gateway.DeadLetter) error
	Workflow(s workflow.State) error
	Schema(rec schema.Record) error
	// Damaged is told of each record (or log frame) that cannot be read,
	// which Export then passes over.
	Damaged(what string, key []byte, err error)
}

// Exists reports whether dir holds a data directory of the earlier engine.
func Exists(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, FileName))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("data dir %s: %w", dir, err)
}

// Export hands every record of the data directory dir to r: the bbolt
// file's, with the redo log's frames past its checkpoint applied (see the
// package doc). It stops at the first error r returns. It writes nothing.
func Export(dir string, r Records) error {
	path := filepath.Join(dir, FileName)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("open %s: locked by another process (an earlier agentry still running on this data directory?)", path)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		return readPages(path, func() error {
			v := newView(tx)
			if err := replay(filepath.Join(dir, WALFileName), applied(tx), v, r); err != nil {
				return err
			}
			return export(v, r)
		})
	})
	if cerr := bdb.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", path, cerr)
	}
	return err
}

// readPages runs fn, which walks the file's pages, turning bbolt's panics
// on a damaged tree (and faults on pages past the file's end) into an
// error naming the file.
func readPages(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("read %s: the file's pages are damaged (%v); it is left as it is", path, p)
		}
	}()
	return fn()
}

func export(v *view, r Records) error {
	steps := []func(*view, Records) error{
		exportAgents, exportSchemas, exportMessages, exportIdempotency, exportInbox,
		exportTasks, exportDeadLetters, exportWorkflows,
	}
	for _, step := range steps {
		if err := step(v, r); err != nil {
			return err
		}
	}
	return nil
}

func exportMessages(v *view, r Records) error {
	statuses := v.table(bucketStatuses)
	return v.table(bucketMessages).each(func(k, val []byte) error {
		m, err := decodeMessage(k, val)
		if err != nil {
			r.Damaged("message", k, err)
			return nil
		}
		var rs []gateway.RecipientStatus
		if sv := statuses.get(k); sv != nil {
			if rs, err = decodeStatuses(sv); err != nil {
				r.Damaged("statuses", k, err)
				rs = nil
			}
		}
		return r.Message(m, rs)
	})
}

func exportIdempotency(v *view, r Records) error {
	one := func(scope, val []byte) error {
		rec, err := decodeIdem(scope, val)
		if err != nil {
			r.Damaged("idempotency record", scope, err)
			return nil
		}
		return r.Idempotency(rec)
	}
	if err := v.table(bucketIdem).each(one); err != nil {
		return err
	}
	return v.table(bucketIdemLog).each(func(k, val []byte) error {
		if len(k) <= timeLen {
			r.Damaged("idempotency record", k, errCorrupt)
			return nil
		}
		return one(k[timeLen:], val)
	})
}

func exportInbox(v *view, r Records) error {
	return v.table(bucketInboxRef).each(func(k, val []byte) error {
		recipient, id, ok := bytes.Cut(k, []byte{0})
		if !ok || len(val) != timeLen {
			r.Damaged("inbox entry", k, errCorrupt)
			return nil
		}
		return r.Inbox(string(recipient), string(id), getTime(val))
	})
}

func exportTasks(v *view, r Records) error {
	return v.table(bucketTasks).each(func(k, val []byte) error {
		if len(val) < timeLen {
			r.Damaged("task", k, errCorrupt)
			return nil
		}
		t, err := decodeTask(k, val[timeLen:])
		if err != nil {
			r.Damaged("task", k, err)
			return nil
		}
		return r.Task(t, getTime(val[:timeLen]))
	})
}

// exportJSON walks a bucket of JSON values (the rare writes), handing
// each decoded value to put.
func exportJSON[T any](v *view, name []byte, what string, r Records, put func(T) error) error {
	return v.table(name).each(func(k, val []byte) error {
		var x T
		if err := json.Unmarshal(val, &x); err != nil {
			r.Damaged(what, k, err)
			return nil
		}
		return put(x)
	})
}

func exportAgents(v *view, r Records) error {
	return exportJSON(v, bucketAgents, "agent", r, r.Agent)
}

func exportSchemas(v *view, r Records) error {
	return exportJSON(v, bucketSchemas, "schema", r, r.Schema)
}

func exportDeadLetters(v *view, r Records) error {
	return exportJSON(v, bucketDeadLetters, "dead letter", r, r.DeadLetter)
}

func exportWorkflows(v *view, r Records) error {
	return exportJSON(v, bucketWorkflows, "workflow", r, r.Workflow)
}
