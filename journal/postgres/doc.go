// Package postgres is the shared journal backend: a journal.Journal stored
// in PostgreSQL, for deployments where several processes (cluster members)
// append to and read from one journal.
//
// It implements journal.Journal, journal.AsyncAppender,
// journal.BorrowedReader, journal.Deleter, journal.Watcher, journal.Shared
// and journal.Epochs, and passes the conformance suite in
// journal/journaltest.
//
// # Schema
//
// Open creates and migrates its tables in Config.Schema (default: the
// connection's current schema, usually "public"). Migrations are numbered
// and recorded in the schema's schema_migrations table (component
// "journal"); they run in one transaction under a transaction-scoped
// advisory lock, so several processes may open the same journal at once.
//
//	journal_position  one row: last_position, the highest position handed
//	                  out (and committed: it is updated in the committing
//	                  transaction)
//	journal_streams   stream (PK) → head, the highest version ever stored.
//	                  Deletion does not touch it.
//	journal_events    position (PK), stream, version (UNIQUE with stream),
//	                  event_id (indexed, for idempotent retries; the
//	                  lookups filter the stream on top), type,
//	                  event_time, record, crc
//	journal_append()  the PL/pgSQL function that commits a batch (below)
//	epochs            name (PK) → epoch, holder: the fencing epochs of
//	                  journal.Epochs (cluster singletons), one upsert
//	                  (epoch = epoch + 1 … RETURNING) per NextEpoch. Created
//	                  on first use, under its own migration component
//	                  "epochs".
//
// record is the event's Envelope.MarshalBinary form with Sequence left at
// zero (the version column supplies it on read); crc is the CRC-32C
// (Castagnoli) of the stream name, the big-endian version and the record.
// A record whose CRC does not match, or that does not decode, is reported
// as a *journal.CorruptionError naming its stream, version and position.
//
// # Global order that cannot skip
//
// A sequence or bigserial position is not commit order: a transaction can
// take position 3, another take 4 and commit first, and a reader that
// follows "position > last" sees 4, moves on, and never sees 3. This
// journal instead hands out positions from the single journal_position
// row, which the committing transaction updates first and therefore keeps
// row-locked until it commits or rolls back. A second writer — in this
// process or any other — blocks on that row lock; PostgreSQL releases it
// only after the first transaction's commit is visible to new snapshots,
// and the second writer's UPDATE then reads the new value. So a
// transaction that takes higher positions always commits, and becomes
// visible, after every transaction that took lower ones: positions are
// assigned in commit order. A reader's query "position >= from ORDER BY
// position" sees a prefix of the final log plus nothing below it that can
// still appear, so following the log never skips a record. Positions of a
// rolled-back batch are not consumed (the counter update rolls back too);
// positions of deleted events leave holes, which is allowed.
//
// The row lock would cost one transaction per position if every append
// committed alone. Instead appends are group-committed.
//
// # Group commit
//
// Append validates and encodes its events in the caller's goroutine and
// queues the append. A writer goroutine per Journal takes everything
// queued (at most Config.MaxBatchEvents events, and at most one append
// per stream: a second append to the same stream waits for a later
// batch), checks each append's expected version against its cache of
// stream heads (reading the heads it does not know in one query), and
// commits all accepted appends with one call of journal_append: one round
// trip and one transaction. The call's parameters (one array per column)
// are encoded straight into PostgreSQL's binary array format in buffers
// reused from batch to batch, and sent with the statement prepared once
// per connection (its known description spares a Describe message); the
// Bind message itself is written into a buffer of the batch slot that is
// also reused, instead of pgx's write buffer, which pgx shrinks back to
// 1 KiB after every larger message and would regrow by doubling for each
// batch (wire.go). The function locks journal_position, verifies
// that each stream's head is still the one the writer planned with while
// moving it (one UPDATE of the existing streams' heads, one INSERT of the
// new streams), inserts every event with unnest, sends a NOTIFY with the
// new last position, and commits. So the lock is taken once per
// batch, and throughput grows with the batch size instead of being
// bounded by one round trip per event. Up to two batches are in flight
// at once (never sharing a stream): while one commits, the next is
// planned, encoded and sent, and waits for the lock on the server. When
// other writers commit to the same schema (the other members of a
// cluster), the lock is never idle anyway and a second batch would only
// split this writer's appends into smaller commits, so the writer keeps
// one batch in flight while the positions around its own commits show
// others' commits to be more than a quarter of its own
// (Config.MaxInFlight fixes the number instead). There
// is no timer: an idle journal commits a lone append at once, and under
// load a batch is whatever queued while the previous ones committed.
// Stats reports the number of batches and events.
//
// A rejected append (version conflict, invalid or too large event) fails
// alone before the batch is sent. When another process moved a head or
// stored one of the ids since the writer cached them, journal_append
// raises and nothing is stored; the writer then commits that batch on the
// locked path: an explicit transaction that first locks journal_position
// (so nobody can race it again), rereads the heads, re-checks every
// append (now rejecting only those that really conflict) and inserts the
// rest. A database error that rejects a whole batch is retried one append
// at a time, so it affects only the append it belongs to. When the
// outcome of a commit is unknown (the connection broke or the server
// crashed during the call or the COMMIT, or Config.WriteTimeout passed),
// every append of that batch returns an error matching
// orchestrix.ErrOutcomeUnknown and the writer forgets the heads of their
// streams; the connection pool reconnects for the next batch. An error
// before anything was sent (no connection) reports a plain error: nothing
// was stored.
//
// # Reads
//
// Read and ReadAll fetch up to 512 records per query, decode them into
// records of their own (one copy of each record's bytes) and yield them
// with no connection held, so a slow consumer never pins a connection.
// ReadBorrowed (journal.BorrowedReader), which the aggregate runtime's
// recovery uses, instead yields each row as it arrives: the record's
// checksum is verified and its envelope decoded in place from pgx's row
// buffer (orchestrix.Envelope.UnmarshalBinaryBorrowed), valid until the
// loop body returns, with no copy and no allocation per record; a query
// asks for up to 4,096 rows and the connection is held while they are
// consumed (a loop that stops early makes the connection skip the rest of
// that chunk). On a 300,000-event replay this took the client's CPU per
// event from ~2.7 to ~1.7 µs (BENCHMARKS.md).
//
// # Indexes
//
// journal_events has three indexes, each the one access path of a
// contract: the primary key on position (ReadAll and subscribers follow the
// log by position; uniqueness backs gap-free, commit-ordered positions),
// UNIQUE (stream, version) (Read, and the version fence: two writers can
// never both store a stream's version n, whatever a writer's cache says),
// and (event_id) (idempotent retries: journal_append's check of
// Any/StreamExists ids and the writer's id lookups, which filter the
// stream on top; with a (stream, version) scan instead, each check would
// read the whole stream). Measured by BenchmarkJournal_AppendIndexCost
// (server CPU and WAL per appended event with one index dropped or
// replaced): each costs ~60-110 bytes of WAL per event and several
// microseconds of server CPU; none is redundant, and a hash index on
// event_id instead of the B-tree saves ~20 bytes of WAL and no measurable
// CPU, so the schema is unchanged (BENCHMARKS.md).
//
// # Idempotency (KurrentDB rules)
//
// For NoStream and Exact(n) below the head, the stored events at versions
// n+1… are compared with the append: if all ids match it is a duplicate
// (nothing stored, the original versions and positions returned with
// Duplicate set); if only some match, or the append reaches beyond the
// head, it is a conflict with reason "event ids partly match stored
// events"; otherwise a plain conflict. For Any and StreamExists on a
// stream that exists, journal_append checks under its lock whether any of
// the append's ids is stored in the stream; when one is, the writer looks
// them up: if the ids are stored at consecutive versions starting where
// the first one is, the append is a duplicate, otherwise a conflict.
// Unlike journal/bolt this check is not limited to a window of recent
// events.
//
// # Live notification
//
// A dedicated connection LISTENs on a channel named after the schema;
// journal_append notifies it in the committing transaction, so a
// notification is only delivered for a committed, visible batch. WaitFor
// wakes on these notifications (and on this process's own commits). The
// listener reconnects with backoff after a lost connection and rereads the
// last position when it does; as a further safeguard WaitFor polls the
// last position every Config.PollInterval.
//
// # Cancellation
//
// An append whose context ends while it is queued returns the context's
// error and is never stored. Once the writer has taken it into a batch,
// Append waits for the batch's real outcome (bounded by
// Config.WriteTimeout), so a returned context error always means "not
// stored". AppendAsync follows the same rules and reports through its
// done function: the aggregate runtime (package actor) uses it, which
// spares a goroutine and a mailbox trip per append. Its queued appends
// are watched per context Done channel, not per append: one
// context.AfterFunc serves every queued append whose context shares that
// channel (the runtime's all derive from one context of its system), and
// when it fires every such append still queued is answered with its
// context's error (ctxwatch.go).
package postgres
