package boltimport

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The fixture (testdata/README.md): a data directory written by the
// engine's own code, and what the engine's Export read from it.
const (
	fixtureDir    = "testdata/v1"
	schemaInLog   = "agntcy:fixture.inlog.v1"
	schemaLastLog = "agntcy:fixture.last.v1"
)

// messageID is the fixture's message n (testdata/gen).
func messageID(n int) string { return fmt.Sprintf("019ad3c4-5e00-7000-8000-%012d", n) }

// dump collects what Export hands over, in the shape of
// testdata/expected.json.
type dump struct {
	Messages    []messageRecord             `json:"messages"`
	IdemRecords []gateway.IdempotencyRecord `json:"idempotency"`
	InboxItems  []inboxRecord               `json:"inbox"`
	Agents      []gateway.Agent             `json:"agents"`
	Tasks       []taskRecord                `json:"tasks"`
	DeadLetters []gateway.DeadLetter        `json:"dead_letters"`
	Workflows   []workflow.State            `json:"workflows"`
	Schemas     []schema.Record             `json:"schemas"`
	Unreadable  []string                    `json:"damaged"`
}

type messageRecord struct {
	Message  gateway.StoredMessage     `json:"message"`
	Statuses []gateway.RecipientStatus `json:"statuses"`
}

type inboxRecord struct {
	Recipient string    `json:"recipient"`
	MessageID string    `json:"message_id"`
	Received  time.Time `json:"received"`
}

type taskRecord struct {
	Task gateway.Task `json:"task"`
	Due  time.Time    `json:"due"`
}

func (d *dump) Message(m gateway.StoredMessage, rs []gateway.RecipientStatus) error {
	d.Messages = append(d.Messages, messageRecord{m, rs})
	return nil
}

func (d *dump) Idempotency(rec gateway.IdempotencyRecord) error {
	d.IdemRecords = append(d.IdemRecords, rec)
	return nil
}

func (d *dump) Inbox(recipient, id string, received time.Time) error {
	d.InboxItems = append(d.InboxItems, inboxRecord{recipient, id, received})
	return nil
}

func (d *dump) Agent(a gateway.Agent) error { d.Agents = append(d.Agents, a); return nil }

func (d *dump) Task(t gateway.Task, due time.Time) error {
	d.Tasks = append(d.Tasks, taskRecord{t, due})
	return nil
}

func (d *dump) DeadLetter(x gateway.DeadLetter) error {
	d.DeadLetters = append(d.DeadLetters, x)
	return nil
}
func (d *dump) Workflow(s workflow.State) error { d.Workflows = append(d.Workflows, s); return nil }
func (d *dump) Schema(rec schema.Record) error  { d.Schemas = append(d.Schemas, rec); return nil }
func (d *dump) Damaged(what string, key []byte, err error) {
	d.Unreadable = append(d.Unreadable, fmt.Sprintf("%s %q: %v", what, key, err))
}

type expected struct {
	All        dump `json:"all"`
	Checkpoint dump `json:"checkpoint"`
	Torn       dump `json:"torn"`
	TornAt     int  `json:"torn_at"`
}

func loadExpected(t *testing.T) expected {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	require.NoError(t, err)
	var e expected
	require.NoError(t, json.Unmarshal(b, &e))
	return e
}

// fixture copies the fixture into a directory of the test's own.
func fixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{FileName, WALFileName} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	return dir
}

// exportDir runs Export on dir and returns what it handed over.
func exportDir(t *testing.T, dir string) dump {
	t.Helper()
	var d dump
	require.NoError(t, Export(dir, &d))
	return d
}

// requireSame compares dumps as JSON, the form expected.json holds.
func requireSame(t *testing.T, want, got dump) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g))
}

// TestExportReadsTheFixture: Export reads exactly what the engine's own
// recovery and export read — the checkpoint with the log's frames past it
// (new records, changes and deletions of the file's) — and writes nothing.
func TestExportReadsTheFixture(t *testing.T) {
	e := loadExpected(t)
	dir := fixture(t)
	before := readFiles(t, dir)

	got := exportDir(t, dir)
	requireSame(t, e.All, got)
	assert.Equal(t, before, readFiles(t, dir), "the files are left as they are")

	// The log matters: without it the export is the checkpoint's.
	assert.NotEqual(t, len(e.Checkpoint.Messages), len(got.Messages))
	assert.Contains(t, messageIDs(got), messageID(13), "a message only the log holds")
}

// readFiles returns the SHA-256 of each file in dir.
func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		files[en.Name()] = hex.EncodeToString(sum[:])
	}
	return files
}

func messageIDs(d dump) []string {
	var ids []string
	for _, m := range d.Messages {
		ids = append(ids, m.Message.ID)
	}
	return ids
}

// TestExportLogCases: a missing log leaves the checkpoint; a torn last
// frame (a write never answered) is left out without a report.
func TestExportLogCases(t *testing.T) {
	e := loadExpected(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, log string)
		want   dump
	}{
		{name: "missing log", want: e.Checkpoint, change: func(t *testing.T, log string) {
			require.NoError(t, os.Remove(log))
		}},
		{name: "torn last frame", want: e.Torn, change: func(t *testing.T, log string) {
			require.NoError(t, os.Truncate(log, int64(e.TornAt)))
		}},
		{name: "empty log", want: e.Checkpoint, change: func(t *testing.T, log string) {
			require.NoError(t, os.Truncate(log, 0))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t)
			tc.change(t, filepath.Join(dir, WALFileName))
			got := exportDir(t, dir)
			requireSame(t, tc.want, got)
			assert.Empty(t, got.Unreadable)
		})
	}
}

// frameOf finds the log frame whose payload holds needle and returns its
// offset and payload length.
func frameOf(t *testing.T, log []byte, needle string) (off, n int) {
	t.Helper()
	for off+frameHeader <= len(log) {
		n = int(binary.LittleEndian.Uint32(log[off:]))
		if off+frameHeader+n > len(log) {
			break
		}
		if bytes.Contains(log[off+frameHeader:off+frameHeader+n], []byte(needle)) {
			return off, n
		}
		off += frameHeader + n
	}
	require.FailNow(t, "no frame holds "+needle)
	return 0, 0
}

func withoutSchema(d dump, id string) dump {
	d.Schemas = slices.DeleteFunc(slices.Clone(d.Schemas), func(r schema.Record) bool { return r.ID == id })
	return d
}

// TestExportDamagedLogFrame: a frame damaged in the middle of the log —
// answered writes after it — is reported, never dropped silently with
// everything after it (as the engine's own recovery did). When its header
// still gives its length, the frames after it are imported.
func TestExportDamagedLogFrame(t *testing.T) {
	e := loadExpected(t)
	t.Run("payload", func(t *testing.T) {
		dir := fixture(t)
		path := filepath.Join(dir, WALFileName)
		log, err := os.ReadFile(path)
		require.NoError(t, err)
		off, _ := frameOf(t, log, schemaInLog)
		log[off+frameHeader+bytes.Index(log[off+frameHeader:], []byte(schemaInLog))] ^= 0xff
		require.NoError(t, os.WriteFile(path, log, 0o600))

		got := exportDir(t, dir)
		require.Len(t, got.Unreadable, 1)
		assert.Contains(t, got.Unreadable[0], "redo log frame")
		assert.Contains(t, got.Unreadable[0], "checksum mismatch")
		got.Unreadable = nil
		requireSame(t, withoutSchema(e.All, schemaInLog), got)
	})
	t.Run("header", func(t *testing.T) {
		dir := fixture(t)
		path := filepath.Join(dir, WALFileName)
		log, err := os.ReadFile(path)
		require.NoError(t, err)
		off, _ := frameOf(t, log, schemaInLog)
		binary.LittleEndian.PutUint32(log[off:], 1<<20) // its length, past the log's end
		require.NoError(t, os.WriteFile(path, log, 0o600))

		got := exportDir(t, dir)
		require.Len(t, got.Unreadable, 1)
		assert.Contains(t, got.Unreadable[0], "redo log frames")
		assert.Contains(t, got.Unreadable[0], "not imported")
		// What came before the damaged frame is there, nothing after it.
		assert.Contains(t, messageIDs(got), messageID(13))
		assert.Len(t, got.Schemas, len(e.Checkpoint.Schemas))
	})
}

// flipAt returns where to flip a byte of a record in the database file.
type flipAt func(t *testing.T, db []byte) int

// value finds the value that follows key in a leaf page (bbolt keeps a
// key and its value side by side) and that match accepts, and returns the
// offset of its byte at skip.
func value(key string, match func(v []byte) bool, skip int) flipAt {
	return func(t *testing.T, db []byte) int {
		t.Helper()
		for from := 0; ; {
			i := bytes.Index(db[from:], []byte(key))
			require.GreaterOrEqual(t, i, 0, "no value of %q found", key)
			v := from + i + len(key)
			if match(db[v:]) {
				return v + skip
			}
			from = v
		}
	}
}

func startsWith(head string) func([]byte) bool {
	return func(v []byte) bool { return bytes.HasPrefix(v, []byte(head)) }
}

// TestExportDamagedRecord: a record of the database file that cannot be
// decoded is reported with its key, and everything else is exported.
func TestExportDamagedRecord(t *testing.T) {
	e := loadExpected(t)
	id := messageID(2)
	for _, tc := range []struct {
		name string
		at   flipAt
		what string
		want func(d dump) dump
	}{
		// uvarint(len(meta)), then the meta: version 2, uvarint(15), the sender.
		{name: "message", what: "message", at: value(id, func(v []byte) bool {
			return len(v) > 3 && bytes.HasPrefix(v[1:], []byte("\x02\x0fAlice@a.example"))
		}, 1), want: func(d dump) dump {
			d.Messages = slices.DeleteFunc(slices.Clone(d.Messages), func(m messageRecord) bool { return m.Message.ID == id })
			return d
		}},
		{name: "statuses", what: "statuses", at: value(id, startsWith("\x01\x01\x0dbob@b.example"), 0), want: func(d dump) dump {
			d.Messages = slices.Clone(d.Messages)
			for i := range d.Messages {
				if d.Messages[i].Message.ID == id {
					d.Messages[i].Statuses = nil
				}
			}
			return d
		}},
		{name: "agent", what: "agent", at: value("carol@c.example", startsWith("{"), 0), want: func(d dump) dump {
			d.Agents = slices.DeleteFunc(slices.Clone(d.Agents), func(a gateway.Agent) bool { return a.Address == "carol@c.example" })
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t)
			path := filepath.Join(dir, FileName)
			db, err := os.ReadFile(path)
			require.NoError(t, err)
			db[tc.at(t, db)] ^= 0xee
			require.NoError(t, os.WriteFile(path, db, 0o600))

			got := exportDir(t, dir)
			require.Len(t, got.Unreadable, 1)
			assert.True(t, strings.HasPrefix(got.Unreadable[0], tc.what+" "), got.Unreadable[0])
			got.Unreadable = nil
			requireSame(t, tc.want(e.All), got)
		})
	}
}

// TestExportDamagedPages: damage to bbolt's own pages (not to a record)
// fails the export with an error naming the file, never a panic.
func TestExportDamagedPages(t *testing.T) {
	dir := fixture(t)
	path := filepath.Join(dir, FileName)
	db, err := os.ReadFile(path)
	require.NoError(t, err)
	// The page holding the messages' records: its type becomes none.
	at := value(messageID(2), func(v []byte) bool { return len(v) > 3 && v[1] == metaV2 }, 0)(t, db)
	const pageSize = 4096
	page := at / pageSize * pageSize
	binary.LittleEndian.PutUint16(db[page+8:], 0)
	require.NoError(t, os.WriteFile(path, db, 0o600))

	var d dump
	err = Export(dir, &d)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "damaged")
}

// TestExportOfARunningStore: a store an earlier process still runs on
// (bbolt's exclusive lock) is refused with the reason, not waited for.
func TestExportOfARunningStore(t *testing.T) {
	dir := fixture(t)
	running, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{NoFreelistSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = running.Close() })

	var d dump
	err = Export(dir, &d)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "still running")
}

func TestExists(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for _, tc := range []struct {
		name string
		dir  string
		want bool
		err  bool
	}{
		{name: "fixture", dir: fixtureDir, want: true},
		{name: "empty directory", dir: t.TempDir()},
		{name: "missing directory", dir: filepath.Join(t.TempDir(), "missing")},
		{name: "not a directory", dir: file, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Exists(tc.dir)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
