package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// TestAppendParams_Encode_MatchesPgx compares the hand-written encoding of
// journal_append's parameters with pgx's binary encoding of the same
// values as slices (what the writer passed before): byte for byte, for
// batches with and without id checks, NULL times, times with nanoseconds,
// outside UTC and before 2000, empty records and non-ASCII text.
func TestAppendParams_Encode_MatchesPgx(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	one := func(stream string, head uint64, check bool, ids []string, times []time.Time, recs [][]byte) *pending {
		p := &pending{stream: stream, head: head, checkIDs: check, ids: ids, times: times, records: recs}
		p.types = make([]string, len(ids))
		for i := range ids {
			p.types[i] = "type-" + ids[i]
		}
		return p
	}
	batches := map[string][]*pending{
		"one event": {one("s", 0, false, []string{"a"}, []time.Time{time.Date(2026, 12, 7, 18, 0, 0, 123456789, time.UTC)}, [][]byte{{1, 2, 3}})},
		"no check, zero time": {
			one("s1", 4, false, []string{"a", "b"}, []time.Time{{}, time.Date(1999, 12, 31, 23, 59, 59, 999999000, berlin)}, [][]byte{{}, {0xff}}),
			one("strøm-2", 0, false, []string{"ü"}, []time.Time{time.Unix(0, 0)}, [][]byte{make([]byte, 300)}),
		},
		"checks": {
			one("x", 9, true, []string{"i1", "i2", "i3"}, make([]time.Time, 3), [][]byte{{1}, {2}, {3}}),
			one("y", 1, false, []string{"j1"}, []time.Time{time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC)}, [][]byte{{4}}),
			one("z", 2, true, []string{"k1"}, []time.Time{time.Date(1900, 6, 1, 0, 0, 0, 0, time.UTC)}, [][]byte{{5}}),
		},
	}
	m := pgtype.NewMap()
	enc := func(oid uint32, v any) []byte {
		b, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
		require.NoError(t, err)
		return b
	}
	var ps appendParams
	for name, writes := range batches {
		// The old parameter slices, built as the writer built them.
		var streams, chkStreams, chkIDs, evStreams, evIDs, evTypes []string
		var priors, heads, evVersions, evCRCs []int64
		var evTimes []*time.Time
		var evRecords [][]byte
		for _, p := range writes {
			streams = append(streams, p.stream)
			priors = append(priors, int64(p.head))
			heads = append(heads, int64(p.head)+int64(len(p.ids)))
			for k := range p.ids {
				v := p.head + uint64(k) + 1
				if p.checkIDs {
					chkStreams, chkIDs = append(chkStreams, p.stream), append(chkIDs, p.ids[k])
				}
				evStreams, evVersions = append(evStreams, p.stream), append(evVersions, int64(v))
				evIDs, evTypes = append(evIDs, p.ids[k]), append(evTypes, p.types[k])
				if p.times[k].IsZero() {
					evTimes = append(evTimes, nil)
				} else {
					evTimes = append(evTimes, &p.times[k])
				}
				evRecords = append(evRecords, p.records[k])
				evCRCs = append(evCRCs, checksum(p.stream, v, p.records[k]))
			}
		}
		want := [][]byte{
			enc(pgtype.TextOID, "chan"),
			enc(pgtype.TextArrayOID, streams), enc(pgtype.Int8ArrayOID, priors), enc(pgtype.Int8ArrayOID, heads),
			enc(pgtype.TextArrayOID, chkStreams), enc(pgtype.TextArrayOID, chkIDs),
			enc(pgtype.TextArrayOID, evStreams), enc(pgtype.Int8ArrayOID, evVersions),
			enc(pgtype.TextArrayOID, evIDs), enc(pgtype.TextArrayOID, evTypes),
			enc(pgtype.TimestamptzArrayOID, evTimes), enc(pgtype.ByteaArrayOID, evRecords), enc(pgtype.Int8ArrayOID, evCRCs),
		}
		got := ps.encode("chan", writes) // reused buffers: earlier batches must not leak into this one
		require.Len(t, got, len(want), name)
		for i := range want {
			require.Equal(t, want[i], got[i], "%s: parameter $%d", name, i+1)
		}
	}
}
