package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Records receives what Export reads from a data directory of this format.
// Values handed to it are its own (copied out of the file).
type Records interface {
	Message(m gateway.StoredMessage, statuses []gateway.RecipientStatus) error
	Idempotency(rec gateway.IdempotencyRecord) error
	Inbox(recipient, messageID string, received time.Time) error
	Agent(a gateway.Agent) error
	Task(t gateway.Task, due time.Time) error
	DeadLetter(d gateway.DeadLetter) error
	Workflow(s workflow.State) error
	Schema(rec schema.Record) error
	// Damaged is told of each record that cannot be decoded, which Export
	// then passes over.
	Damaged(what string, key []byte, err error)
}

// Export opens the data directory (recovering the redo log, as Open does),
// hands every record to r and closes it. It is what the store that
// replaces this one reads a data directory of this format with.
func Export(dir string, r Records) error {
	db, err := Open(Options{Dir: dir})
	if err != nil {
		return err
	}
	err = db.bolt.View(func(tx *bolt.Tx) error { return export(tx, r) })
	if cerr := db.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func export(tx *bolt.Tx, r Records) error {
	steps := []func(*bolt.Tx, Records) error{
		exportAgents, exportSchemas, exportMessages, exportIdempotency, exportInbox,
		exportTasks, exportDeadLetters, exportWorkflows,
	}
	for _, step := range steps {
		if err := step(tx, r); err != nil {
			return err
		}
	}
	return nil
}

// each walks a bucket, stopping at the first error fn returns.
func each(tx *bolt.Tx, name []byte, fn func(k, v []byte) error) error {
	return tx.Bucket(name).ForEach(fn)
}

func exportMessages(tx *bolt.Tx, r Records) error {
	statuses := tx.Bucket(bucketStatuses)
	return each(tx, bucketMessages, func(k, v []byte) error {
		meta, raw, err := decodeMessage(v)
		if err != nil {
			r.Damaged("message", k, err)
			return nil
		}
		var rs []gateway.RecipientStatus
		if sv := statuses.Get(k); sv != nil {
			if rs, err = decodeStatuses(sv); err != nil {
				r.Damaged("statuses", k, err)
				rs = nil
			}
		}
		return r.Message(gateway.StoredMessage{
			ID: string(k), Raw: clone(raw), Sender: meta.Sender, Recipients: meta.Recipients,
			Subject: meta.Subject, Origin: meta.Origin, AcceptedAt: meta.AcceptedAt, Verification: meta.Verification,
		}, rs)
	})
}

func exportIdempotency(tx *bolt.Tx, r Records) error {
	one := func(scope, v []byte) error {
		rec, err := decodeIdem(scope, v)
		if err != nil {
			r.Damaged("idempotency record", scope, err)
			return nil
		}
		return r.Idempotency(rec)
	}
	if err := each(tx, bucketIdem, one); err != nil {
		return err
	}
	return each(tx, bucketIdemLog, func(k, v []byte) error {
		if len(k) <= timeLen {
			r.Damaged("idempotency record", k, errCorrupt)
			return nil
		}
		return one(k[timeLen:], v)
	})
}

func exportInbox(tx *bolt.Tx, r Records) error {
	return each(tx, bucketInboxRef, func(k, v []byte) error {
		recipient, id, ok := bytes.Cut(k, []byte{0})
		if !ok || len(v) != timeLen {
			r.Damaged("inbox entry", k, errCorrupt)
			return nil
		}
		return r.Inbox(string(recipient), string(id), getTime(v))
	})
}

func exportAgents(tx *bolt.Tx, r Records) error {
	return each(tx, bucketAgents, func(k, v []byte) error {
		var a gateway.Agent
		if err := json.Unmarshal(v, &a); err != nil {
			r.Damaged("agent", k, err)
			return nil
		}
		return r.Agent(a)
	})
}

func exportSchemas(tx *bolt.Tx, r Records) error {
	return each(tx, bucketSchemas, func(k, v []byte) error {
		var rec schema.Record
		if err := json.Unmarshal(v, &rec); err != nil {
			r.Damaged("schema", k, err)
			return nil
		}
		return r.Schema(rec)
	})
}

func exportTasks(tx *bolt.Tx, r Records) error {
	return each(tx, bucketTasks, func(k, v []byte) error {
		if len(v) < timeLen {
			r.Damaged("task", k, errCorrupt)
			return nil
		}
		t, err := decodeTask(k, v[timeLen:])
		if err != nil {
			r.Damaged("task", k, err)
			return nil
		}
		return r.Task(t, getTime(v[:timeLen]))
	})
}

func exportDeadLetters(tx *bolt.Tx, r Records) error {
	return each(tx, bucketDeadLetters, func(k, v []byte) error {
		var d gateway.DeadLetter
		if err := json.Unmarshal(v, &d); err != nil {
			r.Damaged("dead letter", k, err)
			return nil
		}
		return r.DeadLetter(d)
	})
}

func exportWorkflows(tx *bolt.Tx, r Records) error {
	return each(tx, bucketWorkflows, func(k, v []byte) error {
		var s workflow.State
		if err := json.Unmarshal(v, &s); err != nil {
			r.Damaged("workflow", k, err)
			return nil
		}
		return r.Workflow(s)
	})
}

// Exists reports whether dir holds a data directory of this format.
func Exists(dir string) (bool, error) {
	_, err := statFile(dir, FileName)
	if err == nil {
		return true, nil
	}
	if isNotExist(err) {
		return false, nil
	}
	return false, fmt.Errorf("data dir %s: %w", dir, err)
}

func statFile(dir, name string) (os.FileInfo, error) { return os.Stat(filepath.Join(dir, name)) }

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
