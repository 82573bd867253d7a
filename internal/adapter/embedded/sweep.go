package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// A tick examines at most sweepScan idempotency records and deletes at
// most sweepChunk×sweepChunks, each chunk in its own transaction, so that
// a large backlog never holds the writer for long.
const (
	sweepChunk  = 1000
	sweepChunks = 10
	sweepScan   = 100_000
	// moveChunk is the records moved from idem_log per write: each lands
	// on a page of its own in idem, and the checkpoints after moves of
	// 1,000 took accept's p99 to 16 ms in make bench.
	moveChunk = 128
)

func (db *DB) sweepLoop() {
	defer db.sweeping.Done()
	ticker := time.NewTicker(db.sweepInterval)
	defer ticker.Stop()
	for {
		var err error
		select {
		case <-db.done:
			return
		case <-ticker.C:
			err = db.sweepTick()
		case <-db.moveRecent:
			err = db.moveRecentRecords()
		}
		if err != nil && !errors.Is(err, gateway.ErrClosed) {
			slog.Warn("embedded: idempotency sweep failed", "err", err)
		}
	}
}

func (db *DB) sweepTick() error {
	if err := inChunks(db.sweepRecent); err != nil {
		return err
	}
	if err := db.moveRecentRecords(); err != nil {
		return err
	}
	if err := inChunks(db.sweepIndexed); err != nil {
		return err
	}
	_, err := db.sweepIdempotency(sweepScan, sweepChunk*sweepChunks)
	return err
}

// inChunks runs a deleting step of sweepChunk up to sweepChunks times,
// stopping once a step finds less than a full chunk.
func inChunks(step func(limit int) (int, error)) error {
	for range sweepChunks {
		n, err := step(sweepChunk)
		if err != nil || n < sweepChunk {
			return err
		}
	}
	return nil
}

// sweepIdempotency walks the idempotency records from where the previous
// walk stopped, examining at most scan of them, and deletes those older
// than the window, at most limit. The walk wraps around at the end of the
// bucket, so every record is examined once per pass; how long a pass takes
// bounds how long an expired record outstays its window. Records carry no
// time index (it cost a key per message on every accept): an expired
// record still in place only takes space, because Accept treats it as
// absent.
func (db *DB) sweepIdempotency(scan, limit int) (int, error) {
	release, err := db.enter(context.Background())
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency: %w", err)
	}
	defer release()
	// A record blocks while now < created_at + window, so it may go once
	// created_at ≤ now - window.
	cutoff := db.now().Add(-gateway.IdempotencyWindow)
	expired := func(k, v []byte) (bool, error) {
		rec, err := decodeIdem(k, v)
		if err != nil {
			return false, fmt.Errorf("corrupt idempotency record: %w", err)
		}
		return !rec.CreatedAt.After(cutoff), nil
	}
	var found [][]byte
	from, next := db.sweepFrom, []byte(nil)
	// A plain view, even with writes not yet checkpointed: those are too
	// recent to have expired, and every delete below checks its record
	// again. Through the committer (DB.read) this walk would hold up every
	// write for as long as it takes.
	err = db.bolt.View(func(tx *bolt.Tx) error {
		found = found[:0]
		c := tx.Bucket(bucketIdem).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for examined := 0; ; k, v = c.Next() {
			if k == nil {
				next = nil // the pass is complete
				return nil
			}
			if examined == scan || len(found) == limit {
				next = clone(k)
				return nil
			}
			examined++
			old, err := expired(k, v)
			if err != nil {
				return err
			}
			if old {
				found = append(found, clone(k))
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency: %w", err)
	}
	db.sweepFrom = next
	var n int
	for chunk := range slices.Chunk(found, sweepChunk) {
		var deleted int
		err := db.commit.do(func(tx *wtx) error {
			deleted = 0
			idem := tx.Bucket(bucketIdem)
			for _, k := range chunk {
				// Checked again: the key may hold a new record by now.
				v := idem.Get(k)
				if v == nil {
					continue
				}
				old, err := expired(k, v)
				if err != nil {
					return err
				}
				if old {
					if err := idem.Delete(k); err != nil {
						return err
					}
					deleted++
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("sweep idempotency: %w", err)
		}
		n += deleted
	}
	return n, nil
}

// sweepIndexed drains the time index of idempotency records that earlier
// versions wrote (idem_time), deleting up to limit entries older than the
// window together with their records; it is empty one window after an
// upgrade.
func (db *DB) sweepIndexed(limit int) (int, error) {
	release, err := db.enter(context.Background())
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency index: %w", err)
	}
	defer release()
	cutoff := db.now().Add(-gateway.IdempotencyWindow)
	var n int
	err = db.commit.do(func(tx *wtx) error {
		n = 0
		idem, index := tx.Bucket(bucketIdem), tx.Bucket(bucketIdemTime)
		// Collected first: deleting under a moving cursor can skip keys.
		var expired [][]byte
		c := index.Cursor()
		for k, _ := c.First(); k != nil && len(expired) < limit; k, _ = c.Next() {
			if len(k) > timeLen && getTime(k).After(cutoff) {
				break
			}
			expired = append(expired, clone(k))
		}
		for _, k := range expired {
			if len(k) > timeLen {
				if err := dropIdemRecord(idem, k[timeLen:], k[:timeLen]); err != nil {
					return err
				}
			}
			if err := index.Delete(k); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency index: %w", err)
	}
	return n, nil
}

// dropIdemRecord deletes the record under key if it is the one created at
// the indexed time; a newer record under the same key is left alone.
func dropIdemRecord(idem *wbucket, key, created []byte) error {
	v := idem.Get(key)
	if v == nil {
		return nil
	}
	rec, err := decodeIdem(key, v)
	if err != nil {
		return fmt.Errorf("corrupt idempotency record: %w", err)
	}
	if !bytes.Equal(putTime(nil, rec.CreatedAt), created) {
		return nil
	}
	return idem.Delete(key)
}

// sweepRecent deletes up to limit records from the start of idem_log (the
// oldest) that are older than the window.
func (db *DB) sweepRecent(limit int) (int, error) {
	release, err := db.enter(context.Background())
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency log: %w", err)
	}
	defer release()
	cutoff := putTime(nil, db.now().Add(-gateway.IdempotencyWindow))
	var n int
	err = db.commit.do(func(tx *wtx) error {
		n = 0
		log := tx.Bucket(bucketIdemLog)
		// Collected first: deleting under a moving cursor can skip keys.
		var expired [][]byte
		c := log.Cursor()
		for k, _ := c.First(); k != nil && len(expired) < limit; k, _ = c.Next() {
			if len(k) < timeLen || bytes.Compare(k[:timeLen], cutoff) > 0 {
				break
			}
			expired = append(expired, clone(k))
		}
		for _, k := range expired {
			if err := log.Delete(k); err != nil {
				return err
			}
			db.recent.remove(k)
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency log: %w", err)
	}
	return n, nil
}

// moveRecentRecords moves the oldest records of idem_log to the idem
// bucket, moveChunk per write, until the log holds at most maxRecent;
// expired records are dropped instead. Each Accept past the bound calls
// for a move, so that moves keep pace with accepts in small writes: with
// a slack of an eighth of the bound, moves came in bursts whose
// checkpoints took accept's p99 from 7.4 to 13 ms in make bench (at a
// bound of 20,000); moving at once kept it at 7.4–7.7 ms, what the idem
// bucket alone gave.
func (db *DB) moveRecentRecords() error {
	release, err := db.enter(context.Background())
	if err != nil {
		return fmt.Errorf("move idempotency records: %w", err)
	}
	defer release()
	cutoff := putTime(nil, db.now().Add(-gateway.IdempotencyWindow))
	for more := true; more; {
		select {
		case <-db.done:
			return nil // Close need not wait for the whole move
		default:
		}
		err := db.commit.do(func(tx *wtx) error {
			more = false
			excess := db.recent.len() - db.maxRecent
			if excess <= 0 {
				return nil
			}
			log, idem := tx.Bucket(bucketIdemLog), tx.Bucket(bucketIdem)
			type record struct{ k, v []byte }
			var oldest []record
			c := log.Cursor()
			for k, v := c.First(); k != nil && len(oldest) < min(excess, moveChunk); k, v = c.Next() {
				oldest = append(oldest, record{clone(k), clone(v)})
			}
			for _, r := range oldest {
				if len(r.k) > timeLen && bytes.Compare(r.k[:timeLen], cutoff) > 0 {
					if err := idem.Put(r.k[timeLen:], r.v); err != nil {
						return err
					}
				}
				if err := log.Delete(r.k); err != nil {
					return err
				}
				db.recent.remove(r.k)
			}
			more = len(oldest) > 0 && excess > len(oldest)
			return nil
		})
		if err != nil {
			return fmt.Errorf("move idempotency records: %w", err)
		}
	}
	return nil
}
