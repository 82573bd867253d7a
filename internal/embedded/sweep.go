package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/gateway"
)

// A tick deletes at most sweepChunk×sweepChunks records, each chunk in its
// own transaction, so that a large backlog never holds the writer for long.
const (
	sweepChunk  = 1000
	sweepChunks = 10
)

func (db *DB) sweepLoop() {
	defer db.sweeping.Done()
	ticker := time.NewTicker(db.sweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-db.done:
			return
		case <-ticker.C:
		}
		for range sweepChunks {
			n, err := db.sweepIdempotency(sweepChunk)
			if err != nil {
				if !errors.Is(err, gateway.ErrClosed) {
					slog.Warn("embedded: idempotency sweep failed", "err", err)
				}
				break
			}
			if n < sweepChunk {
				break
			}
		}
	}
}

// sweepIdempotency deletes up to limit idempotency records older than the
// window, together with their index entries, and nothing else.
func (db *DB) sweepIdempotency(limit int) (int, error) {
	release, err := db.enter(context.Background())
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency: %w", err)
	}
	defer release()
	// A record blocks while now < created_at + window, so it may go once
	// created_at ≤ now - window.
	cutoff := db.now().Add(-gateway.IdempotencyWindow)
	var n int
	err = db.bolt.Update(func(tx *bolt.Tx) error {
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
		return 0, fmt.Errorf("sweep idempotency: %w", err)
	}
	return n, nil
}

// dropIdemRecord deletes the record under key if it is the one created at
// the indexed time; a newer record under the same key is left alone.
func dropIdemRecord(idem *bolt.Bucket, key, created []byte) error {
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
