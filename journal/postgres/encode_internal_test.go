package postgres

import (
	"hash/crc32"
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

// benchWrites is a batch of 320 one-event appends to distinct streams, as
// the writer sees under load.
func benchWrites() []*pending {
	writes := make([]*pending, 320)
	rec := make([]byte, 201)
	for i := range writes {
		p := &pending{stream: "bench-" + string(rune('a'+i%26)) + "0000", head: uint64(i)}
		p.ids, p.types, p.times, p.records = p.oneID[:], p.oneType[:], p.oneTime[:], p.oneRecord[:]
		p.ids[0], p.types[0], p.times[0], p.records[0] = "0193a0b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b", "bench.Deposited", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), rec
		writes[i] = p
	}
	return writes
}

// BenchmarkAppendParams compares the hand-written parameter encoding with
// pgx's encoding of the same batch as slices (the writer's path before),
// per event:
//
//	go test ./journal/postgres -run '^$' -bench AppendParams -benchmem
func BenchmarkAppendParams(b *testing.B) {
	writes := benchWrites()
	b.Run("hand", func(b *testing.B) {
		var ps appendParams
		for b.Loop() {
			_ = ps.encode("chan", writes)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(writes)), "ns/event")
	})
	b.Run("pgx", func(b *testing.B) {
		m := pgtype.NewMap()
		var buf []byte
		for b.Loop() {
			n := len(writes)
			streams, evStreams, ids, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			priors, heads, versions, crcs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
			times, recs := make([]*time.Time, n), make([][]byte, n)
			for i, p := range writes {
				streams[i], evStreams[i], ids[i], types[i] = p.stream, p.stream, p.ids[0], p.types[0]
				priors[i], heads[i], versions[i] = int64(p.head), int64(p.head)+1, int64(p.head)+1
				times[i], recs[i], crcs[i] = &p.times[0], p.records[0], checksum(p.stream, p.head+1, p.records[0])
			}
			for _, a := range []struct {
				oid uint32
				v   any
			}{{pgtype.TextArrayOID, streams}, {pgtype.Int8ArrayOID, priors}, {pgtype.Int8ArrayOID, heads},
				{pgtype.TextArrayOID, evStreams}, {pgtype.Int8ArrayOID, versions}, {pgtype.TextArrayOID, ids},
				{pgtype.TextArrayOID, types}, {pgtype.TimestamptzArrayOID, times}, {pgtype.ByteaArrayOID, recs},
				{pgtype.Int8ArrayOID, crcs}} {
				var err error
				if buf, err = m.Encode(a.oid, pgtype.BinaryFormatCode, a.v, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(writes)), "ns/event")
	})
}

// TestChecksum_IsCRC32COfStreamVersionRecord pins the stored checksum's
// definition (records written by earlier versions must still verify):
// CRC-32C of the stream name, the big-endian version and the record, the
// same through a reused scratch buffer as through a fresh one.
func TestChecksum_IsCRC32COfStreamVersionRecord(t *testing.T) {
	var sc crcScratch
	for _, c := range []struct {
		stream  string
		version uint64
		record  []byte
	}{{"s", 1, []byte("x")}, {"a-much-longer-stream-name-ü", 1 << 40, make([]byte, 300)}, {"t", 0, nil}} {
		whole := append([]byte(c.stream), byte(c.version>>56), byte(c.version>>48), byte(c.version>>40), byte(c.version>>32),
			byte(c.version>>24), byte(c.version>>16), byte(c.version>>8), byte(c.version))
		whole = append(whole, c.record...)
		want := int64(crc32.Checksum(whole, crc32.MakeTable(crc32.Castagnoli)))
		require.Equal(t, want, checksum(c.stream, c.version, c.record))
		require.Equal(t, want, sc.checksum(c.stream, c.version, c.record))
	}
}
