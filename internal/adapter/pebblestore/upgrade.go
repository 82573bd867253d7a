package pebblestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentry/agentry/internal/adapter/boltimport"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// A data directory written by earlier versions (the bbolt engine:
// agentry.db and its redo log agentry.wal, read by boltimport) is
// imported once, at the first start, before the store serves anything.
// The import writes unsynced batches and then one synced marker
// (metaImported): the log is sequential, so the marker's sync makes
// everything before it durable, and a start that finds no marker imports
// again from the start (every write of the import is a put of the same
// value). Only then are the old files renamed, with legacySuffix, never
// deleted nor renamed over: they stay for an operator to go back to, or
// to look for what the import reported damaged. Legacy files found
// after the marker must be the ones imported (legacyStamp).
const legacySuffix = ".pre-pebble"

var metaImported = []byte{tMeta, 'i', 'm', 'p', 'o', 'r', 't', 'e', 'd'}

// importBatchBytes bounds the batch the import holds in memory.
const importBatchBytes = 4 << 20

// UpgradeReport says what the import of an earlier data directory did.
type UpgradeReport struct {
	Imported map[string]int
	// Damaged lists the records of the old files that could not be read
	// (the old files keep them); at most maxDamagedListed are listed,
	// DamagedCount counts them all.
	Damaged      []string
	DamagedCount int
}

const maxDamagedListed = 100

// upgrade imports the legacy files of dataDir, if any, and renames them.
// It returns nil when there was nothing to import.
func (db *DB) upgrade(dataDir string) (*UpgradeReport, error) {
	present, err := boltimport.Exists(dataDir)
	if err != nil || !present {
		return nil, err
	}
	stamp, err := stampLegacy(dataDir)
	if err != nil {
		return nil, err
	}
	done, err := db.has(metaImported)
	if err != nil {
		return nil, err
	}
	var rep *UpgradeReport
	if done {
		err = db.sameAsImported(dataDir, stamp)
	} else {
		rep, err = db.importLegacy(dataDir, stamp)
	}
	if err != nil {
		return rep, err
	}
	return rep, keepAside(dataDir)
}

func (db *DB) importLegacy(dataDir string, stamp legacyStamp) (*UpgradeReport, error) {
	im := &importer{db: db, b: db.pdb.NewBatch(), rep: &UpgradeReport{Imported: map[string]int{}}}
	if err := boltimport.Export(dataDir, im); err != nil {
		im.b.Close()
		return nil, fmt.Errorf("import %s: %w", filepath.Join(dataDir, boltimport.FileName), err)
	}
	if err := im.b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := acknowledged(dataDir, im.rep); err != nil {
		return im.rep, err
	}
	marker, _ := json.Marshal(importMarker{UpgradeReport: im.rep, Source: &stamp})
	if err := db.pdb.Set(metaImported, marker, pebble.Sync); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return im.rep, nil
}

// importMarker is metaImported's value: the report, and the database
// file that was imported (absent in markers of the first release).
type importMarker struct {
	*UpgradeReport
	Source *legacyStamp `json:"source,omitempty"`
}

// legacyStamp identifies the earlier engine's database file, so that a
// start that finds one after the import can tell the file imported (a
// start that stopped before renaming it) from one written since (that
// engine run again on the directory), whose writes the store lacks.
type legacyStamp struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

func stampLegacy(dataDir string) (legacyStamp, error) {
	info, err := os.Stat(filepath.Join(dataDir, boltimport.FileName))
	if err != nil {
		return legacyStamp{}, fmt.Errorf("import: %w", err)
	}
	return legacyStamp{Size: info.Size(), ModTime: info.ModTime().UTC()}, nil
}

// sameAsImported refuses legacy files found after the import that are
// not the ones imported: renaming them aside would leave their writes
// out in silence.
func (db *DB) sameAsImported(dataDir string, stamp legacyStamp) error {
	v, closer, err := db.pdb.Get(metaImported)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	var m importMarker
	err = json.Unmarshal(v, &m)
	_ = closer.Close()
	if err == nil && (m.Source == nil || (m.Source.Size == stamp.Size && m.Source.ModTime.Equal(stamp.ModTime))) {
		return nil
	}
	return fmt.Errorf("import: %s was written after this data directory was imported (the bbolt engine ran on it again?): "+
		"its writes are not in the store; move %s and %s out of the data directory to start without them",
		filepath.Join(dataDir, boltimport.FileName), boltimport.FileName, boltimport.WALFileName)
}

// keepAside renames the legacy files with legacySuffix, never over files
// kept by an earlier import.
func keepAside(dataDir string) error {
	for _, name := range []string{boltimport.FileName, boltimport.WALFileName} {
		from := filepath.Join(dataDir, name)
		if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if _, err := os.Lstat(from + legacySuffix); err == nil {
			return fmt.Errorf("import: keep %s aside: %s exists already (kept by an earlier import); %s was written after it",
				from, from+legacySuffix, name)
		}
		if err := os.Rename(from, from+legacySuffix); err != nil {
			return fmt.Errorf("import: keep %s aside: %w", from, err)
		}
	}
	return nil
}

// ImportAck is the file an operator creates in the data directory to
// start on an import that could not read every record of the old files.
const ImportAck = "import-damaged.ack"

// importReport lists what an import could not read.
const importReport = "import-damaged.txt"

// acknowledged lets an import with damaged records finish only once an
// operator has created ImportAck: until then the store does not start,
// and says why (nothing answered is left out silently). The import is
// written again at the next start, so nothing is lost by stopping here.
func acknowledged(dataDir string, rep *UpgradeReport) error {
	if rep.DamagedCount == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dataDir, ImportAck)); err == nil {
		return nil
	}
	list := strings.Join(rep.Damaged, "\n") + "\n"
	if rep.DamagedCount > len(rep.Damaged) {
		list += fmt.Sprintf("… and %d more\n", rep.DamagedCount-len(rep.Damaged))
	}
	reportPath := filepath.Join(dataDir, importReport)
	if err := os.WriteFile(reportPath, []byte(list), 0o600); err != nil {
		return fmt.Errorf("import: write %s: %w", reportPath, err)
	}
	return fmt.Errorf("import of the earlier data directory: %d records could not be read (listed in %s; the old files are kept "+
		"unchanged): to start without them, create %s", rep.DamagedCount, reportPath, filepath.Join(dataDir, ImportAck))
}

// importer is boltimport.Records writing into the store.
type importer struct {
	db  *DB
	b   *pebble.Batch
	rep *UpgradeReport
}

func (im *importer) set(kind string, k, v []byte) error {
	im.rep.Imported[kind]++
	if err := im.b.Set(k, v, nil); err != nil {
		return err
	}
	return im.flush()
}

func (im *importer) flush() error {
	if im.b.Len() < importBatchBytes {
		return nil
	}
	if err := im.b.Commit(pebble.NoSync); err != nil {
		return err
	}
	im.b.Close()
	im.b = im.db.pdb.NewBatch()
	return nil
}

func (im *importer) Message(m gateway.StoredMessage, statuses []gateway.RecipientStatus) error {
	if err := im.set("messages", messageKey(m.ID), encodeMessage(&m, m.AcceptedAt)); err != nil {
		return err
	}
	if err := im.b.Set(statusKey(m.ID), encodeStatuses(statuses), nil); err != nil {
		return err
	}
	return im.b.Set(msgTimeKey(m.AcceptedAt, m.ID), nil, nil)
}

func (im *importer) Idempotency(rec gateway.IdempotencyRecord) error {
	return im.set("idempotency", idemKey(rec.Sender, rec.Key), encodeIdem(rec))
}

func (im *importer) Inbox(recipient, id string, received time.Time) error {
	im.rep.Imported["inbox"]++
	putInbox(im.b, recipient, id, putTime(nil, received))
	return im.flush()
}

func (im *importer) Agent(a gateway.Agent) error {
	v, err := json.Marshal(&a)
	if err != nil {
		return err
	}
	if a.APIKeyHash != "" {
		if err := im.b.Set(agentHashKey(a.APIKeyHash), []byte(strings.ToLower(a.Address)), nil); err != nil {
			return err
		}
	}
	return im.set("agents", agentKey(a.Address), v)
}

func (im *importer) Task(t gateway.Task, due time.Time) error {
	d := putTime(nil, due)
	if err := im.b.Set(taskDueKey(t.ID), d, nil); err != nil {
		return err
	}
	return im.set("tasks", queueKey(d, t.ID), encodeTask(t))
}

func (im *importer) DeadLetter(d gateway.DeadLetter) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return im.set("dead_letters", appendTaskID(putTime(key(tDead, 0), d.DLQTimestamp), d.TaskID), v)
}

func (im *importer) Workflow(s workflow.State) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return im.set("workflows", workflowKey(s.WorkflowID), v)
}

func (im *importer) Schema(rec schema.Record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return im.set("schemas", schemaKey(rec.ID), v)
}

func (im *importer) Damaged(what string, k []byte, err error) {
	im.rep.DamagedCount++
	if len(im.rep.Damaged) < maxDamagedListed {
		im.rep.Damaged = append(im.rep.Damaged, fmt.Sprintf("%s %q: %v", what, k, err))
	}
}
