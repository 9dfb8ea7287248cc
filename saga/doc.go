// Package saga runs process managers: long-running business transactions
// that react to events, keep their own state and send commands to
// aggregates, surviving restarts.
//
// # Orchestrations
//
// The common case is an orchestration: ordered steps, each an action (a
// command to an aggregate) and an optional compensation that undoes it.
//
//	transfers, err := saga.Register(runner, saga.New[Transfer]("transfer").
//		Step("debit",
//			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Withdraw{t.Amount} }),
//			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Deposit{t.Amount} })).
//		Step("credit",
//			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.To, Deposit{t.Amount} }), nil))
//	err = transfers.Begin(ctx, "t-1", Transfer{From: "alice", To: "bob", Amount: 100})
//	st, err := transfers.Wait(ctx, "t-1", saga.Finished)
//
// A saga begins through Saga.Begin or, with Orchestration.StartOn, when an
// event selected from the journal's global log arrives (the event names
// the saga's id, its correlation id: one saga per id). When every step
// succeeds the saga ends StateCompleted. When a step is rejected (its
// aggregate refused the command: aggregate.ErrRejected, or an action
// returned Reject(err)), times out, or gives up after Retry.MaxAttempts
// transient failures, the compensations of the steps completed before it
// run in reverse order (the failed step's own compensation does not run)
// and the saga ends StateCompensated; when a compensation is rejected or
// gives up, the saga ends StateFailed and Status.CompensationFailure says
// which step and why.
//
// Actions address aggregates by kind and id through a typed actor.Handle
// (see Command); nothing here holds an actor PID.
//
// # Process managers
//
// When a business process waits for what happens rather than driving
// fixed steps (an order that reacts to its payment, its stock
// reservation and its shipment in whatever order they come, and acts when
// the payment is late), describe it as a Process: handlers for the event
// types it reacts to, each correlating an event with one process instance
// by id, and a state per instance.
//
//	p := saga.NewProcess[Fulfilment]("fulfilment")
//	saga.On(p, func(ev projection.Event, e OrderPlaced) (string, bool) { return e.OrderID, true },
//		func(ctx context.Context, pc *saga.ProcessContext[Fulfilment], e OrderPlaced) error {
//			pc.State.Items = e.Items
//			pc.Schedule("payment", 15*time.Minute)
//			return nil
//		}, saga.Starts())
//	saga.On(p, saga.ByCorrelationID[PaymentReceived], func(ctx context.Context, pc *saga.ProcessContext[Fulfilment], e PaymentReceived) error {
//		pc.Cancel("payment")
//		_, err := shipments.Send(ctx, pc.ID, Ship{Items: pc.State.Items}, pc.SendOptions("ship")...)
//		pc.Complete()
//		return err
//	})
//	p.OnTimeout(func(ctx context.Context, pc *saga.ProcessContext[Fulfilment], name string) error { ... })
//	fulfilment, err := saga.RegisterProcess(runner, p)
//
// A correlate function picks the process id from the event (its payload
// or envelope); BySubject (the aggregate id) and ByCorrelationID (the
// correlation id the command was sent with) cover the common cases.
//
// The runner follows the global log for those event types (projection
// "process.<name>", at least once) and delivers each event to its
// process: the events of one process one at a time and in log order,
// different processes concurrently. After a handler returns nil the
// process records one Handled event in its stream "process.<name>-<id>"
// with its whole state, pending timeouts, whether it is done, and the
// highest position handled, so that:
//
//   - a redelivered event (the runner restarted before its checkpoint
//     moved) is recognised and skipped once recorded; one whose handler
//     ran but whose record was not written is handled again, and the
//     commands it re-sends carry the same ids (ProcessContext.CommandID
//     derives them from the process, the event's id and a name), so the
//     aggregates apply them once;
//   - reading a process costs one event however long it lived;
//   - timeouts (ProcessContext.Schedule, handled by OnTimeout) are
//     durable: a projection over the Handled events ("process.<name>.
//     timers", its checkpoint held back to the oldest process with a
//     pending timeout) arms them on the runner's Clock, also after a
//     restart; a timeout fires once and is dropped unless its handler
//     schedules it again;
//   - a rejected handler (Reject, or a command the aggregate refused) is
//     recorded as the process's failure for that input, visible in
//     ProcessStatus, and the process goes on; other errors are retried
//     with the runner's Retry policy and the same command ids.
//
// When a process has handlers marked Starts, only their events begin a
// process; events of other types for a process not begun are ignored.
// After Complete, later events are ignored. CaughtUp waits until the
// manager has handled everything committed so far.
//
// # Durability and delivery
//
//   - A saga's progress is recorded as events in its own stream,
//     "saga.<name>-<id>" (Stream): Started, StepStarted (a step's
//     deadline), StepCompleted, StepFailed, StepCompensated, and one of
//     Completed, Compensated or Failed. A step's outcome is recorded
//     before the next step begins.
//   - Every command a step sends carries a deterministic id derived from
//     the saga's stream, the step's name and whether it is the action or
//     the compensation (Context.CommandID), never from the attempt. A
//     transient failure (an unknown outcome, a system shutting down, an
//     attempt timeout) is retried with the same id, and a runner that
//     restarts re-sends the command of the step it was executing with the
//     same id, so the aggregate's command deduplication (actor.Config.
//     DedupWindow and DedupMaxEntries) makes each command take effect at
//     most once. The dedup window must therefore cover the time between a
//     command and its retry, and the cap the commands an aggregate may
//     receive meanwhile.
//   - Deadlines (Timeout, Orchestration.Deadline) are recorded in the saga
//     stream and measured on the injected Clock, so they survive restarts
//     and fire in tests when an actortest.ManualClock is advanced.
//     Package saga/sagatest runs sagas and process managers that way, with
//     their commands intercepted.
//   - The runner follows the global log with projections whose
//     checkpoints live in Config.Checkpoints: "saga.<name>.trigger" for
//     the events that start sagas (at-least-once; a saga id begins once),
//     and "saga.<name>", which follows the sagas' Started events and
//     whose checkpoint is held back to the oldest saga still running, so
//     a new Runner on the same journal resumes every unfinished saga.
//   - The runner's projections retry a failing journal without a limit
//     (Config.Retry's backoff, no attempt limit), so an outage delays sagas and
//     processes instead of stopping them; Projections shows them
//     retrying. An invalid id from a StartOn or correlate function stops
//     its projection at that event, visibly, until Saga.SkipTrigger or
//     ProcessManager.Skip passes over it.
//   - Each saga executes on its own goroutine; Config.MaxActive (10,000
//     by default) bounds how many execute at once, and sagas beyond it
//     wait, unread, until one finishes.
//   - Run one Runner per orchestration name at a time. Two runners would
//     both execute a saga; the journal's expected-version check keeps
//     the saga's record consistent and command ids keep the effects
//     single, but work is duplicated. In a cluster, run it as a
//     singleton (see below).
//
// Status reads a saga's record from its stream, so it answers for sagas
// executed by an earlier process too; while this process executes a saga
// it also reports the attempt in progress and the last transient error.
// Saga.Wait and ProcessManager.Wait wake when this process's runner
// records progress; a handle from Follow or FollowProcess follows the
// journal instead (see below).
//
// # In a cluster, and handles in other processes
//
// With several processes on one shared journal (package cluster), run the
// Runner as a cluster singleton (cluster.Singleton): its Start creates the
// Runner and registers the orchestrations and processes, its stop closes
// the Runner, and the cluster keeps one activation at a time, taking it
// over on another member when its member dies. For sagas the singleton
// mainly avoids duplicate work; their correctness does not depend on it,
// because a saga writes its progress as events at an expected version (a
// second runner's write of the same step fails with a version conflict)
// and sends commands with deterministic ids (the aggregates apply each
// once). What a stale runner could still do is move the runner's
// projection checkpoints: give Config.Checkpoints a store fenced by the
// activation's epoch (projection/pgstore's Store.WithEpoch) and its writes
// are refused.
//
// Follow and FollowProcess return handles for every other place that
// needs sagas or processes, such as the other members: they execute
// nothing; Status reads the stream, Wait follows the journal
// (journal.Watcher) and sees the progress recorded by whichever runner
// executes the saga, in any process and across a takeover, and a
// Followed handle's Begin records a start for that runner to pick up.
//
// # Telemetry
//
// Config.TracerProvider (the global provider when nil) starts one
// orchestrix.saga.step span (telemetry.SpanSagaStep) per attempt of an
// action or compensation, with the attributes orchestrix.saga (name),
// orchestrix.saga.step (step name), orchestrix.saga.id,
// orchestrix.saga.compensating and orchestrix.saga.attempt, ended with the
// attempt's error. Its parent is the trace that began the saga, recorded
// with the Started event: the traceparent of the triggering event (for
// StartOn, the command that wrote it) or of the span in Saga.Begin's ctx.
// A saga resumed after a restart keeps that parent; a saga begun without
// a trace has each step span start a trace of its own. The action's ctx
// carries the step span, so a command sent with it (Command, or
// actor.Handle.Send with ctx and Context.SendOptions) is the span's child,
// and its events carry the command span's traceparent; Context.TraceParent
// is the step span's traceparent, for other channels.
//
//	caller span or the triggering orchestrix.command
//	├── orchestrix.saga.step (step=debit, attempt=1)
//	│   └── orchestrix.command (kind=account)
//	└── orchestrix.saga.step (step=credit, attempt=1)
//	    └── orchestrix.command (kind=account)
//
// Config.Metrics (nothing when nil) records, per saga name:
//
//   - orchestrix_saga_instances{saga,state}: the instances this process's
//     runners have executed, by state. "running" and "compensating" count
//     the instances being executed right now: an instance enters them when
//     a runner starts (or resumes, after a restart) executing it, moves
//     between them as it records progress, and leaves them when it ends
//     or when its runner closes. "completed", "compensated" and "failed"
//     count the instances that reached that state while a runner of this
//     process executed them; they only grow, start from zero in a new
//     process, and do not include sagas that had already finished when
//     the runner started (the journal is not scanned for them). Several
//     runners sharing one *telemetry.Metrics add up.
//   - orchestrix_saga_compensations_total{saga}: sagas that started
//     compensating in this process (a step failed and the saga recorded
//     it), once per saga, however many compensations it then runs.
//   - orchestrix_process_inputs_total{process,input,outcome}: events
//     (input="event") and timeouts (input="timeout") a process manager
//     recorded, by outcome: "handled", "completed" (the handler completed
//     the process) or "failed" (rejected or out of attempts).
//     Redelivered and ignored events are not counted.
//
// The runner's projections ("saga.<name>", "saga.<name>.trigger",
// "process.<name>", "process.<name>.timers") report
// orchestrix_projection_position and orchestrix_projection_lag_events and
// their own orchestrix.projection.batch spans.
package saga
