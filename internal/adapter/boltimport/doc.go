// Package boltimport reads a data directory of the earlier local store
// (bbolt and its redo log, the engine that Pebble replaced, issue 22), so
// that pebblestore can import it once, at its first start. It reads only:
// nothing of the gateway's operations is here, and it never writes to the
// directory.
//
// The directory holds agentry.db (bbolt) and agentry.wal (the redo log).
// The engine answered a write once the log held it and committed its
// open bbolt transaction to the file now and then (a checkpoint), with
// the number of the last log frame the commit held. So the file is a
// consistent but possibly older state, and the writes answered after it
// are in the log's frames numbered past that checkpoint.
//
// Export opens the file read-only and applies those frames in memory,
// over the view of the file (view.go), rather than into the file: the
// retired files stay byte for byte as the engine left them, so an import
// that is interrupted or refused starts again from the same files, and an
// operator who goes back to them finds them unchanged. The memory this
// takes is that of the frames past the checkpoint, which the engine kept
// under 16 MiB plus one group of writes (and this package under
// maxReplayBytes).
//
// # Damage
//
// Nothing damaged is passed over silently. A record that cannot be
// decoded is reported through Records.Damaged and the rest is exported.
// A log frame whose checksum fails while frames answered after it follow
// is reported the same way (redolog.go: the engine's own recovery
// stopped there, dropping every later frame). A frame torn at the log's
// end was never answered (the process died writing it) and is left out,
// as the engine did; a last frame damaged after it was answered cannot be
// told from such a tear. Damage to bbolt's own pages (its tree, not a
// record) makes Export fail with an error naming the file.
//
// # Layout read
//
// Times in keys are 8-byte big-endian Unix nanoseconds with the sign bit
// flipped (getTime); "+" is concatenation, 0x00 a separator. Values are
// the binary forms of codec.go, or the JSON of earlier versions.
//
//	messages      id → uvarint(len(meta)) + meta + raw message bytes
//	statuses      id → the recipient statuses
//	idem          lower(sender) + 0x00 + key → idempotency record
//	idem_log      time(created_at) + lower(sender) + 0x00 + key → idempotency record
//	inbox_ref     lower(recipient) + 0x00 + id → time(received_at)
//	agents        lower(address) → JSON agent
//	tasks         task id → time(due) + task
//	dead_letters  time(dlq_timestamp) + task id → JSON dead letter
//	workflows     workflow id → JSON workflow state
//	schemas       schema id → JSON schema record
//	wal           "applied" → the number of the last frame the file holds
//
// The engine's other buckets (msg_time, inbox, agent_keys, due,
// idem_time) are indexes of these and are rebuilt by the importer.
package boltimport
