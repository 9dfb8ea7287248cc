package postgres

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/journal"
)

// Queries of the inspection methods; {{schema}} is expanded per call.
const (
	// sqlStreamsPage lists streams after a name, in the order of the
	// primary key, with the lowest stored version (NULL when every event
	// was deleted).
	sqlStreamsPage = `SELECT s.stream, s.head, (SELECT min(e.version) FROM {{schema}}.journal_events e WHERE e.stream = s.stream)
		FROM {{schema}}.journal_streams s WHERE s.stream > $1 ORDER BY s.stream LIMIT $2`

	sqlCheckHeads = `SELECT stream, head FROM {{schema}}.journal_streams`

	sqlCheckEvents = `SELECT position, stream, version, event_id, type, event_time, record, crc
		FROM {{schema}}.journal_events ORDER BY stream, version`

	sqlStorageSize = `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r'
		AND c.relname IN ('journal_events', 'journal_streams', 'journal_position')`
)

// streamsPage is how many streams one query of Streams fetches.
const streamsPage = 1000

// Streams lists every stream ever written, ordered by name in the
// database's collation (the order of the primary key). Each page of
// streams is read in its own query; no connection is held while the
// caller consumes a page. DeletedTo is one below the lowest version still
// stored (the head when every event was deleted): the table keeps no
// separate deletion point.
func (j *Journal) Streams(ctx context.Context) iter.Seq2[journal.StreamInfo, error] {
	return func(yield func(journal.StreamInfo, error) bool) {
		if err := j.check(ctx); err != nil {
			yield(journal.StreamInfo{}, err)
			return
		}
		query := pgmigrate.Expand(sqlStreamsPage, j.schema)
		after := ""
		for {
			rows, err := j.pool.Query(ctx, query, after, streamsPage)
			if err != nil {
				yield(journal.StreamInfo{}, j.wrapDB(ctx, "list streams", err))
				return
			}
			var page []journal.StreamInfo
			for rows.Next() {
				var (
					name   string
					head   int64
					lowest *int64
				)
				if err := rows.Scan(&name, &head, &lowest); err != nil {
					rows.Close()
					yield(journal.StreamInfo{}, j.wrapDB(ctx, "list streams", err))
					return
				}
				info := journal.StreamInfo{Name: name, Head: uint64(head), DeletedTo: uint64(head)}
				if lowest != nil {
					info.DeletedTo = uint64(*lowest) - 1
				}
				page = append(page, info)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield(journal.StreamInfo{}, j.wrapDB(ctx, "list streams", err))
				return
			}
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if len(page) < streamsPage {
				return
			}
			after = page[len(page)-1].Name
		}
	}
}

// StorageSize returns the bytes the journal's tables take on disk,
// indexes and TOAST included.
func (j *Journal) StorageSize(ctx context.Context) (int64, error) {
	if err := j.check(ctx); err != nil {
		return 0, err
	}
	var n int64
	if err := j.pool.QueryRow(ctx, sqlStorageSize, j.schema).Scan(&n); err != nil {
		return 0, j.wrapDB(ctx, "storage size", err)
	}
	return n, nil
}

// Check verifies the journal's tables in one read-only REPEATABLE READ
// transaction (one consistent snapshot; appends proceed meanwhile); see
// journal.Checker. Besides each record's CRC and encoding and each
// stream's versions it verifies that the event_id, type and event_time
// columns (used by idempotent retries) agree with the stored event, that
// every stream with events has a journal_streams row whose head is its
// highest version, and that no position is above journal_position.
//
// Deletion removes a stream's lowest versions and records no deletion
// point, so a stream's versions are checked from its lowest stored
// version on, and a stream whose events are all gone cannot be told
// from one whose rows were lost.
func (j *Journal) Check(ctx context.Context) (journal.CheckReport, error) {
	if err := j.check(ctx); err != nil {
		return journal.CheckReport{}, err
	}
	tx, err := j.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return journal.CheckReport{}, j.wrapDB(ctx, "check", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rep, err := j.checkTx(ctx, tx)
	if err != nil {
		return journal.CheckReport{}, j.wrapDB(ctx, "check", err)
	}
	return rep, nil
}

// pgStream is what the check learns about one stream.
type pgStream struct {
	name        string
	head        int64
	known       bool
	first, last uint64 // lowest and highest version seen
	lastPos     uint64
}

func (j *Journal) checkTx(ctx context.Context, tx pgx.Tx) (journal.CheckReport, error) {
	var rep journal.CheckReport
	add := func(stream string, version, pos uint64, format string, args ...any) {
		rep.Add(journal.Problem{Stream: stream, Version: version, Position: pos, Detail: fmt.Sprintf(format, args...)})
	}
	var last int64
	if err := tx.QueryRow(ctx, j.sql.lastPosition).Scan(&last); err != nil {
		return rep, err
	}
	rep.LastPosition = uint64(last)

	streams := make(map[string]*pgStream)
	rows, err := tx.Query(ctx, pgmigrate.Expand(sqlCheckHeads, j.schema))
	if err != nil {
		return rep, err
	}
	for rows.Next() {
		st := &pgStream{known: true}
		if err := rows.Scan(&st.name, &st.head); err != nil {
			rows.Close()
			return rep, err
		}
		streams[st.name] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, err
	}
	rep.Streams = len(streams)

	// finish checks a stream once all its rows have been seen.
	finish := func(st *pgStream) {
		switch {
		case !st.known:
			add(st.name, st.last, st.lastPos, "stream has events but no journal_streams row")
		case st.last > uint64(st.head):
			add(st.name, st.last, st.lastPos, "head %d in journal_streams is below this stored version", st.head)
		case st.last < uint64(st.head):
			add(st.name, st.last+1, 0, "versions %d..%d are missing: the head is %d but the highest stored version is %d",
				st.last+1, st.head, st.head, st.last)
		}
	}

	rows, err = tx.Query(ctx, pgmigrate.Expand(sqlCheckEvents, j.schema))
	if err != nil {
		return rep, err
	}
	defer rows.Close()
	var cur *pgStream
	for rows.Next() {
		var (
			position, version, crc int64
			stream, id, typ        string
			eventTime              *time.Time
			record                 []byte
		)
		if err := rows.Scan(&position, &stream, &version, &id, &typ, &eventTime, &record, &crc); err != nil {
			return rep, err
		}
		rep.Records++
		if rep.Records%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
		}
		pos, ver := uint64(position), uint64(version)
		if cur == nil || cur.name != stream {
			if cur != nil {
				finish(cur)
			}
			cur = streams[stream]
			if cur == nil {
				cur = &pgStream{name: stream}
				streams[stream] = cur
				rep.Streams++
			}
			cur.first, cur.last = ver, ver-1
		}
		if ver != cur.last+1 {
			add(stream, cur.last+1, pos, "versions %d..%d are missing: the next stored version is %d, at position %d",
				cur.last+1, ver-1, ver, pos)
		}
		cur.last, cur.lastPos = ver, pos
		if position > last {
			add(stream, ver, pos, "position is above journal_position's last position %d", last)
		}
		if got := checksum(stream, ver, record); got != crc {
			add(stream, ver, pos, "checksum mismatch: stored %08x, computed %08x", uint32(crc), uint32(got))
			continue
		}
		var env orchestrix.Envelope
		if err := env.UnmarshalBinary(record); err != nil {
			add(stream, ver, pos, "event does not decode: %v", err)
			continue
		}
		if env.ID != id {
			add(stream, ver, pos, "event_id column %q differs from the event's id %q", id, env.ID)
		}
		if env.Type != typ {
			add(stream, ver, pos, "type column %q differs from the event's type %q", typ, env.Type)
		}
		switch {
		case eventTime == nil && !env.Time.IsZero():
			add(stream, ver, pos, "event_time column is NULL but the event's time is %s", env.Time.Format(time.RFC3339Nano))
		case eventTime != nil && (env.Time.Sub(*eventTime).Abs() >= time.Microsecond || env.Time.IsZero()):
			add(stream, ver, pos, "event_time column %s differs from the event's time %s",
				eventTime.Format(time.RFC3339Nano), env.Time.Format(time.RFC3339Nano))
		}
	}
	if err := rows.Err(); err != nil {
		return rep, err
	}
	if cur != nil {
		finish(cur)
	}
	return rep, nil
}

// Interface checks.
var (
	_ journal.StreamLister = (*Journal)(nil)
	_ journal.Checker      = (*Journal)(nil)
)
