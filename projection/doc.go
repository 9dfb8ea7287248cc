// Package projection builds read models from the journal's global,
// commit-ordered log.
//
// A Projection names a Handler, a Filter (aggregate kinds and/or event
// types) and a CheckpointStore. A Manager runs projections in parallel,
// each as its own protoactor-go actor driving a worker goroutine that:
//
//  1. loads the projection's checkpoint (the position up to which every
//     record is handled);
//  2. catches up by reading the journal with journal.Journal.ReadAll in
//     batches of Projection.BatchSize records, decoding the selected ones
//     with the manager's orchestrix.Registry (so upcasters apply) and
//     handing them to the Handler;
//  3. saves the checkpoint after each batch, then, once it has read
//     everything committed, blocks in journal.Watcher.WaitFor until the
//     next commit: live events arrive without a polling delay.
//
// # Guarantees
//
//   - Order and completeness: a handler sees the selected events in
//     position order, none skipped. Records the Filter excludes advance the
//     checkpoint without being decoded.
//   - At-least-once: the checkpoint is saved only after the handler has
//     returned for every event at or below it (the contiguous handled
//     prefix), so after a crash the projection resumes where its saved
//     checkpoint says and may deliver the last batch again. Handlers get
//     each event's Position to stay idempotent; projection/boltstore makes
//     a bbolt read model exactly-once by writing its checkpoint in the same
//     transaction as the handler, and projection/pgstore does the same for
//     a PostgreSQL read model.
//   - One runner per projection name: run a projection in one process at a
//     time. In a cluster, run it as a cluster.Singleton and give it a
//     checkpoint store fenced by the activation's epoch
//     (pgstore.Store.WithEpoch): an activation that was replaced, and
//     has not noticed yet, then cannot write its checkpoint or read model.
//   - Failures are never skipped silently: an event whose payload cannot be
//     decoded (an unregistered type matches orchestrix.ErrUnknownEventType)
//     stops the projection at once; a handler error is retried with
//     backoff (Retry, timed by the injected Clock) and then stops the
//     projection in StateFailed with an *EventError in Status.LastError,
//     Status.FailedPosition set and an Error log line. Manager.Start tries
//     again; Manager.Skip passes over that one event on purpose.
//   - Manager.Rebuild clears the read model (Projection.Reset) and replays
//     from position 0. Projection.UntilPosition and Projection.UntilTime
//     build a read model as of a position or a point in time and stop
//     there (StateCompleted).
//   - Status reports the state, the checkpoint, the journal head and the
//     lag between them; Manager.Wait blocks until a condition on the status
//     holds.
//
// # Testing
//
// Package projection/projectiontest runs a projection in a test on an
// in-memory journal: to the head of the log, then through a failing
// event's retries on a manual clock, to failure and past it with Skip.
package projection
