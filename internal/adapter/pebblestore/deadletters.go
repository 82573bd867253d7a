package pebblestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// cursorDead is the cursor kind of the dead-letter listing.
const cursorDead byte = 'x'

// deadScanFactor bounds the records one listing page reads while filters
// skip them, as a multiple of the page size: a selective filter returns a
// short page with a cursor instead of reading every record.
const deadScanFactor = 10

var _ gateway.DeadLetterStore = (*DB)(nil)

// deadKey is the key DeadLetter writes a record under.
func deadKey(at time.Time, taskID string) []byte {
	return appendTaskID(putTime(key(tDead, timeLen+len(taskID)+20), at), taskID)
}

// ListDeadLetters pages through the dead letters, oldest first
// (gateway.DeadLetterStore).
func (db *DB) ListDeadLetters(ctx context.Context, q gateway.DeadLetterQuery) (out []gateway.DeadLetter, next string, err error) {
	limit := pageLimit(q.Limit)
	lower, upper, err := deadRange(q)
	if err != nil {
		return nil, "", err
	}
	release, err := db.enter(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list dead letters: %w", err)
	}
	defer release()
	it, err := db.iter(lower, upper)
	if err != nil {
		return nil, "", fmt.Errorf("list dead letters: %w", err)
	}
	defer closeIter(it, &err)
	var last []byte
	scanned := 0
	for ok := it.First(); ok; ok = it.Next() {
		if len(out) == limit || scanned == limit*deadScanFactor {
			return out, encodeCursor(cursorDead, last), nil
		}
		scanned++
		last = append(last[:0], it.Key()...)
		v, verr := it.ValueAndErr()
		if verr != nil {
			return nil, "", fmt.Errorf("list dead letters: %w", verr)
		}
		var d gateway.DeadLetter
		if jerr := json.Unmarshal(v, &d); jerr != nil {
			db.corrupt("dead letter", it.Key(), jerr)
			continue
		}
		if q.Matches(d) {
			out = append(out, d.WithID())
		}
	}
	return out, "", it.Error()
}

// deadRange is the key range of the records q selects by time, starting
// after its cursor's position.
func deadRange(q gateway.DeadLetterQuery) (lower, upper []byte, err error) {
	lower, upper = []byte{tDead}, []byte{tDead + 1}
	if !q.Since.IsZero() {
		lower = putTime(key(tDead, timeLen), q.Since)
	}
	if !q.Until.IsZero() {
		upper = putTime(key(tDead, timeLen), q.Until)
	}
	if q.Cursor != "" {
		pos, err := decodeCursor(cursorDead, q.Cursor, timeLen)
		if err != nil || pos[0] != tDead {
			return nil, nil, fmt.Errorf("list dead letters: cursor: %w", ErrBadCursor)
		}
		// The smallest key after pos is pos and a zero byte.
		if after := append(pos, 0); bytes.Compare(after, lower) > 0 {
			lower = after
		}
	}
	return lower, upper, nil
}

// GetDeadLetter returns the record id names (gateway.DeadLetterStore).
func (db *DB) GetDeadLetter(ctx context.Context, id string) (gateway.DeadLetter, error) {
	at, taskID, err := gateway.ParseDeadLetterID(id)
	if err != nil {
		return gateway.DeadLetter{}, err
	}
	release, err := db.enter(ctx)
	if err != nil {
		return gateway.DeadLetter{}, fmt.Errorf("get dead letter: %w", err)
	}
	defer release()
	k := deadKey(at, taskID)
	v, err := db.get(k)
	if err != nil {
		return gateway.DeadLetter{}, fmt.Errorf("get dead letter %s: %w", taskID, err)
	}
	var d gateway.DeadLetter
	if err := json.Unmarshal(v, &d); err != nil {
		db.corrupt("dead letter", k, err)
		return gateway.DeadLetter{}, fmt.Errorf("get dead letter %s: %w", taskID, errCorrupt)
	}
	return d.WithID(), nil
}

// RemoveDeadLetter deletes the record id names (gateway.DeadLetterStore).
func (db *DB) RemoveDeadLetter(ctx context.Context, id string) error {
	at, taskID, err := gateway.ParseDeadLetterID(id)
	if err != nil {
		return err
	}
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("remove dead letter: %w", err)
	}
	defer release()
	unlock := db.lock("x" + id)
	defer unlock()
	k := deadKey(at, taskID)
	found, err := db.has(k)
	if err != nil {
		return fmt.Errorf("remove dead letter %s: %w", taskID, err)
	}
	if !found {
		return fmt.Errorf("remove dead letter %s: %w", taskID, gateway.ErrNotFound)
	}
	b := db.pdb.NewBatch()
	if err := b.Delete(k, nil); err != nil {
		b.Close()
		return fmt.Errorf("remove dead letter %s: %w", taskID, err)
	}
	if err := db.commit(b); err != nil {
		return fmt.Errorf("remove dead letter %s: %w", taskID, err)
	}
	return nil
}
