package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Append states of a pending append.
const (
	stateQueued    int32 = iota // waiting in the queue
	stateTaken                  // in a batch, not answered yet
	stateAbandoned              // its caller gave up while it was queued
	stateAnswered               // its outcome was sent
)

// atomicState is a pending append's state.
type atomicState struct{ v atomic.Int32 }

func (s *atomicState) cas(from, to int32) bool { return s.v.CompareAndSwap(from, to) }
func (s *atomicState) load() int32             { return s.v.Load() }

// pending is one queued append.
type pending struct {
	stream   string
	expected journal.ExpectedVersion
	ids      []string
	types    []string
	times    []time.Time
	records  [][]byte // MarshalBinary with Sequence 0
	traceTP  string   // traceparent of the first event, linked from the commit span
	state    atomicState
	done     chan outcome                      // Append's answer; nil for AppendAsync
	cb       func(journal.AppendResult, error) // AppendAsync's done function
	ctx      context.Context                   // AppendAsync's context, when it can end
	ctxDone  <-chan struct{}                   // ctx.Done(), the key of its watch
	watched  bool                              // counted in j.watches[ctxDone] (j.mu)
	answer   outcome                           // AppendAsync's outcome, delivered by runBatch
	answered bool                              // answer is set

	// Storage for the common one-event append: ids, types, times and
	// records point into these instead of four allocations of their own.
	oneID, oneType [1]string
	oneTime        [1]time.Time
	oneRecord      [1][]byte

	// Planning state, owned by the writer.
	head        uint64 // head the write was planned on
	checkIDs    bool   // ask journal_append to verify ids are not stored
	idsVerified bool   // a lookup found none of the ids stored
	committed   bool   // stored by this batch (set by succeed)
}

type outcome struct {
	res journal.AppendResult
	err error
}

// Append stores events at the end of stream if the stream is at the
// expected version; see the package documentation for batching,
// idempotency and the meaning of each error.
func (j *Journal) Append(ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	if err := j.check(ctx); err != nil {
		return journal.AppendResult{}, err
	}
	p, err := j.prepare(stream, expected, events)
	if err != nil {
		return journal.AppendResult{}, err
	}
	p.done = make(chan outcome, 1)
	if err := j.enqueue(p); err != nil {
		return journal.AppendResult{}, err
	}

	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		if p.state.cas(stateQueued, stateAbandoned) {
			return journal.AppendResult{}, ctx.Err()
		}
		// The writer has it: wait for the real outcome (bounded by
		// WriteTimeout), so a context error always means "not stored".
		o := <-p.done
		return o.res, o.err
	}
}

var _ journal.AsyncAppender = (*Journal)(nil)

// AppendAsync queues an append as Append does and returns without
// waiting for its commit; done is called exactly once with what Append
// would have returned. See journal.AsyncAppender.
//
// done runs on the goroutine that committed the append's batch, in the
// order of the batch, after the batch's slot is given back (so the next
// batch commits meanwhile); Close waits for it. A ctx that ends while
// the append is queued fails it with ctx's error (done is then called on
// a goroutine of the context package); once the writer has taken it into
// a batch it runs to completion, bounded by Config.WriteTimeout.
func (j *Journal) AppendAsync(ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope,
	done func(journal.AppendResult, error)) error {
	if done == nil {
		return fmt.Errorf("journal/postgres: AppendAsync to %q: nil done function", stream)
	}
	if err := j.check(ctx); err != nil {
		return err
	}
	p, err := j.prepare(stream, expected, events)
	if err != nil {
		return err
	}
	p.cb = done
	if d := ctx.Done(); d != nil {
		p.ctx, p.ctxDone = ctx, d
	}
	return j.enqueue(p)
}

// enqueue hands p to the writer, or reports ErrClosed. An AppendAsync
// append whose context can end is watched while it is queued (ctxwatch.go).
func (j *Journal) enqueue(p *pending) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closing {
		return orchestrix.ErrClosed
	}
	if p.ctxDone != nil {
		j.watchCtx(p)
	}
	j.queue = append(j.queue, p)
	j.cond.Signal()
	return nil
}

// prepare validates and encodes an append in the caller's goroutine.
func (j *Journal) prepare(stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) (*pending, error) {
	if err := journal.ValidateStream(stream); err != nil {
		return nil, fmt.Errorf("journal/postgres: %w", err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("journal/postgres: append to %q: %w", stream, journal.ErrNoEvents)
	}
	p := &pending{stream: stream, expected: expected, traceTP: events[0].TraceParent}
	if len(events) == 1 {
		p.ids, p.types, p.times, p.records = p.oneID[:], p.oneType[:], p.oneTime[:], p.oneRecord[:]
	} else {
		p.ids = make([]string, len(events))
		p.types = make([]string, len(events))
		p.times = make([]time.Time, len(events))
		p.records = make([][]byte, len(events))
	}
	for i, ev := range events {
		if len(ev.Data) > j.opts.MaxEventSize {
			return nil, fmt.Errorf("journal/postgres: event %d of stream %q: data of %d bytes exceeds MaxEventSize %d: %w",
				i, stream, len(ev.Data), j.opts.MaxEventSize, orchestrix.ErrTooLarge)
		}
		ev.Sequence = 0 // the version column supplies it on read
		rec, err := ev.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("journal/postgres: event %d of stream %q: %w", i, stream, err)
		}
		if len(rec) > j.opts.MaxEventSize {
			return nil, fmt.Errorf("journal/postgres: event %d of stream %q: %d bytes encoded exceeds MaxEventSize %d: %w",
				i, stream, len(rec), j.opts.MaxEventSize, orchestrix.ErrTooLarge)
		}
		if !validText(ev.ID) || !validText(ev.Type) {
			return nil, fmt.Errorf("journal/postgres: event %d of stream %q: id and type must be UTF-8 without NUL: %w",
				i, stream, orchestrix.ErrInvalidEnvelope)
		}
		p.ids[i], p.types[i], p.times[i], p.records[i] = ev.ID, ev.Type, ev.Time, rec
	}
	return p, nil
}

// runWriter is the group-commit loop: it forms batches and starts their
// commits, at most j.inFlightMax.max() at a time (inflight.go). In-flight
// batches never share a stream, so they can commit in either order.
func (j *Journal) runWriter() {
	defer close(j.writerDone)
	// stuckAt is the completion count at which j.carry could not form a
	// batch (all its streams in flight); noStuck when it could.
	const noStuck = ^uint64(0)
	stuckAt := noStuck
	for {
		j.mu.Lock()
		for {
			canCarry := len(j.carry) > 0 && j.completed != stuckAt
			if j.running < j.inFlightMax.max() && (len(j.queue) > 0 || canCarry) {
				break
			}
			if j.closing && len(j.queue) == 0 && len(j.carry) == 0 && j.running == 0 {
				j.mu.Unlock()
				return
			}
			j.cond.Wait()
		}
		reqs := append(j.carry, j.queue...)
		clear(j.queue)
		j.queue = j.queue[:0]
		var batch []*pending
		batch, j.carry = j.selectBatch(reqs)
		if len(batch) == 0 {
			stuckAt = j.completed
		} else {
			stuckAt = noStuck
			j.running++
		}
		j.mu.Unlock()
		if len(batch) > 0 {
			go j.runBatch(batch)
		}
	}
}

// runBatch commits batch and tells the writer loop it is done.
func (j *Journal) runBatch(batch []*pending) {
	start := time.Now()
	// Links only for appends that carry a trace: a slice sized for the
	// whole batch up front cost ~90 bytes per event when none does.
	events, links := 0, []trace.Link(nil)
	for i, p := range batch {
		events += len(p.records)
		if l, ok := telemetry.LinkFromTraceParent(p.traceTP); ok {
			if links == nil {
				links = make([]trace.Link, 0, len(batch)-i)
			}
			links = append(links, l)
		}
	}
	_, span := telemetryhooks.StartCommitSpan(j.runCtx, j.tracer, events, links...)
	j.commitBatch(batch)
	committed := 0
	for _, p := range batch {
		if p.committed {
			committed += len(p.records)
		}
	}
	var err error
	if committed == 0 {
		err = errors.New("journal/postgres: no append of the batch was committed")
	} else {
		telemetryhooks.MetricsOf(j.opts.Metrics).ObserveCommit(committed, time.Since(start))
	}
	telemetryhooks.EndSpan(span, err)
	// AppendAsync's done functions run after the batch's slot is given
	// back, so that the next batch is formed and sent while they run
	// (they may be the aggregate runtime's completions); Close waits for
	// them.
	j.deliveries.Add(1)
	defer j.deliveries.Done()
	j.mu.Lock()
	for _, p := range batch {
		delete(j.inFlight, p.stream)
	}
	j.running--
	j.completed++
	j.cond.Broadcast()
	j.mu.Unlock()
	for _, p := range batch {
		if p.cb != nil && p.answered {
			p.cb(p.answer.res, p.answer.err)
		}
	}
}

// selectBatch takes the appends of the next batch from reqs, in order: at
// most one per stream, none of a stream in flight, and at most
// MaxBatchEvents events (but at least one append). The others are
// returned to be carried over. Appends whose caller gave up are dropped.
// j.mu is held.
func (j *Journal) selectBatch(reqs []*pending) (batch, carry []*pending) {
	events := 0
	for _, p := range reqs {
		_, busy := j.inFlight[p.stream]
		if busy || (len(batch) > 0 && events+len(p.records) > j.opts.MaxBatchEvents) {
			carry = append(carry, p)
			continue
		}
		j.unwatchCtx(p)
		if !p.state.cas(stateQueued, stateTaken) {
			continue // abandoned by its caller
		}
		j.inFlight[p.stream] = struct{}{}
		events += len(p.records)
		batch = append(batch, p)
	}
	return batch, carry
}

// commitBatch plans and commits batch, answering every append in it.
//
// The fast path plans against the cached heads and commits with one call
// of journal_append, outside any explicit transaction: one round trip.
// When journal_append reports that another process moved a head or stored
// one of the ids (or a unique violation), nothing was stored and the
// remaining appends take the locked path, which plans under the position
// lock and therefore cannot be raced again.
func (j *Journal) commitBatch(batch []*pending) {
	ctx, cancel := context.WithTimeout(j.runCtx, j.opts.WriteTimeout)
	defer cancel()
	writes, err := j.planBatch(ctx, j.pool, batch)
	if err != nil || len(writes) == 0 {
		return
	}
	first, err := j.insert(ctx, j.pool, writes)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		// Nothing reached the server (a dead pooled connection): retry
		// once on a fresh one.
		first, err = j.insert(ctx, j.pool, writes)
	}
	if err == nil {
		j.succeed(writes, first)
		return
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == codeHeadMoved || pgErr.Code == codeIDStored || pgErr.Code == codeUniqueViol):
		j.commitLocked(ctx, writes)
	case errors.As(err, &pgErr) && statementRolledBack(pgErr):
		j.rejected(writes, err)
	case pgconn.SafeToRetry(err) || noConnection(err):
		// Nothing was sent (twice), or no connection could be made to
		// send it on: nothing is stored.
		j.failAll(writes, j.wrapDB(ctx, "append", err))
	default:
		j.unknown(writes, err)
	}
}

// noConnection reports whether err is a failure to connect: the pool
// could not open a connection, so the statement was never sent.
func noConnection(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// commitLocked commits ps in an explicit transaction that first locks the
// position row, so that no other writer can move a head or store an id
// between the checks and the insert. A failure before COMMIT is sent
// stores nothing (the server rolls back a transaction whose connection
// is lost); only a failed COMMIT leaves the outcome unknown.
func (j *Journal) commitLocked(ctx context.Context, ps []*pending) {
	for _, p := range ps {
		j.forgetHead(p.stream)
	}
	tx, err := j.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		j.failAll(ps, j.wrapDB(ctx, "begin", err))
		return
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, j.sql.lock); err != nil {
		j.failAll(ps, j.wrapDB(ctx, "lock positions", err))
		return
	}
	writes, err := j.planBatch(ctx, tx, ps)
	if err != nil || len(writes) == 0 {
		return
	}
	if err := j.resolveIDs(ctx, tx, writes); err != nil {
		j.failAll(writes, j.wrapDB(ctx, "look up event ids", err))
		return
	}
	writes = stillTaken(writes)
	if len(writes) == 0 {
		return
	}
	for _, p := range writes {
		p.checkIDs = false // verified under the lock
	}
	first, err := j.insert(ctx, tx, writes)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && statementRolledBack(pgErr) {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			j.rejected(writes, err)
			return
		}
		j.failAll(writes, j.wrapDB(ctx, "append", err))
		return
	}
	if err := tx.Commit(ctx); err != nil {
		j.unknown(writes, err)
		return
	}
	j.succeed(writes, first)
}

// planBatch reads the heads of ps's streams missing from the cache,
// answers the appends that conflict or are duplicates, and returns the
// appends to write. On a database error it answers every append of ps and
// returns the error.
func (j *Journal) planBatch(ctx context.Context, q querier, ps []*pending) ([]*pending, error) {
	if err := j.loadHeads(ctx, q, ps); err != nil {
		err = j.wrapDB(ctx, "read stream heads", err)
		j.failAll(ps, err)
		return nil, err
	}
	writes, candidates := j.plan(ps)
	if len(candidates) > 0 {
		if err := j.resolveExact(ctx, q, candidates); err != nil {
			j.failAll(candidates, j.wrapDB(ctx, "read stored events", err))
		}
	}
	return writes, nil
}

// rejected answers writes whose commit the database refused with an
// ERROR: nothing is stored. With several appends, each is retried alone
// so that one poisoned append does not fail the others.
func (j *Journal) rejected(writes []*pending, err error) {
	if len(writes) > 1 {
		for _, p := range writes {
			j.commitBatch([]*pending{p})
		}
		return
	}
	j.failAll(writes, fmt.Errorf("journal/postgres: append to %q: %w", writes[0].stream, err))
}

// unknown answers writes whose commit may or may not have happened.
func (j *Journal) unknown(writes []*pending, err error) {
	for _, p := range writes {
		j.forgetHead(p.stream)
		j.reply(p, journal.AppendResult{}, fmt.Errorf("journal/postgres: append to %q: %w: %w",
			p.stream, orchestrix.ErrOutcomeUnknown, err))
	}
}

// querier is what the writer needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// statementRolledBack reports whether pgErr means the transaction was
// rolled back and nothing was stored: an ERROR of the statement, not a
// FATAL or PANIC that ends the session (which may come after the commit).
func statementRolledBack(pgErr *pgconn.PgError) bool {
	if pgErr.Severity != "ERROR" {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "57", "58", "XX": // connection, operator intervention, system, internal
		return false
	}
	return true
}

// stillTaken returns the appends of ps that have not been answered.
func stillTaken(ps []*pending) []*pending {
	var out []*pending
	for _, p := range ps {
		if p.state.load() == stateTaken {
			out = append(out, p)
		}
	}
	return out
}

// loadHeads reads the heads of the streams of ps missing from the cache.
func (j *Journal) loadHeads(ctx context.Context, q querier, ps []*pending) error {
	var missing []string
	j.headsMu.Lock()
	for _, p := range ps {
		if _, ok := j.heads[p.stream]; !ok {
			missing = append(missing, p.stream)
		}
	}
	j.headsMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, j.sql.heads, missing)
	if err != nil {
		return err
	}
	found := make(map[string]uint64, len(missing))
	var stream string
	var head int64
	if _, err := pgx.ForEachRow(rows, []any{&stream, &head}, func() error {
		found[stream] = uint64(head)
		return nil
	}); err != nil {
		return err
	}
	j.headsMu.Lock()
	defer j.headsMu.Unlock()
	if len(j.heads)+len(missing) > maxCachedHeads {
		clear(j.heads)
	}
	for _, s := range missing {
		j.heads[s] = found[s] // 0 for a stream never written
	}
	return nil
}

// cachedHead returns the cached head of stream (0 when unknown: callers
// load heads first).
func (j *Journal) cachedHead(stream string) uint64 {
	j.headsMu.Lock()
	defer j.headsMu.Unlock()
	return j.heads[stream]
}

func (j *Journal) setHead(stream string, head uint64) {
	j.headsMu.Lock()
	defer j.headsMu.Unlock()
	j.heads[stream] = head
}

// forgetHead drops stream's cached head, so the next batch rereads it.
func (j *Journal) forgetHead(stream string) {
	j.headsMu.Lock()
	defer j.headsMu.Unlock()
	delete(j.heads, stream)
}

// maxCachedHeads bounds the writer's head cache; it is emptied when full.
const maxCachedHeads = 1 << 18

// plan checks each append against the cached head of its stream. Appends
// that conflict are answered; the rest are returned as writes or as
// candidates for an idempotent retry that must be compared with stored
// events.
func (j *Journal) plan(ps []*pending) (writes, candidates []*pending) {
	for _, p := range ps {
		h := j.cachedHead(p.stream)
		p.head = h
		p.checkIDs = false
		if n, exact := p.expected.Exact(); exact {
			switch {
			case n == h:
				writes = append(writes, p)
			case n < h:
				candidates = append(candidates, p)
			default:
				j.conflict(p, h, "")
			}
			continue
		}
		if p.expected.IsStreamExists() && h == 0 {
			j.conflict(p, h, "")
			continue
		}
		p.checkIDs = h > 0 && !p.idsVerified
		writes = append(writes, p)
	}
	return writes, candidates
}

func (j *Journal) conflict(p *pending, actual uint64, reason string) {
	j.reply(p, journal.AppendResult{}, &journal.VersionConflictError{
		Stream: p.stream, Expected: p.expected, Actual: actual, Reason: reason,
	})
}

// storedEvent is a (version, id, position) triple read back for the
// idempotency checks.
type storedEvent struct {
	version  uint64
	id       string
	position uint64
}

// resolveExact answers each NoStream/Exact-below-head append in ps: a
// duplicate when its ids are exactly the stored ids at the versions it
// would have taken, else a conflict.
func (j *Journal) resolveExact(ctx context.Context, q querier, ps []*pending) error {
	b := &pgx.Batch{}
	for _, p := range ps {
		n, _ := p.expected.Exact()
		b.Queue(j.sql.versionRange, p.stream, int64(n+1), int64(n)+int64(len(p.ids)))
	}
	stored := make([][]storedEvent, len(ps))
	br := q.SendBatch(ctx, b)
	for i := range ps {
		rows, err := br.Query()
		if err == nil {
			stored[i], err = scanStored(rows)
		}
		if err != nil {
			_ = br.Close()
			return err
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	for i, p := range ps {
		n, _ := p.expected.Exact()
		byVersion := make(map[uint64]storedEvent, len(stored[i]))
		for _, s := range stored[i] {
			byVersion[s.version] = s
		}
		j.answerOverlap(p, n+1, byVersion)
	}
	return nil
}

// answerOverlap answers p, whose ids are compared with the stored events
// from version from on (journal.MatchIDs): a duplicate when all match,
// otherwise a conflict (partial when some match).
func (j *Journal) answerOverlap(p *pending, from uint64, byVersion map[uint64]storedEvent) {
	m := journal.MatchIDs(len(p.ids), func(i int) bool {
		s, ok := byVersion[from+uint64(i)]
		return ok && s.id == p.ids[i]
	})
	switch m {
	case journal.MatchAll:
		last := from + uint64(len(p.ids)) - 1
		j.reply(p, journal.AppendResult{
			FirstVersion: from, LastVersion: last,
			FirstPosition: byVersion[from].position, LastPosition: byVersion[last].position,
			Duplicate: true,
		}, nil)
	case journal.MatchPartial:
		j.conflict(p, p.head, journal.ReasonPartialMatch)
	default:
		j.conflict(p, p.head, "")
	}
}

// resolveIDs handles journal_append's report that an id of an
// Any/StreamExists append is stored: each such append is looked up and
// answered as a duplicate or a conflict, or marked verified when none of
// its ids is stored.
func (j *Journal) resolveIDs(ctx context.Context, q querier, ps []*pending) error {
	var check []*pending
	b := &pgx.Batch{}
	for _, p := range ps {
		if p.checkIDs {
			check = append(check, p)
			b.Queue(j.sql.byIDs, p.stream, p.ids)
		}
	}
	if len(check) == 0 {
		return nil
	}
	stored := make([][]storedEvent, len(check))
	br := q.SendBatch(ctx, b)
	for i := range check {
		rows, err := br.Query()
		if err == nil {
			stored[i], err = scanStored(rows)
		}
		if err != nil {
			_ = br.Close()
			return err
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	for i, p := range check {
		if len(stored[i]) == 0 {
			p.idsVerified = true
			continue
		}
		from := uint64(0)
		byVersion := make(map[uint64]storedEvent, len(stored[i]))
		for _, s := range stored[i] {
			byVersion[s.version] = s
			if s.id == p.ids[0] && from == 0 {
				from = s.version
			}
		}
		if from == 0 {
			j.conflict(p, p.head, journal.ReasonPartialMatch)
			continue
		}
		j.answerOverlap(p, from, byVersion)
	}
	return nil
}

func scanStored(rows pgx.Rows) ([]storedEvent, error) {
	var out []storedEvent
	var version, position int64
	var id string
	_, err := pgx.ForEachRow(rows, []any{&version, &id, &position}, func() error {
		out = append(out, storedEvent{version: uint64(version), id: id, position: uint64(position)})
		return nil
	})
	return out, err
}

// insert commits writes with one call of journal_append and returns the
// first position of the batch. The parameters are encoded by
// appendParams and sent with the statement prepared once per connection.
func (j *Journal) insert(ctx context.Context, q querier, writes []*pending) (uint64, error) {
	ps := j.getParams()
	defer j.putParams(ps)
	values := ps.encode(j.channel, writes)
	var first uint64
	err := withConn(ctx, q, func(c *pgx.Conn) error {
		sd, err := c.Prepare(ctx, j.sql.append, j.sql.append)
		if err != nil {
			return err
		}
		pc := c.PgConn()
		if ps.wire.reserveOn(pc, bindSize(sd.Name, values)) {
			defer ps.wire.releaseFrom(pc)
		}
		// The statement's description is known: no Describe message.
		rr := pc.ExecStatement(ctx, sd, values, binaryFormats[:], binaryFormats[:1])
		rows := 0
		var got []byte
		for rr.NextRow() {
			rows++
			if vals := rr.Values(); len(vals) == 1 {
				got = vals[0]
			}
			if len(got) == 8 {
				first = binary.BigEndian.Uint64(got)
			}
		}
		if _, err := rr.Close(); err != nil {
			return err
		}
		if rows != 1 || len(got) != 8 {
			return fmt.Errorf("journal_append returned %d rows, first value of %d bytes", rows, len(got))
		}
		return nil
	})
	return first, err
}

// The parameter and message buffers of insert are kept by the Journal
// from batch to batch. A sync.Pool (the way before) loses its items at
// every garbage collection, which runs every few milliseconds under load,
// so the buffers were regrown for most batches (~10 % of the bytes the
// many-aggregates scenario allocated). One set is kept per batch that can
// be in flight, plus a spare (keptParams), each at most maxKeptParamBytes
// (a set that grew past it for a batch of large events is left to the
// garbage collector).
const maxKeptParamBytes = 8 << 20

// keptParams is how many sets of insert's buffers a Journal keeps.
func keptParams(maxInFlight int) int { return max(maxInFlight, soleInFlight) + 1 }

// getParams returns a kept set of buffers, or a new one.
func (j *Journal) getParams() *appendParams {
	select {
	case ps := <-j.params:
		return ps
	default:
		return new(appendParams)
	}
}

// putParams keeps ps for a later batch unless enough are kept or ps is
// too large.
func (j *Journal) putParams(ps *appendParams) {
	if ps.size() > maxKeptParamBytes {
		return
	}
	select {
	case j.params <- ps:
	default:
	}
}

// binaryFormats asks for every parameter (and the result) in binary.
var binaryFormats = [13]int16{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// withConn runs f on q's connection: the transaction's, or one acquired
// from the pool for the call.
func withConn(ctx context.Context, q querier, f func(*pgx.Conn) error) error {
	switch q := q.(type) {
	case pgx.Tx:
		return f(q.Conn())
	case *pgxpool.Pool:
		c, err := q.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		return f(c.Conn())
	}
	return fmt.Errorf("journal/postgres: no connection in a %T", q)
}

// succeed answers the appends of a committed batch whose first event took
// position first.
func (j *Journal) succeed(writes []*pending, first uint64) {
	n := uint64(0)
	for _, p := range writes {
		n += uint64(len(p.ids))
	}
	j.commits.Add(1)
	j.events.Add(n)
	// Before any reply, so that a caller's WaitFor or LastPosition after
	// its Append returns sees at least its own commit.
	j.advance(first + n - 1)
	j.inFlightMax.observe(first, first+n-1)
	pos := first
	for _, p := range writes {
		k := uint64(len(p.ids))
		j.setHead(p.stream, p.head+k)
		p.committed = true
		j.reply(p, journal.AppendResult{
			FirstVersion: p.head + 1, LastVersion: p.head + k,
			FirstPosition: pos, LastPosition: pos + k - 1,
		}, nil)
		pos += k
	}
}

func (j *Journal) failAll(ps []*pending, err error) {
	for _, p := range ps {
		if p.state.load() == stateTaken {
			j.reply(p, journal.AppendResult{}, err)
		}
	}
}

// reply answers p once.
func (j *Journal) reply(p *pending, res journal.AppendResult, err error) {
	if !p.state.cas(stateTaken, stateAnswered) {
		return
	}
	if p.cb == nil {
		p.done <- outcome{res, err}
		return
	}
	// Delivered by runBatch once the batch's slot is free.
	p.answer, p.answered = outcome{res, err}, true
}
