// Package embedded is the bbolt engine of the local store, still the
// default (localgw.DefaultEngine) while pebblestore, its successor
// (issue 22), accepts fewer messages per second in paired make bench runs.
// pebblestore's importer reads a data directory of this format through
// Export; once the default moves, only that use remains, for one release.
//
// It is Agentry's local default backend: one bbolt file that
// implements gateway.MessageStore, InboxStore, AgentStore, TaskQueue and
// WorkflowStore, so that a single process can run the gateway with nothing
// else installed.
//
// Every write goes through the store's committer (commit.go), which folds
// concurrent callers into one group, runs it in a bbolt write transaction
// that stays open across groups, appends the group's changes to a redo log
// (wal.go: agentry.wal beside the database file) and
// answers once that append is flushed. The transaction is committed every
// CheckpointInterval (10 ms by default) with the number of the last log
// frame it holds; Open re-applies the frames after it, so nothing answered
// is lost by a crash. The database file alone is therefore a consistent
// but possibly older state: back up the whole directory, with the process
// stopped.
//
// Reads see every answered write: a bbolt view when the last checkpoint
// holds them all, else the read runs in the committer's transaction (or,
// for the long listings, after a checkpoint made for it). Two other
// things are kept in memory. The set of task leases handed out by
// Receive is bounded by what callers have received and not yet settled,
// and it is lost on restart on purpose: after a crash every unsettled
// task is simply due again. The index of idem_log (idem.go) is bounded
// by the records kept there, and rebuilt from the file on open.
//
// # Bucket layout
//
// Meta, statuses, idempotency records and tasks are in the compact binary
// form of codec.go (JSON written by earlier versions is still read);
// agents, schemas, workflows and dead letters stay JSON (rare writes).
//
// Times in keys are 8-byte big-endian int64 Unix nanoseconds with the sign
// bit flipped, so that byte order is time order (see putTime). "+" below
// means concatenation, 0x00 is a separator byte that no address contains.
//
//	messages      id → uvarint(len(meta)) + meta + raw message bytes
//	              (meta: sender, recipients, subject, origin, accepted_at;
//	              the raw bytes follow unencoded so that inbox reads copy
//	              them straight out of the page)
//	statuses      id → []gateway.RecipientStatus, in the message's order
//	msg_time      time(accepted_at) + id → empty; ListMessages walks it backwards
//	idem_log      time(record.created_at) + lower(sender) + 0x00 + key →
//	              gateway.IdempotencyRecord; where Accept writes records (in
//	              time order, so it appends), found through an index in
//	              memory (idem.go); the sweeper deletes its expired start
//	              and moves the oldest records to idem beyond a bound
//	idem          lower(sender) + 0x00 + key → gateway.IdempotencyRecord;
//	              records moved out of idem_log, and every record of
//	              earlier versions; the sweeper walks it in bounded steps,
//	              resuming where it stopped, to prune expired records
//	              (sweep.go)
//	idem_time     time(record.created_at) + lower(sender) + 0x00 + key → empty;
//	              written by earlier versions only (a key per accept); the
//	              sweeper drains it
//	inbox         lower(recipient) + 0x00 + time(received_at) + id → empty;
//	              ListInbox walks one recipient's prefix forwards
//	inbox_ref     lower(recipient) + 0x00 + id → time(received_at); makes
//	              DeliverToInbox idempotent and AckInbox a point lookup
//	agents        lower(address) → JSON gateway.Agent
//	agent_keys    lower(api key hash) → lower(address)
//	tasks         task id → time(due) + gateway.Task; the due time is
//	              kept with the task so that its due entry can be found
//	due           time(due) + task id → empty; Receive walks it forwards up
//	              to now, so the queue never holds all tasks in memory
//	dead_letters  time(dlq_timestamp) + task id → JSON gateway.DeadLetter
//	wal           "applied" → the number of the last redo-log frame that
//	              the file holds (8 bytes, big-endian)
//	workflows     workflow id → JSON workflow.State; its Version is the
//	              optimistic lock that UpdateWorkflow checks in the write
//	              transaction
package embedded
