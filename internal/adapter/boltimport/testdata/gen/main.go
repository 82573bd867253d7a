// Command gen wrote the fixture of boltimport's tests (../v1 and
// ../expected.json) with the bbolt engine's own code, package embedded,
// at the commit named in ../README.md. That package is gone since; this
// file is kept (in testdata, which go build ignores) as the record of how
// the fixture was made, and runs only on a checkout of that commit:
//
//	go run ./internal/adapter/boltimport/testdata/gen -out internal/adapter/boltimport/testdata
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentry/agentry/internal/adapter/embedded"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// base is the fixture's clock: every time in it is base or near it.
var base = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

const (
	alice = "Alice@a.example"
	bob   = "bob@b.example"
	carol = "carol@c.example"
	// tornBytes is cut off the end of the log's last frame for
	// expected.json's "torn".
	tornBytes = 7
)

// Schemas written after the checkpoint, each in a frame of its own: the
// tests damage the first one's frame and tear the last one's.
const (
	schemaInLog   = "agntcy:fixture.inlog.v1"
	schemaLastLog = "agntcy:fixture.last.v1"
)

func main() {
	out := flag.String("out", "", "testdata directory to write v1/ and expected.json into")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

func run(out string) error {
	work, err := os.MkdirTemp("", "boltimport-fixture")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	live := filepath.Join(work, "live")
	if err := writeLegacyJSON(live); err != nil {
		return err
	}
	if err := checkpointed(live); err != nil {
		return err
	}
	db, err := embedded.Open(embedded.Options{Dir: live, CheckpointInterval: 24 * time.Hour, Now: clock})
	if err != nil {
		return err
	}
	if err := logOnly(db); err != nil {
		return err
	}
	// Copied while the store is open, as a crash would leave the files:
	// the database file as of the checkpoint, the log as flushed.
	fixture := filepath.Join(out, "v1")
	if err := copyDir(live, fixture, 0); err != nil {
		return err
	}
	if err := shrink(filepath.Join(fixture, embedded.FileName)); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	return writeExpected(out, fixture, work)
}

func clock() time.Time { return base.Add(time.Hour) }

// writeLegacyJSON writes records the way versions before the binary codec
// did (JSON values), which the engine still read.
func writeLegacyJSON(dir string) error {
	db, err := embedded.Open(embedded.Options{Dir: dir, Now: clock})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	bdb, err := bolt.Open(filepath.Join(dir, embedded.FileName), 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		return err
	}
	id := "legacy-json-0001"
	a := gatewaytest.NewAcceptance(id, alice, []string{bob}, base)
	meta, _ := json.Marshal(map[string]any{"sender": alice, "recipients": []string{bob}, "subject": a.Message.Subject, "accepted_at": base})
	msg := append(binary.AppendUvarint(nil, uint64(len(meta))), meta...)
	msg = append(msg, a.Message.Raw...)
	statuses, _ := json.Marshal(a.Statuses)
	idem, _ := json.Marshal(a.Idempotency)
	task, _ := json.Marshal(a.Tasks[0])
	due := putTime(base)
	err = bdb.Update(func(tx *bolt.Tx) error {
		puts := []struct {
			bucket string
			k, v   []byte
		}{
			{"messages", []byte(id), msg},
			{"statuses", []byte(id), statuses},
			{"msg_time", append(putTime(base), id...), nil},
			{"idem", append([]byte("alice@a.example\x00"), a.Idempotency.Key...), idem},
			{"tasks", []byte(a.Tasks[0].ID), append(slices.Clone(due), task...)},
			{"due", append(slices.Clone(due), a.Tasks[0].ID...), nil},
		}
		for _, p := range puts {
			if err := tx.Bucket([]byte(p.bucket)).Put(p.k, p.v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	return err
}

func putTime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())^(1<<63))
}

// messageID is a gateway-made id (a UUIDv7's text) for n.
func messageID(n int) string { return fmt.Sprintf("019ad3c4-5e00-7000-8000-%012d", n) }

// accept stores message n from alice to the recipients at base + n s.
func accept(ctx context.Context, db *embedded.DB, n int, recipients ...string) (*gateway.Acceptance, error) {
	a := gatewaytest.NewAcceptance(messageID(n), alice, recipients, base.Add(time.Duration(n)*time.Second))
	_, err := db.Accept(ctx, a)
	return a, err
}

// checkpointed writes what the database file holds: the store is closed
// (which checkpoints) at the end.
func checkpointed(dir string) error {
	ctx := context.Background()
	db, err := embedded.Open(embedded.Options{Dir: dir, Now: clock})
	if err != nil {
		return err
	}
	var as []*gateway.Acceptance
	for n := 1; n <= 8; n++ {
		a, err := accept(ctx, db, n, bob)
		if err != nil {
			return err
		}
		as = append(as, a)
	}
	verified := gatewaytest.NewAcceptance("client-own-id", alice, []string{bob, carol}, base.Add(9*time.Second))
	verified.Message.Verification = &gateway.SenderVerification{Result: gateway.VerifiedSignature, Method: "signature", Domain: "a.example", KeyID: "k1", Algorithm: "ES256"}
	verified.Message.Origin = gateway.OriginRemote
	if _, err := db.Accept(ctx, verified); err != nil {
		return err
	}
	steps := []func() error{
		func() error {
			return db.PutAgent(ctx, &gateway.Agent{Address: bob, DeliveryMode: gateway.ModePull, APIKeyHash: "hash-of-bobs-key", CreatedAt: base})
		},
		func() error {
			return db.PutAgent(ctx, &gateway.Agent{
				Address: carol, DeliveryMode: gateway.ModePush, WebhookURL: "https://c.example/hook", WebhookSecret: "s3cret",
				SupportedSchemas: []string{"agntcy:test.order.v1"}, APIKeyHash: "hash-of-carols-key", CreatedAt: base,
				Headers: map[string]string{"Authorization": "Bearer carol"},
			})
		},
		func() error {
			return db.PutAgent(ctx, &gateway.Agent{Address: "frank@b.example", DeliveryMode: gateway.ModePull, APIKeyHash: "hash-of-franks-key", CreatedAt: base})
		},
		func() error {
			return db.PutSchema(ctx, schema.Record{ID: "agntcy:test.order.v1", Schema: []byte(`{"type":"object"}`), CreatedAt: base, UpdatedAt: base, Version: 1})
		},
		func() error {
			return db.DeliverToInbox(ctx, bob, as[0].Message.ID, delivered(bob, 20))
		},
		func() error { return db.Ack(ctx, as[0].Tasks[0]) },
		func() error {
			t := as[1].Tasks[0]
			t.Attempt = 3
			return db.Retry(ctx, t, base.Add(30*time.Second))
		},
		func() error {
			return db.DeadLetter(ctx, as[2].Tasks[0], gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE", ErrorMessage: "503 from the webhook",
				FirstAttempt: base.Add(21 * time.Second), LastAttempt: base.Add(22 * time.Second), DLQTimestamp: base.Add(22 * time.Second)})
		},
		func() error {
			return db.CreateWorkflow(ctx, workflow.State{WorkflowID: as[3].Message.ID, Initiator: alice, Type: "parallel", Status: workflow.StatusInProgress,
				CreatedAt: base, UpdatedAt: base, Deadline: base.Add(time.Hour), Version: 1,
				Participants: []workflow.Participant{{Address: bob, Status: workflow.ParticipantAwaiting}}})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return db.Close()
}

func delivered(addr string, second int) gateway.RecipientStatus {
	at := base.Add(time.Duration(second) * time.Second)
	return gateway.RecipientStatus{Address: addr, Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "inbox"}
}

// logOnly writes what only the redo log holds: new records, and changes
// and deletions of records the database file holds. Every call is a
// frame of its own (the calls are sequential).
func logOnly(db *embedded.DB) error {
	ctx := context.Background()
	for n := 10; n <= 12; n++ {
		if _, err := accept(ctx, db, n, bob); err != nil {
			return err
		}
	}
	inboxed := gatewaytest.NewAcceptance(messageID(13), alice, []string{bob}, base.Add(13*time.Second))
	inboxed.Tasks, inboxed.Inbox = nil, []string{bob}
	inboxed.Statuses = []gateway.RecipientStatus{delivered(bob, 13)}
	if _, err := db.Accept(ctx, inboxed); err != nil {
		return err
	}
	task := func(n int) gateway.Task {
		return gateway.Task{ID: gateway.TaskID(messageID(n), bob), MessageID: messageID(n), Kind: gateway.TaskLocal,
			Recipients: []string{bob}, CreatedAt: base.Add(time.Duration(n) * time.Second)}
	}
	steps := []func() error{
		func() error { return db.Ack(ctx, task(5)) },
		func() error {
			t := task(6)
			t.Attempt = 1
			return db.Retry(ctx, t, base.Add(40*time.Second))
		},
		func() error { return db.DeliverToInbox(ctx, bob, messageID(7), delivered(bob, 41)) },
		func() error {
			s, err := db.GetWorkflow(ctx, messageID(4))
			if err != nil {
				return err
			}
			s.Status, s.UpdatedAt, s.Version = workflow.StatusCompleted, base.Add(42*time.Second), 2
			return db.UpdateWorkflow(ctx, s, 1)
		},
		func() error {
			return db.CreateWorkflow(ctx, workflow.State{WorkflowID: messageID(11), Initiator: alice, Type: "sequential", Status: workflow.StatusInProgress,
				CreatedAt: base, UpdatedAt: base, Deadline: base.Add(2 * time.Hour), Version: 1, Participants: []workflow.Participant{{Address: bob, Status: workflow.ParticipantAwaiting}}})
		},
		func() error {
			return db.PutAgent(ctx, &gateway.Agent{Address: "erin@b.example", DeliveryMode: gateway.ModePull, APIKeyHash: "hash-of-erins-key", CreatedAt: base})
		},
		func() error { return db.DeleteAgent(ctx, "frank@b.example") },
		func() error {
			return db.PutSchema(ctx, schema.Record{ID: schemaInLog, Schema: []byte(`{"type":"string"}`), CreatedAt: base, UpdatedAt: base, Version: 1})
		},
		func() error {
			return db.DeadLetter(ctx, task(8), gateway.DeadLetter{FailureReason: "RECIPIENT_UNAVAILABLE", DLQTimestamp: base.Add(43 * time.Second)})
		},
		func() error { return db.AckInbox(ctx, bob, messageID(1)) },
		func() error {
			return db.PutSchema(ctx, schema.Record{ID: schemaLastLog, Schema: []byte(`{"type":"number"}`), CreatedAt: base, UpdatedAt: base, Version: 1})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// copyDir copies the store's two files, the log cut at cut when it is
// not 0.
func copyDir(from, to string, cut int) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, name := range []string{embedded.FileName, embedded.WALFileName} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return err
		}
		if name == embedded.WALFileName && cut > 0 {
			b = b[:cut]
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// shrink cuts the database file to its pages in use: the engine grows
// the file 16 MiB at a time (its mmap starts at 1 GiB, beyond bbolt's
// AllocSize), and the pages beyond the meta page's high-water mark are
// never read.
func shrink(path string) error {
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	var size int64
	err = bdb.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Truncate(path, size)
}

// dump is every record Export hands over, in its order; boltimport's
// tests collect into the same shape.
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

// expected is what embedded.Export reads from the fixture (All), from its
// database file alone (Checkpoint: the log removed) and with the log's
// last frame torn (Torn).
type expected struct {
	All        dump `json:"all"`
	Checkpoint dump `json:"checkpoint"`
	Torn       dump `json:"torn"`
	// TornAt is the length the log is cut to for Torn: 7 bytes before
	// the end of its last frame. (The file goes on after that frame with
	// frames of earlier rounds, which the log's writer left in place.)
	TornAt int `json:"torn_at"`
}

func writeExpected(out, fixture, work string) error {
	var e expected
	end, err := logEnd(filepath.Join(fixture, embedded.WALFileName))
	if err != nil {
		return err
	}
	e.TornAt = end - tornBytes
	for i, v := range []struct {
		d   *dump
		cut int
		log bool
	}{{&e.All, 0, true}, {&e.Checkpoint, 0, false}, {&e.Torn, e.TornAt, true}} {
		// Export recovers the log into the database file: on a copy.
		dir := filepath.Join(work, fmt.Sprint("export", i))
		if err := copyDir(fixture, dir, v.cut); err != nil {
			return err
		}
		if !v.log {
			if err := os.Remove(filepath.Join(dir, embedded.WALFileName)); err != nil {
				return err
			}
		}
		if err := embedded.Export(dir, v.d); err != nil {
			return err
		}
	}
	if err := check(&e); err != nil {
		return err
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "expected.json"), append(b, '\n'), 0o600)
}

// check holds the fixture to what it is for: records only in the log,
// and the log's changes to records of the file.
func check(e *expected) error {
	has := func(d dump, id string) bool {
		return slices.ContainsFunc(d.Messages, func(m messageRecord) bool { return m.Message.ID == id })
	}
	schemaIn := func(d dump, id string) bool {
		return slices.ContainsFunc(d.Schemas, func(r schema.Record) bool { return r.ID == id })
	}
	switch {
	case len(e.All.Messages) != 14 || len(e.Checkpoint.Messages) != 10:
		return fmt.Errorf("messages: %d in all, %d in the checkpoint", len(e.All.Messages), len(e.Checkpoint.Messages))
	case has(e.Checkpoint, messageID(13)) || !has(e.All, messageID(13)):
		return fmt.Errorf("message 13 must be in the log only")
	case !schemaIn(e.All, schemaLastLog) || schemaIn(e.Torn, schemaLastLog) || !schemaIn(e.Torn, schemaInLog):
		return fmt.Errorf("the torn frame must be the last schema's only")
	case schemaIn(e.Checkpoint, schemaInLog):
		return fmt.Errorf("schema %s must be in the log only", schemaInLog)
	case len(e.All.Unreadable)+len(e.Checkpoint.Unreadable)+len(e.Torn.Unreadable) != 0:
		return fmt.Errorf("damaged records in the fixture")
	case bytes.Equal(mustJSON(e.All.Tasks), mustJSON(e.Checkpoint.Tasks)):
		return fmt.Errorf("the log must change the queue")
	}
	return nil
}

// logEnd is the end of the log's last frame: frames are numbered one up
// from the first (a 16-byte header: length, checksum, number).
func logEnd(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	off, next := 0, binary.LittleEndian.Uint64(b[8:])
	for off+16 <= len(b) && binary.LittleEndian.Uint64(b[off+8:]) == next {
		off += 16 + int(binary.LittleEndian.Uint32(b[off:]))
		next++
	}
	return off, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
