package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Backup writes a consistent copy of the open store to dest, which must not
// exist yet: a Pebble checkpoint (hard links to the immutable tables, a
// copy of the log, synced first), taken while the store keeps serving.
// Every write answered before Backup was called is in it, and the body
// files of large messages (bodies.go) beside it. To restore, stop
// the gateway and put dest in place of <data dir>/store (StoreDir).
func (db *DB) Backup(ctx context.Context, dest string) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer release()
	if err := db.pdb.Checkpoint(dest, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	if err := db.backupBodies(dest); err != nil {
		return fmt.Errorf("backup to %s: message bodies: %w", dest, err)
	}
	return nil
}

// CheckReport is what Check found.
type CheckReport struct {
	// Records counts the readable records by table.
	Records map[string]int
	// Damaged lists records that could not be decoded (at most
	// maxDamagedListed); DamagedCount counts them all.
	Damaged      []string
	DamagedCount int
}

// tableNames names the tables in reports.
var tableNames = map[byte]string{
	tMessage: "messages", tStatus: "statuses", tMsgTime: "message index", tIdem: "idempotency",
	tInbox: "inbox", tInboxRef: "inbox index", tAgent: "agents", tAgentKey: "agent keys",
	tQueue: "tasks", tTaskDue: "task index", tDead: "dead letters", tWorkflow: "workflows",
	tSchema: "schemas", tMeta: "meta", tWebhook: "webhooks",
}

// ErrDamaged is returned (wrapped) by Check when the store holds damaged
// records.
var ErrDamaged = errors.New("store holds damaged records")

// Check opens the store of the data directory dataDir read-only, with the
// gateway stopped, and reads every record: Pebble verifies the checksum of
// every block and log record it reads, and each record is decoded. It
// returns an error naming the damaged file when Pebble cannot open or read
// the store (a damaged log or table), and ErrDamaged with the report when
// individual records cannot be decoded.
func Check(dataDir string) (*CheckReport, error) {
	dir := storePath(dataDir)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("check %s: %w", dir, err)
	}
	var damaged []string
	o := &pebble.Options{ReadOnly: true, Logger: quietLogger{}, EventListener: &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) { damaged = append(damaged, info.Path) },
	}}
	pdb, err := pebble.Open(dir, o)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", dir, damagedError(err))
	}
	defer pdb.Close()
	rep := &CheckReport{Records: map[string]int{}}
	if err := pdb.CheckLevels(nil); err != nil {
		return rep, fmt.Errorf("check %s: damaged files %v: %w", dir, damaged, err)
	}
	it, err := pdb.NewIter(nil)
	if err != nil {
		return rep, fmt.Errorf("check %s: %w", dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return rep, fmt.Errorf("check %s: damaged files %v: key %x: %w", dir, damaged, it.Key(), err)
		}
		name := tableNames[it.Key()[0]]
		err = checkRecord(it.Key(), v)
		if err == nil && it.Key()[0] == tMessage {
			err = checkBodyFile(dir, it.Key(), v)
		}
		if err != nil {
			rep.DamagedCount++
			if len(rep.Damaged) < maxDamagedListed {
				rep.Damaged = append(rep.Damaged, fmt.Sprintf("%s %x: %v", name, it.Key(), err))
			}
			continue
		}
		rep.Records[name]++
	}
	if err := it.Close(); err != nil {
		return rep, fmt.Errorf("check %s: damaged files %v: %w", dir, damaged, err)
	}
	if rep.DamagedCount > 0 {
		return rep, fmt.Errorf("check %s: %d records: %w", dir, rep.DamagedCount, ErrDamaged)
	}
	return rep, nil
}

// checkBodyFile reads the body file a message value refers to, if any,
// as GetMessage would.
func checkBodyFile(dir string, k, v []byte) error {
	_, body, err := decodeMessage(v)
	if err != nil || body.file == nil {
		return err
	}
	_, err = readBodyFile(filepath.Join(dir, bodiesDir, bodyFileName(k)), body.file)
	return err
}

// checkRecord decodes one record as its table's reader would.
func checkRecord(k, v []byte) error {
	if len(k) == 0 {
		return errBadKey
	}
	rest := k[1:]
	switch k[0] {
	case tMessage:
		_, _, err := decodeMessage(v)
		return err
	case tStatus:
		_, err := decodeStatuses(v)
		return err
	case tIdem:
		_, err := decodeIdem(k, v)
		return err
	case tQueue:
		if len(rest) <= timeLen {
			return errBadKey
		}
		id, err := readTaskID(rest[timeLen:])
		if err != nil {
			return err
		}
		_, err = decodeTask(id, v)
		return err
	case tTaskDue, tInboxRef:
		if len(v) != timeLen {
			return errCorrupt
		}
	case tAgent:
		return json.Unmarshal(v, new(gateway.Agent))
	case tDead:
		return json.Unmarshal(v, new(gateway.DeadLetter))
	case tWorkflow:
		return json.Unmarshal(v, new(workflow.State))
	case tSchema:
		return json.Unmarshal(v, new(schema.Record))
	case tWebhook:
		return checkWebhookRecord(k, v)
	case tMsgTime, tAgentKey, tInbox, tMeta:
	default:
		return errBadKey
	}
	return nil
}

// quietLogger keeps a read-only check from printing Pebble's chatter; a
// fatal error still stops it.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Errorf("pebble: "+format, args...))
}

// Footprint is what a store's files take on disk after a full compaction.
type Footprint struct {
	// Tables is the bytes of the tables (sstables, blob files): the data.
	Tables int64
	// Fixed is the bytes of the files whose size does not follow the data:
	// the log (recycled segments), the manifest, options and markers.
	Fixed int64
	// ByTable estimates Tables by key table (messages, statuses, …).
	ByTable map[string]int64
}

// Measure opens the store of dataDir (the gateway stopped), compacts all
// of it, and reports its footprint: what the data costs once Pebble has
// rewritten it, not where its writes happened to leave it.
func Measure(ctx context.Context, dataDir string) (Footprint, error) {
	fp := Footprint{ByTable: map[string]int64{}}
	db, err := Open(Options{Dir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fp, err
	}
	if err := db.pdb.Flush(); err != nil {
		_ = db.Close()
		return fp, fmt.Errorf("measure: %w", err)
	}
	if err := db.pdb.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		_ = db.Close()
		return fp, fmt.Errorf("measure: %w", err)
	}
	for t, name := range tableNames {
		n, err := db.pdb.EstimateDiskUsage([]byte{t}, []byte{t + 1})
		if err != nil {
			_ = db.Close()
			return fp, fmt.Errorf("measure: %w", err)
		}
		if n > 0 {
			fp.ByTable[name] = int64(n)
		}
	}
	if err := db.Close(); err != nil {
		return fp, err
	}
	entries, err := os.ReadDir(storePath(dataDir))
	if err != nil {
		return fp, fmt.Errorf("measure: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return fp, fmt.Errorf("measure: %w", err)
		}
		if e.Name() == bodiesDir {
			n, err := dirBytes(filepath.Join(storePath(dataDir), bodiesDir))
			if err != nil {
				return fp, fmt.Errorf("measure: %w", err)
			}
			fp.Tables += n
			if n > 0 {
				fp.ByTable["message bodies"] = n
			}
			continue
		}
		if strings.HasSuffix(e.Name(), ".sst") || strings.HasSuffix(e.Name(), ".blob") {
			fp.Tables += info.Size()
		} else {
			fp.Fixed += info.Size()
		}
	}
	return fp, nil
}

// dirBytes is the size of the files in dir.
func dirBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		n += info.Size()
	}
	return n, nil
}
