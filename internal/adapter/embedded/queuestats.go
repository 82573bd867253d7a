package embedded

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
// when there is none), for the Prometheus gauges. The due index is in
// due order, so its first key is the most overdue task.
func (db *DB) QueueStats(ctx context.Context) (depth int, oldestDue time.Time, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue stats: %w", err)
	}
	defer release()
	err = db.readLong(func(r reader) error {
		c := r.bucket(bucketDue).Cursor()
		k, _ := c.First()
		if k == nil {
			return nil
		}
		if len(k) < timeLen {
			return fmt.Errorf("due entry %q: corrupt key", k)
		}
		oldestDue = getTime(k)
		for ; k != nil && depth < StatsLimit; k, _ = c.Next() {
			depth++
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue stats: %w", err)
	}
	return depth, oldestDue, nil
}

// DeadLetterCount counts the dead-letter records, up to StatsLimit.
func (db *DB) DeadLetterCount(ctx context.Context) (int, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead letter count: %w", err)
	}
	defer release()
	n := 0
	err = db.readLong(func(r reader) error {
		c := r.bucket(bucketDeadLetters).Cursor()
		for k, _ := c.First(); k != nil && n < StatsLimit; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dead letter count: %w", err)
	}
	return n, nil
}

// CheckQueue reads the first entry of the due index: what /readyz's
// queue check asks, without counting the whole queue.
func (db *DB) CheckQueue(ctx context.Context) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("check queue: %w", err)
	}
	defer release()
	err = db.read(func(r reader) error {
		if k, _ := r.bucket(bucketDue).Cursor().First(); k != nil && len(k) < timeLen {
			return fmt.Errorf("due entry %q: corrupt key", k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check queue: %w", err)
	}
	return nil
}
