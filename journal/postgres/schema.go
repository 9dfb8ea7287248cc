package postgres

import (
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
)

// component is the name this package's migrations are recorded under.
const component = "journal"

// SQLSTATEs raised by journal_append.
const (
	codeHeadMoved  = "OX001" // a stream's head is not the one the writer planned with
	codeIDStored   = "OX002" // an Any/StreamExists append's id is already in its stream
	codeIsolation  = "OX003" // called outside READ COMMITTED
	codeUniqueViol = "23505"
)

// migrations are the schema versions of the journal, in order. Never edit
// a released migration; add a new one.
var migrations = []pgmigrate.Migration{
	{Version: 1, SQL: `
CREATE TABLE {{schema}}.journal_position (
	id            boolean PRIMARY KEY DEFAULT true CHECK (id),
	last_position bigint  NOT NULL CHECK (last_position >= 0)
);
INSERT INTO {{schema}}.journal_position (id, last_position) VALUES (true, 0);

CREATE TABLE {{schema}}.journal_streams (
	stream text   PRIMARY KEY,
	head   bigint NOT NULL CHECK (head > 0)
);

CREATE TABLE {{schema}}.journal_events (
	position   bigint      PRIMARY KEY,
	stream     text        NOT NULL,
	version    bigint      NOT NULL CHECK (version > 0),
	event_id   text        NOT NULL,
	type       text        NOT NULL,
	event_time timestamptz,
	record     bytea       NOT NULL,
	crc        bigint      NOT NULL,
	CONSTRAINT journal_events_stream_version UNIQUE (stream, version)
);
CREATE INDEX journal_events_stream_event_id ON {{schema}}.journal_events (stream, event_id);

-- journal_append commits one batch of appends. The caller (the journal's
-- writer) has already checked every append against the heads it read and
-- numbered the events; this function makes that plan safe against other
-- writers and assigns positions in commit order:
--   1. UPDATE journal_position first: the row stays locked until this
--      transaction ends, so every other writer waits here, and positions
--      are handed out in commit order;
--   2. verify each stream's head is p_priors (else OX001, nothing stored);
--   3. verify no id of an Any/StreamExists append is stored in its stream
--      (else OX002, nothing stored);
--   4. insert the events at positions last+1…, update the heads, NOTIFY.
-- It returns the first position of the batch.
CREATE FUNCTION {{schema}}.journal_append(
	p_channel       text,
	p_streams       text[],
	p_priors        bigint[],
	p_heads         bigint[],
	p_check_streams text[],
	p_check_ids     text[],
	p_ev_streams    text[],
	p_ev_versions   bigint[],
	p_ev_ids        text[],
	p_ev_types      text[],
	p_ev_times      timestamptz[],
	p_ev_records    bytea[],
	p_ev_crcs       bigint[]
) RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
	n        bigint := coalesce(cardinality(p_ev_streams), 0);
	last_pos bigint;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'journal_append must run at READ COMMITTED, not %',
			current_setting('transaction_isolation') USING ERRCODE = 'OX003';
	END IF;

	UPDATE {{schema}}.journal_position SET last_position = last_position + n
		WHERE id RETURNING last_position INTO last_pos;

	IF EXISTS (
		SELECT 1 FROM unnest(p_streams, p_priors) AS p(stream, prior)
		LEFT JOIN {{schema}}.journal_streams s ON s.stream = p.stream
		WHERE coalesce(s.head, 0) <> p.prior
	) THEN
		RAISE EXCEPTION 'a stream head moved since the writer read it' USING ERRCODE = 'OX001';
	END IF;

	IF coalesce(cardinality(p_check_ids), 0) > 0 AND EXISTS (
		SELECT 1 FROM unnest(p_check_streams, p_check_ids) AS c(stream, event_id)
		JOIN {{schema}}.journal_events e ON e.stream = c.stream AND e.event_id = c.event_id
	) THEN
		RAISE EXCEPTION 'an event id of the batch is already stored in its stream' USING ERRCODE = 'OX002';
	END IF;

	INSERT INTO {{schema}}.journal_events (position, stream, version, event_id, type, event_time, record, crc)
	SELECT last_pos - n + e.ord, e.stream, e.version, e.event_id, e.type, e.event_time, e.record, e.crc
	FROM unnest(p_ev_streams, p_ev_versions, p_ev_ids, p_ev_types, p_ev_times, p_ev_records, p_ev_crcs)
		WITH ORDINALITY AS e(stream, version, event_id, type, event_time, record, crc, ord);

	INSERT INTO {{schema}}.journal_streams (stream, head)
	SELECT p.stream, p.head FROM unnest(p_streams, p_heads) AS p(stream, head)
	ON CONFLICT (stream) DO UPDATE SET head = EXCLUDED.head;

	PERFORM pg_notify(p_channel, last_pos::text);
	RETURN last_pos - n + 1;
END
$fn$;
`},
	{Version: 2, SQL: `
-- Head updates are HOT updates when the page has room, so they do not
-- touch the primary key index.
ALTER TABLE {{schema}}.journal_streams SET (fillfactor = 50);

-- The index for the id checks is on event_id alone (the queries filter the
-- stream on top): it costs less per inserted event than (stream,
-- event_id), whose inserts are spread over every stream of a batch, and
-- time-ordered ids (UUIDv7) are appended at its right edge.
DROP INDEX {{schema}}.journal_events_stream_event_id;
CREATE INDEX journal_events_event_id ON {{schema}}.journal_events (event_id);

-- journal_append as in version 1, with cheaper head maintenance: the heads
-- of existing streams are checked and moved by one UPDATE (a head that is
-- not p_priors is not updated, and the row count tells), and new streams
-- are inserted (a stream created meanwhile raises a unique violation).
-- Both happen before any event is inserted. Every failure still stores
-- nothing.
CREATE OR REPLACE FUNCTION {{schema}}.journal_append(
	p_channel       text,
	p_streams       text[],
	p_priors        bigint[],
	p_heads         bigint[],
	p_check_streams text[],
	p_check_ids     text[],
	p_ev_streams    text[],
	p_ev_versions   bigint[],
	p_ev_ids        text[],
	p_ev_types      text[],
	p_ev_times      timestamptz[],
	p_ev_records    bytea[],
	p_ev_crcs       bigint[]
) RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
	n        bigint := coalesce(cardinality(p_ev_streams), 0);
	existing bigint := 0;
	moved    bigint;
	last_pos bigint;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'journal_append must run at READ COMMITTED, not %',
			current_setting('transaction_isolation') USING ERRCODE = 'OX003';
	END IF;

	UPDATE {{schema}}.journal_position SET last_position = last_position + n
		WHERE id RETURNING last_position INTO last_pos;

	SELECT count(*) INTO existing FROM unnest(p_priors) AS p(prior) WHERE p.prior > 0;
	IF existing > 0 THEN
		UPDATE {{schema}}.journal_streams s SET head = p.head
			FROM unnest(p_streams, p_priors, p_heads) AS p(stream, prior, head)
			WHERE p.prior > 0 AND s.stream = p.stream AND s.head = p.prior;
		GET DIAGNOSTICS moved = ROW_COUNT;
		IF moved <> existing THEN
			RAISE EXCEPTION 'a stream head moved since the writer read it' USING ERRCODE = 'OX001';
		END IF;
	END IF;
	IF existing < coalesce(cardinality(p_streams), 0) THEN
		INSERT INTO {{schema}}.journal_streams (stream, head)
		SELECT p.stream, p.head FROM unnest(p_streams, p_priors, p_heads) AS p(stream, prior, head)
		WHERE p.prior = 0;
	END IF;

	IF coalesce(cardinality(p_check_ids), 0) > 0 AND EXISTS (
		SELECT 1 FROM unnest(p_check_streams, p_check_ids) AS c(stream, event_id)
		JOIN {{schema}}.journal_events e ON e.stream = c.stream AND e.event_id = c.event_id
	) THEN
		RAISE EXCEPTION 'an event id of the batch is already stored in its stream' USING ERRCODE = 'OX002';
	END IF;

	INSERT INTO {{schema}}.journal_events (position, stream, version, event_id, type, event_time, record, crc)
	SELECT last_pos - n + e.ord, e.stream, e.version, e.event_id, e.type, e.event_time, e.record, e.crc
	FROM unnest(p_ev_streams, p_ev_versions, p_ev_ids, p_ev_types, p_ev_times, p_ev_records, p_ev_crcs)
		WITH ORDINALITY AS e(stream, version, event_id, type, event_time, record, crc, ord);

	PERFORM pg_notify(p_channel, last_pos::text);
	RETURN last_pos - n + 1;
END
$fn$;
`},
}

// Queries, expanded with the schema name at Open.
const (
	sqlAppend = `SELECT {{schema}}.journal_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

	sqlHeads = `SELECT stream, head FROM {{schema}}.journal_streams WHERE stream = ANY($1)`

	sqlHead = `SELECT head FROM {{schema}}.journal_streams WHERE stream = $1`

	sqlVersionRange = `SELECT version, event_id, position FROM {{schema}}.journal_events
		WHERE stream = $1 AND version BETWEEN $2 AND $3 ORDER BY version`

	sqlByIDs = `SELECT version, event_id, position FROM {{schema}}.journal_events
		WHERE stream = $1 AND event_id = ANY($2) ORDER BY version`

	sqlRead = `SELECT position, stream, version, record, crc FROM {{schema}}.journal_events
		WHERE stream = $1 AND version BETWEEN $2 AND $3 ORDER BY version LIMIT $4`

	sqlReadAll = `SELECT position, stream, version, record, crc FROM {{schema}}.journal_events
		WHERE position >= $1 ORDER BY position LIMIT $2`

	sqlDelete = `DELETE FROM {{schema}}.journal_events WHERE stream = $1 AND version <= $2`

	sqlLastPosition = `SELECT last_position FROM {{schema}}.journal_position`

	sqlLock = `SELECT last_position FROM {{schema}}.journal_position FOR UPDATE`
)
