package pebblestore

import (
	"context"
	"fmt"
	"time"
)

// StatsLimit bounds what QueueStats and DeadLetterCount count: a scrape
// walks the keys, and a queue this deep reads as StatsLimit.
const StatsLimit = 1_000_000

// QueueStats counts the stored tasks (due, leased or waiting for a retry)
// up to StatsLimit and returns the earliest due time among them (zero
// when there is none), for the Prometheus gauges. Queue keys are in due
// order, so the first is the most overdue task.
func (db *DB) QueueStats(ctx context.Context) (depth int, oldestDue time.Time, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue stats: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tQueue}, []byte{tQueue + 1})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue stats: %w", err)
	}
	defer closeIter(it, &err)
	ok := it.First()
	if ok {
		k := it.Key()
		if len(k) < 1+timeLen {
			return 0, time.Time{}, fmt.Errorf("queue stats: queue entry %q: %w", k, errBadKey)
		}
		oldestDue = getTime(k[1:])
	}
	for ; ok && depth < StatsLimit; ok = it.Next() {
		depth++
	}
	if err := it.Error(); err != nil {
		return 0, time.Time{}, fmt.Errorf("queue stats: %w", err)
	}
	return depth, oldestDue, nil
}

// DeadLetterCount counts the dead-letter records, up to StatsLimit.
func (db *DB) DeadLetterCount(ctx context.Context) (n int, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead letter count: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tDead}, []byte{tDead + 1})
	if err != nil {
		return 0, fmt.Errorf("dead letter count: %w", err)
	}
	defer closeIter(it, &err)
	for ok := it.First(); ok && n < StatsLimit; ok = it.Next() {
		n++
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("dead letter count: %w", err)
	}
	return n, nil
}

// CheckQueue reads the first queue entry: what /readyz's queue check
// asks, without counting the whole queue.
func (db *DB) CheckQueue(ctx context.Context) (err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("check queue: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tQueue}, []byte{tQueue + 1})
	if err != nil {
		return fmt.Errorf("check queue: %w", err)
	}
	defer closeIter(it, &err)
	if it.First() && len(it.Key()) < 1+timeLen {
		return fmt.Errorf("check queue: queue entry %q: %w", it.Key(), errBadKey)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("check queue: %w", err)
	}
	return nil
}
