// Package pebblestore is the local gateway's store on Pebble
// (github.com/cockroachdb/pebble/v2), chosen with AGENTRY_STORE_ENGINE=pebble
// (bbolt, package embedded, stays the default for now: see
// localgw.DefaultEngine): it implements gateway.MessageStore,
// InboxStore, AgentStore, TaskQueue, WorkflowStore, Settler and
// schema.Store in the data directory's subdirectory "store".
//
// # Durability
//
// Every write is one Pebble batch committed with pebble.Sync: a call that
// returns nil (an answer of 202 for Accept) is in the synced log. Pebble's
// commit pipeline folds concurrent commits into one log sync (group
// commit); there is no log or checkpointing of our own. Writes that read
// first (is the message id taken, is the idempotency key used, what are
// the statuses) hold a striped lock on the keys they read, from the read
// to the end of their commit, so that writes to other keys still commit
// in the same group. A batch becomes visible to readers only once synced.
//
// What lives in memory: the leases of received tasks (lost on restart on
// purpose: an unsettled task is due again), a small cache of decoded
// agents, and Pebble's memtables (Options.MemTableBytes, two at most) and
// block cache (Options.CacheBytes). Nothing grows with the number of
// stored or queued messages.
//
// # Faults
//
// A failed write or sync of Pebble's log is fatal to Pebble (it calls
// Logger.Fatalf; its commit pipeline cannot go on). So the store never
// lets the disk fill: below Options.ReserveBytes of free space (64 MiB by
// default) every write is refused with ErrFull — a 503 the client
// retries — and Ping fails (/readyz), while Live stays healthy; writes
// resume by themselves once one and a half reserves are free. Should Pebble still meet a
// fatal error, Fatalf marks the store broken (Live fails, so a liveness
// probe restarts the process, and reopening recovers every answered
// write from the log) and panics the goroutine that met it, which then
// never answers.
//
// Damage: Pebble checksums every log record and table block. A damaged
// log record with synced writes after it makes Open fail with an error
// that names the damage and the way out (`agentry store check`, restore
// a backup); the store never opens without them. (The log records its
// synced offsets from format FormatWALSyncChunks on, which is what lets
// recovery tell such damage from the torn tail a crash leaves; a new
// store is created and reopened once so that even its first log has
// them.) A damaged table block fails the reads that need it, and Ping
// reports the store not ready from then on. A record that cannot be
// decoded is an error for that record (ErrCorrupt) and is left out of
// listings, with an error logged, instead of failing every page that
// holds it. Check reads a stopped store's every record.
//
// # Upgrade
//
// A data directory of the earlier bbolt engine (agentry.db and its redo
// log) is imported at the first Open (upgrade.go) and its files are then
// renamed with the suffix ".pre-pebble", never deleted. Records the import
// cannot read stop the start until an operator acknowledges them
// (ImportAck). The old files are read by internal/adapter/boltimport,
// read-only: bbolt's reader and the redo log's replay are all that is left
// of that engine.
//
// # Backup
//
// Backup takes a Pebble checkpoint of the open store (hard links to the
// immutable tables, the log synced and copied) while it serves;
// the body files of large messages are hard-linked beside it (they never
// change once written); restoring is putting the checkpoint in place of
// the store directory with the gateway stopped (`agentry store backup DIR`, `agentry store
// restore DIR`).
//
// # Key layout
//
// Every key starts with one byte naming its table. An id is 0x01 + its 16
// bytes when it is a canonical lower-case UUID (every id the gateway
// makes), else 0x02 + uvarint length + the text. A task id (message id +
// "|" + destination) is 0x01 + the message id's form + the destination.
// Times are 8 bytes whose byte order is time order (putTime). Addresses
// are lower-cased and followed by 0x00. Values are the compact binary
// encodings of codec.go; agents, schemas, workflows and dead letters are
// JSON (rare writes). No value repeats what its key holds.
//
//	M id                      → message meta + raw message bytes, or, for a
//	                            body of 128 KiB or more, its size and
//	                            SHA-256: the body is the file
//	                            bodies/<key id in hex> (bodies.go)
//	S id                      → recipient statuses
//	T time(accepted) id       → (empty) ListMessages walks it backwards
//	I sender 0x00 key         → idempotency record (message id, digest,
//	                            time); expired ones are swept in steps
//	B recipient time(recv) id → (empty) ListInbox walks a recipient forwards
//	R recipient id            → time(recv): finds the entry from the id
//	A address                 → agent (JSON)
//	K key hash                → address
//	Q time(due) task id       → task: Receive walks it forwards up to now
//	D task id                 → time(due): finds the Q entry for Ack/Retry
//	X time(dead) task id      → dead letter (JSON)
//	W id                      → workflow state (JSON)
//	C schema id               → schema record (JSON)
//	H 1 id / H 2 owner 0x00 id → webhook subscription (JSON) / (empty)
//	V name                    → store metadata (the import marker)
package pebblestore
