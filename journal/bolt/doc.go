// Package bolt is the embedded journal backend: a journal.Journal stored in
// one bbolt file, with group commit so that many streams' appends share one
// transaction and one fsync.
//
// It implements journal.Journal, journal.Deleter and journal.Watcher and
// passes the conformance suite in journal/journaltest.
//
// # Group commit
//
// Append encodes its events (Envelope.MarshalBinary and the CRC of the
// encoded bytes) in the caller's goroutine and puts the append on a queue.
// One writer goroutine takes everything that is queued (at most
// Config.MaxBatchEvents events and Config.MaxBatchBytes bytes, and always
// at least one append), checks each append in queue order against the
// stream heads as they stand after the earlier appends of the same batch,
// writes every accepted append in one bbolt read-write transaction, commits
// it (one commit: bbolt syncs the data pages, then the meta page), and then
// answers every caller.
// There is no timer: an idle journal commits a lone append at once, and
// under load the batch is whatever queued up while the previous commit was
// syncing, so batch size follows load. After acknowledging a batch of
// several appends the writer yields the processor (runtime.Gosched) for as
// long as the queue keeps growing, so the callers it has just woken can
// queue their next appends and share the next commit; without this, busy
// callers split into two halves that take turns, each idle for a whole
// commit.
//
// No append is answered before the commit holding it has returned from
// bbolt's Commit, i.e. before it is durable (a test checks every
// acknowledgement against the last commit that returned). Under load the
// commit and its fsync are a small part of an append's latency: with a
// thousand callers on two cores, a cycle of ~10 ms spent ~2 ms in the
// commit, ~3 ms answering the callers (their completion functions) and
// the rest waiting for them to queue again; the tail comes from the
// writer waiting for a CPU among the callers, not from the disk
// (BENCHMARKS.md, issue 12).
//
// AppendAsync is the same without a waiting goroutine: it queues the append
// and calls a completion function, on the writer's goroutine, with the
// outcome Append would have returned (the actor runtime uses it). Append
// requests and their encoding buffers are recycled once the writer is done
// with them.
//
// A rejected append (version conflict, cancelled context) fails alone and
// stores nothing; the rest of its batch commits. When the commit itself
// fails (an I/O error, a full disk), every append of that batch that had
// been accepted, including those recognised as duplicates, returns an
// error matching orchestrix.ErrOutcomeUnknown, and the writer reloads its
// in-memory state (heads, unindexed runs, id cache) from the file before
// taking the next batch.
//
// # Cancellation
//
// An append whose context ends while it is still queued returns the
// context's error and is never stored; the writer also drops an append
// whose context has ended by the time it takes it into a batch. Once the
// writer has taken an append into a batch, Append waits for the batch's
// real outcome even if the context ends meanwhile, so that a returned
// context error always means "not stored". For AppendAsync a context that
// ends while the append is queued is noticed when the writer reaches it.
//
// # Idempotency (KurrentDB rules)
//
// For NoStream and Exact(n) with n below the head, the append is compared
// with the stored events at versions n+1…: if all its ids match it is a
// duplicate (Duplicate is set, nothing is stored, the original versions
// and positions are returned); if only the first ids match, or the append
// reaches beyond the head, it is a conflict with reason "event ids partly
// match stored events"; otherwise a plain version conflict. Events already
// deleted cannot be compared, so an append over deleted versions is a
// plain conflict.
//
// For Any and StreamExists the first event id is looked for among the
// stream's last Config.IdempotencyWindow events (16 by default). When it
// is found at version v, the append is a duplicate if all its ids match
// the stored events from v on, and a conflict if they match only partly
// (or the append reaches beyond the head). When it is not found the
// append is stored as new: a retry of an append that has since been
// followed by more than IdempotencyWindow events of its stream is not
// recognised, which is what KurrentDB's bounded id cache does too. The
// window is kept in memory as hashes of the ids, per stream, loaded from
// the log the first time a stream receives an Any or StreamExists append
// (so it survives restarts and costs nothing for streams only appended
// with exact versions); every hit is confirmed against the stored records,
// so a hash collision cannot invent a duplicate.
//
// # File layout
//
// All buckets are top-level buckets of the bbolt file; the file may be
// shared with other stores (snapshot/bolt uses its own bucket
// "snapshots"), which reach it through (*Journal).DB.
//
//	journal.log      key: 8-byte big-endian global position of the first
//	                 record of a block; value: a block (below). Keys only
//	                 increase; FillPercent 1.0.
//	journal.index    key: uvarint(len(stream)) ‖ stream ‖ 8-byte big-endian
//	                 first version of the entry (the length prefix keeps one
//	                 stream's keys from interleaving with another's)
//	                 value: runs of consecutive versions, each
//	                 uvarint(first position) ‖ uvarint(count); the versions
//	                 are consecutive from the key's version on.
//	journal.streams  key: stream name; value: 8-byte big-endian head ‖
//	                 8-byte big-endian deleted-up-to version. The head
//	                 stored is also how far journal.index covers the
//	                 stream: both are written together.
//	journal.meta     "format" → 2; "checkpoint" → 8-byte big-endian position
//	                 up to which journal.index and journal.streams reflect
//	                 every record of journal.log (records after it may be
//	                 indexed too, see "Deferred index"); "lastpos" →
//	                 highest position ever assigned (written when deletion
//	                 could remove the last records, so positions are never
//	                 reused).
//
// Files of format 1 (written before checkpoints were spread) are read as
// such and upgraded to format 2 by the first Open that may write: one
// transaction indexes every stream and moves the checkpoint to the end.
// A version that knows only format 1 refuses a format 2 file.
//
// A block holds the records of one commit at consecutive positions,
// starting at its key:
//
//	uint32      count of positions, big endian
//	count ×     uint32 end offset of record i's frame in the data (big
//	            endian); a deleted record has an empty frame
//	data        the frames, concatenated
//
// A commit splits its records into blocks of at most half a bbolt page
// (about 8 KB, some thirty-five 200-byte events, with the default 16 KiB
// pages of Config.PageSize; a file keeps the page size it was created
// with). bbolt keeps at least two keys in a
// leaf node, so one large value per commit would be rewritten together
// with its predecessors on every commit; half-page blocks fill each page
// with two of them, and a commit rewrites at most one partly filled page
// besides its own. Positions are contiguous within a commit; deletion
// empties frames (and drops blocks left empty), so positions get holes
// but are never reused.
//
// A frame is one record:
//
//	[0:4)   CRC-32C (Castagnoli), big endian
//	[4:12)  version, big endian
//	        uvarint(len(stream)) ‖ stream
//	        the envelope in its binary form (Envelope.MarshalBinary)
//
// The CRC covers the envelope bytes first and then the bytes from offset 4
// to the end of the stream name, so the caller's goroutine checksums the
// envelope before the version is known and the writer only extends it.
// The stored envelope carries Sequence 0; reads set Sequence from the
// frame's version.
//
// # Deferred index
//
// A commit writes only journal.log: a batch of appends to a thousand
// different streams touches consecutive leaf pages at the end of one
// bucket instead of a page per stream in an index. The per-stream index
// is kept in memory as runs (version, position, count) and written to
// journal.index and journal.streams by a checkpoint spread over commits.
// Once the log holds Config.IndexEvery positions past the checkpoint, a
// round begins: it takes the streams that have records not yet indexed,
// in index key order, and each commit that stores events also flushes a
// slice of them (every unindexed run of the stream, that commit's
// included, and its head), paced so that the round ends within the next
// IndexEvery/2 stored events and at least 16 streams per commit. The
// commit that flushes the round's last stream moves the checkpoint to the
// last position of the commit that began the round. So no commit carries
// the whole checkpoint (it used to be one commit every IndexEvery events
// writing every stream written since the last one, and it set the p99
// latency under load), and Open scans at most about 1.5×IndexEvery
// positions plus two batches. Close flushes everything in one commit.
//
// Open reads journal.streams, then scans journal.log after the checkpoint
// to rebuild the runs, skipping each record whose version is at or below
// its stream's stored head (a round indexed it already). A deletion
// indexes the stream's remaining runs in its own transaction, so a head
// is never ahead of the index. A stream's index entries cover its events
// in the order they were flushed, one entry per flush (split at 1024
// runs).
//
// # Stream heads in memory
//
// At most Config.CachedHeads stream states (default 262,144, roughly 250
// bytes plus twice the name each) stay in memory; after each commit the
// writer evicts the surplus with a clock (a stream appended to since the
// hand last passed gets another turn). A stream with records not yet in
// journal.index keeps its state (head, deletion point, unindexed runs)
// in memory until a checkpoint round flushes it, whatever the budget;
// there are at most about 1.5×IndexEvery such streams. An append, deletion or read of a
// stream not cached reads its head from journal.streams (one B+tree
// lookup; the append then caches it, a read does not), and an Any or
// StreamExists append reads its recent-id window back from the log. So
// the expected-version check and Head of hot streams never touch the
// disk, and memory does not grow with the number of streams: Open loads
// only the streams the log tail after the checkpoint names, whatever the
// file holds.
//
// # Reads
//
// Read and ReadAll read in chunks, each in its own short read transaction,
// and yield outside any transaction: a consumer that appends while
// iterating cannot deadlock against the writer's need to grow the memory
// map. Every record's checksum is verified on every read; a record that
// fails it, cannot be decoded, or is missing from the log is reported as a
// *journal.CorruptionError naming its stream, version and position, never
// skipped.
//
// # Damaged files
//
// A file whose bbolt structure is damaged (a page header, an element
// offset, a meta page) never crashes the process. Open and CheckFile walk
// every page, bounds-checked, before bbolt reads any (internal/boltsafe).
// The free list is persisted with every commit, so bbolt's Open reads it
// instead of scanning every page again; the walk is what makes Open grow
// with the file (about 0.5 s of CPU at 10 M events, BENCHMARKS.md). A
// panic bbolt raises later on a damaged page during a read is turned into
// an error at this package's boundary.
// Both are errors matching orchestrix.ErrCorrupt that name the file and,
// where known, the page.
package bolt
