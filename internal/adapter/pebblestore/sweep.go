package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// A sweep tick examines at most sweepScan idempotency records, resuming
// where the last one stopped (and wrapping around at the end), and deletes
// at most sweepChunk expired ones per commit.
const (
	sweepScan  = 100_000
	sweepChunk = 1000
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
			if _, err := db.sweepIdempotency(sweepScan); err != nil && !errors.Is(err, gateway.ErrClosed) {
				slog.Warn("store: idempotency sweep failed", "err", err)
			}
		}
	}
}

// sweepIdempotency walks up to scan idempotency records from where the
// previous walk stopped and deletes those older than the window. It
// returns how many it deleted.
func (db *DB) sweepIdempotency(scan int) (int, error) {
	release, err := db.enter(context.Background())
	if err != nil {
		return 0, err
	}
	defer release()
	cutoff := db.now().Add(-gateway.IdempotencyWindow)
	lower := db.sweepFrom
	if lower == nil {
		lower = []byte{tIdem}
	}
	var expired [][]byte
	it, err := db.iter(lower, []byte{tIdem + 1})
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	n := 0
	ok := it.First()
	for ; ok && n < scan; ok = it.Next() {
		n++
		v, verr := it.ValueAndErr()
		if verr != nil {
			err = verr
			break
		}
		rec, derr := decodeIdem(it.Key(), v)
		if derr == nil && rec.CreatedAt.Before(cutoff) {
			expired = append(expired, bytes.Clone(it.Key()))
		}
	}
	if ok {
		db.sweepFrom = bytes.Clone(it.Key())
	} else {
		db.sweepFrom = nil
	}
	if err == nil {
		err = it.Error()
	}
	closeIter(it, &err)
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	deleted := 0
	for len(expired) > 0 {
		chunk := expired[:min(sweepChunk, len(expired))]
		expired = expired[len(chunk):]
		d, err := db.deleteExpired(chunk, cutoff)
		deleted += d
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// deleteExpired deletes the records at keys that are still expired: an
// Accept may have reused a scope since the walk saw it.
func (db *DB) deleteExpired(keys [][]byte, cutoff time.Time) (int, error) {
	locks := make([]string, len(keys))
	for i, k := range keys {
		locks[i] = "i" + string(k)
	}
	unlock := db.lock(locks...)
	defer unlock()
	b := db.pdb.NewBatch()
	n := 0
	for _, k := range keys {
		v, err := db.get(k)
		if errors.Is(err, gateway.ErrNotFound) {
			continue
		}
		if err != nil {
			b.Close()
			return 0, fmt.Errorf("sweep: %w", err)
		}
		if rec, err := decodeIdem(k, v); err == nil && rec.CreatedAt.Before(cutoff) {
			_ = b.Delete(k, nil)
			n++
		}
	}
	if err := db.commit(b); err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	return n, nil
}
