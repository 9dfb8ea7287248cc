// Package console is a web console for an Orchestrix service: streams,
// events (stored and decoded), projections and a live tail of the global
// log, served by the service itself.
//
// A bbolt journal is held by one process, so the console is an
// http.Handler the service mounts next to its other handlers:
//
//	c, err := console.New(console.Config{Journal: j, Registry: reg, Projections: pm})
//	if err != nil { ... }
//	mux.Handle("/console/", http.StripPrefix("/console", c))
//
// For a stopped service, `orchestrix console --data DIR` (or --pg DSN)
// opens the journal and serves the same handler.
//
// The pages are server-rendered html/template pages embedded in the
// binary; the only script is the live tail's (an EventSource). Nothing is
// loaded from elsewhere.
//
// # Pages
//
//	GET streams?prefix=&kind=&after=&limit=      the stream list
//	GET stream?stream=&from=&time=&limit=        a stream's events
//	GET event?stream=&version=                   one event, stored and decoded
//	GET aggregate?kind=&id=&version=&time=&compare=  time travel (Config.Aggregates)
//	GET search?type=&subject=&correlation=&since=&until=&from=  bounded search
//	GET sagas?name=&state=&after=&limit=         saga instances by state
//	GET saga?stream=                             one saga's timeline
//	GET processes?name=&state=&after=&limit=     process manager instances by state
//	GET process?stream=                          one process: state, timers, failures
//	GET stats                                    counts by kind, positions; export form
//	GET check                                    integrity check (journal.Checker)
//	GET projections                              projection status (and actions)
//	GET tail                                     live tail of the global log
//
// # JSON API
//
// Every page is built on the same data the API returns as JSON. Errors are
// {"error": "message"} with a 4xx status for bad input (unknown stream,
// version out of range, malformed or oversized parameters) and 503 for a
// timeout or a closed journal.
//
//	GET api/streams?prefix=&kind=&after=&limit=  StreamPage
//	GET api/events?stream=&from=&time=&limit=    EventPage
//	GET api/event?stream=&version=               EventDetail
//	GET api/aggregate?kind=&id=&version=&time=&compare=  AggregateState
//	GET api/search?type=&subject=&correlation=&since=&until=&from=&limit=  SearchPage
//	GET api/sagas?name=&state=&after=&limit=     SagaPage
//	GET api/saga?stream=                         SagaDetail
//	GET api/processes?name=&state=&after=&limit= ProcessPage
//	GET api/process?stream=                      ProcessDetail
//	GET api/stats                                Stats
//	GET api/export?stream=&from=&to=             JSON lines in the export format
//	                                             (a download; at most MaxScan
//	                                             records, X-Export-Next names
//	                                             the next "from")
//	GET api/check                                CheckResult
//	GET api/projections                          ProjectionPage
//	GET api/tail?from=&type=&prefix=             text/event-stream of EventRow,
//	                                             id = global position; resumes
//	                                             after Last-Event-ID
//	POST api/projections/{name}/{start|stop|skip|rebuild}   (writes only)
//
// Search scans the global log from position "from" for at most
// Config.MaxScan records and returns the page found with the position to
// continue from. With a correlation id it also arranges the events by
// causation id into a chain: a command (known by the causation id its
// events carry) → its events → the events (saga and process steps) they
// caused, and so on.
//
// Sagas are read from their streams ("saga.<name>-<id>"), so the pages
// work from the journal alone (also in `orchestrix console`): the state
// (running, compensating, completed, compensated, failed) follows from the
// recorded events, and the timeline lists steps with their deadlines, the
// failure and the compensations in the order they ran.
//
// Processes are read from their streams ("process.<name>-<id>"): the
// newest recorded event holds the state, the pending timers (overdue when
// due before Config.Clock's now) and the failure count; the state is
// active, failed (the newest handler call failed for good) or done. With
// an orchestration listed in Config.Sagas (Saga(s)), a saga's page also
// shows its runner's attempt in progress and the previous attempt's error.
//
// The projections page charts each projection's lag over Config.LagWindow
// as inline SVG, from samples taken in-process every
// Config.LagSampleEvery on Config.Clock; Close stops the sampling.
//
// Time travel rebuilds the state of an aggregate registered with
// Aggregate(handle) at a version or time, without touching the live actor,
// and with compare= lists the changed fields and the events in between.
// With Config.Snapshots, the versions that have a snapshot are marked.
//
// The kind of a stream is journal.StreamKind: what comes before its first
// '-': "account" for "account-7", "saga.transfer" for saga streams, "pii"
// for erasure streams.
//
// # Safety
//
//   - Read-only unless Config.EnableWrites is set. Mutating routes are POST
//     only, exist only when enabled, pass Go's http.CrossOriginProtection
//     (a cross-site form or fetch gets 403), then Config.Authorize; each is
//     logged with the principal Authorize returned. New refuses
//     EnableWrites without Authorize unless
//     InsecureWritesWithoutAuthorize is set.
//   - Requests whose Host header is not in Config.AllowedHosts (default
//     localhost, 127.0.0.1, ::1) get 403, which defeats DNS rebinding.
//   - Every response carries Content-Security-Policy "default-src 'self';
//     frame-ancestors 'none'", X-Content-Type-Options nosniff and, except
//     the static assets, Cache-Control no-store. No CORS headers are sent.
//   - Page sizes (MaxPageSize), scans (MaxScan), live tails (MaxTail) and
//     request durations (RequestTimeout) are capped.
//   - Stream names, attributes and payloads are always shown as text
//     (html/template escaping; the tail's script sets textContent).
//   - Decoded payloads are decoded on each request through the registry and
//     never cached; with a pii codec, fields of erased subjects read as
//     erased (pii.Erased), the event page lists them and says when the
//     subject has an erasure record, and nothing decrypted is kept.
package console
