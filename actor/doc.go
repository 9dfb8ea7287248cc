// Package actor is the Orchestrix runtime: it runs aggregates defined with
// package aggregate as protoactor-go actors, one per active aggregate id,
// persisting their events to a journal.
//
// # Using it
//
//	sys, err := actor.NewSystem(actor.Config{Journal: j, Snapshots: s})
//	accounts, err := actor.Register(sys, bank.Accounts) // *Handle[Account, Command, Event]
//	res, err := accounts.Send(ctx, "acc-1", bank.Deposit{Amount: 50})
//	state, version, err := accounts.State(ctx, "acc-1")
//	defer sys.Shutdown(ctx)
//
// The events of aggregate id of kind k live in the journal stream
// k + "-" + id (Handle.Stream). Each event's envelope carries the aggregate
// id as Subject, the command id as CausationID, the correlation id and
// traceparent of the command, the system's Source and the clock's time.
//
// # Guarantees
//
//   - Send returns after the command's events are durable in the journal,
//     with the committed events and the aggregate's new version. A journal
//     failure is reported as such (an error matching
//     orchestrix.ErrOutcomeUnknown), never as success.
//   - Commands to one aggregate are decided one at a time, in arrival order,
//     and answered in that order. While an append is in flight the
//     aggregate keeps deciding later commands against the pending state and
//     appends them together as the next batch (one Journal.Append call for
//     many commands), so a hot aggregate is bound by CPU and batch commits
//     rather than by the journal's latency. At most one append per
//     aggregate is in flight. A journal.AsyncAppender
//     (journal/bolt) is handed each batch with a completion function, and
//     the result of an aggregate's only batch is applied by that function
//     without a trip through the mailbox; any other journal is called on
//     a goroutine per append.
//   - When an append fails, its commands get the journal's error, every
//     command queued behind it fails with an error matching ErrAborted and
//     orchestrix.ErrOutcomeUnknown, and the aggregate drops its state: the
//     next command recovers it from the journal. Two activations of one
//     aggregate (two processes on one journal, a cluster during a
//     membership change) are fenced by the journal's expected-version
//     check: the stale one gets orchestrix.ErrVersionConflict and recovers.
//   - A command id (WithCommandID, or aggregate.Command.ID) is executed at
//     most once within the dedup window: a retry gets the original Result
//     (CommandID, Events, Version, Position) with Duplicate set, without
//     the command being decided or stored again. The window is a time
//     (Config.DedupWindow, 5 minutes by default, measured on Config.Clock
//     from the time of the original's events), not a number of commands,
//     so a retry after a failover is recognised however busy the aggregate
//     was meanwhile, up to Config.DedupMaxEntries commands per aggregate
//     (10,000 by default; past it the oldest are forgotten first). A retry
//     sent after the window has passed is executed again. The command id
//     is stored as each event's CausationID, and recovery (after
//     passivation, a crash or a failover) rebuilds the window from the
//     events stamped within it, reading back past the snapshot it starts
//     from when the window reaches further; commands that produced no
//     events are remembered only while the aggregate stays active.
//     Rejected commands are not remembered: a retry is decided again.
//     A remembered command costs about 75 bytes and holds no pointers
//     (its id, time, versions and position; not its events): a duplicate
//     reads its events back from the aggregate's stream and decodes them
//     as recovery does, and gets an error (never a second execution) if
//     that read fails. Definitions that delete events on snapshot keep
//     the events instead.
//   - Commands whose types the definition lists (aggregate.Definition.Commands)
//     can be encoded into binary envelope bytes and decoded back in another
//     process with Handle.EncodeCommand and Handle.DecodeCommand; a type that
//     is not listed matches ErrUnknownCommandType. A single-process system
//     needs no command types.
//   - A panic in Decide or Evolve fails that command with an error matching
//     aggregate.ErrPanicked and leaves the aggregate's state as it was.
//
// # Activation, recovery and passivation
//
// An aggregate is activated by its first message. It recovers from the
// newest snapshot that loads and decodes (older ones, then a full replay,
// are the fallbacks), then replays the events after it, decoding them
// through the Registry so that upcasters apply. When the journal lends its
// records (journal.BorrowedReader, as journal/postgres does) and the
// registry's codec is orchestrix.JSONCodec, each event is decoded straight
// from the journal's read buffer and nothing of the record is kept but the
// decoded event (and, copied, the causation ids of the dedup window);
// otherwise long streams are decoded by a pool of workers. At most
// Config.MaxConcurrentRecoveries recoveries run at once. A snapshot is saved
// every Definition.SnapshotEvery events and on passivation; events before a
// snapshot are deleted only when Definition.DeleteEventsOnSnapshot says so.
// An aggregate idle for Config.IdleTimeout (measured on Config.Clock) is
// passivated, and Config.MaxActive caps the active aggregates of a kind by
// passivating the least recently used.
//
// Events are encoded with Registry.MarshalFor, for the aggregate id as
// subject. Snapshots are encoded with Definition.EncodeState when set;
// otherwise, when the Registry's codec is an orchestrix.SubjectCodec (for
// example package pii's, which encrypts personal data), with that codec
// for the aggregate id; otherwise as JSON.
//
// Routing has no central mailbox: aggregate ids map to actor PIDs in a
// sharded table, and a command goes straight to its aggregate's mailbox.
// Aggregate actors are protoactor-go actors with a mailbox of the
// runtime's own (installed through protoactor's Props.WithMailbox): it
// keeps the default mailbox's behaviour (system messages first, FIFO user
// messages, suspension and escalation of a panic to the supervisor), and
// adds one path: when Send or Dispatch finds its aggregate recovered,
// idle and not hot (no command arrived while its append was in flight),
// the calling goroutine handles the command itself instead of starting a
// goroutine for it, and hands anything queued behind it to a goroutine as
// usual. Only commands whose sender waits run this way; the
// journal's completions, snapshots, passivation, Shutdown, Tell and State
// always go through a goroutine, so the journal's writer never runs
// application code, no snapshot I/O runs on a caller, and a recovery
// does only when a journal failure races with the command.
//
// StateAt and StateAtTime rebuild past states from snapshots and the
// journal without touching the live actor.
//
// # Telemetry
//
// Config.Metrics (a *telemetry.Metrics) records the orchestrix_commands_total,
// command_duration_seconds, events_appended_total, aggregates_active,
// passivations_total, recoveries_total and recovery_seconds metrics;
// Config.Observer receives the same Observations. A command is counted
// before its reply is sent, so the metrics include it once Send has
// returned. Send and Dispatch start
// a telemetry.SpanCommand span (Config.TracerProvider, the global provider
// by default) as a child of the span in the caller's context, end it with
// the command's outcome, and write its traceparent into the command's
// events unless WithTraceParent set one. The context of each journal
// append carries the trace of the batch's first event, for the journal's
// commit span. Tell starts no span.
//
// Package actortest has a manual clock, a probe actor and NewSystem, which
// starts a system on the in-memory journal with fault injection.
package actor
