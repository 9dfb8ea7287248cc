package postgres

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A Bind of a batch goes out of the slot's buffer, the frontend lets it go
// after its flush, and the next batch reuses it; if the frontend still
// holds it (the call ended before flushing), the slot gives it up.
func TestWireBuffer_HandedOverAndReclaimed(t *testing.T) {
	var out bytes.Buffer
	fe := pgproto3.NewFrontend(bytes.NewReader(nil), &out)
	values := [][]byte{[]byte("ch"), bytes.Repeat([]byte{7}, 20000)}
	bind := &pgproto3.Bind{PreparedStatement: "s", ParameterFormatCodes: []int16{1}, Parameters: values, ResultFormatCodes: []int16{1}}
	size := bindSize("s", values)

	var w wireBuffer
	for round := range 3 {
		if !w.reserve(fe, size) {
			t.Fatalf("round %d: a %d-byte batch was not given room", round, size)
		}
		buf := w.buf
		fe.SendBind(bind)
		fe.SendExecute(&pgproto3.Execute{})
		fe.SendSync(&pgproto3.Sync{})
		if p := (wireProbe{buf: buf}); func() bool { fe.Send(&p); return !p.held }() {
			t.Fatalf("round %d: pgx encoded the batch into a buffer of its own", round)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		w.release(fe)
		if !sameArray(w.buf, buf) {
			t.Fatalf("round %d: the buffer was not kept for the next batch", round)
		}
		if cap(w.buf) < size {
			t.Fatalf("round %d: buffer of %d bytes for a %d-byte batch", round, cap(w.buf), size)
		}
	}
	// What went out is exactly what pgx sends without the hand-over.
	var want bytes.Buffer
	plain := pgproto3.NewFrontend(bytes.NewReader(nil), &want)
	for range 3 {
		plain.SendBind(bind)
		plain.SendExecute(&pgproto3.Execute{})
		plain.SendSync(&pgproto3.Sync{})
		if err := plain.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("sent %d bytes, pgx alone sends %d (or they differ)", out.Len(), want.Len())
	}

	// Not flushed: the frontend still writes into the buffer, so the slot
	// must not reuse it.
	w.reserve(fe, size)
	held := w.buf
	fe.SendBind(bind)
	w.release(fe)
	if w.buf != nil || sameArray(w.buf, held) {
		t.Fatal("a buffer the frontend still holds was kept for reuse")
	}

	// Small batches keep pgx's own buffer.
	if w.reserve(pgproto3.NewFrontend(bytes.NewReader(nil), io.Discard), 100) {
		t.Fatal("a 100-byte batch was given a buffer of its own")
	}
}

// BenchmarkBindMessage encodes and writes one batch's Bind, Execute and
// Sync as insert does, through pgx's frontend alone ("pgx": its write
// buffer regrows from 1 KiB for every batch) and with the batch slot's
// buffer handed over ("slot"). Run with
//
//	go test ./journal/postgres -run '^$' -bench BindMessage -benchmem
func BenchmarkBindMessage(b *testing.B) {
	writes := benchWrites()
	var ps appendParams
	values := ps.encode("chan", writes)
	for _, slot := range []bool{false, true} {
		name := map[bool]string{false: "pgx", true: "slot"}[slot]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			fe := pgproto3.NewFrontend(bytes.NewReader(nil), io.Discard)
			var w wireBuffer
			for b.Loop() {
				reserved := slot && w.reserve(fe, bindSize("s", values))
				fe.SendBind(&pgproto3.Bind{PreparedStatement: "s", ParameterFormatCodes: binaryFormats[:],
					Parameters: values, ResultFormatCodes: binaryFormats[:1]})
				fe.SendExecute(&pgproto3.Execute{})
				fe.SendSync(&pgproto3.Sync{})
				if err := fe.Flush(); err != nil {
					b.Fatal(err)
				}
				if reserved {
					w.release(fe)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(writes)), "ns/event")
		})
	}
}

// insert's buffers are kept by the Journal from batch to batch (a
// sync.Pool loses them at every collection): as many sets as batches can
// be in flight plus one, never one that grew past maxKeptParamBytes.
func TestParams_KeptBetweenBatches(t *testing.T) {
	j := &Journal{params: make(chan *appendParams, keptParams(0))}
	var sets []*appendParams
	for range keptParams(0) + 1 {
		sets = append(sets, j.getParams())
	}
	for _, ps := range sets {
		ps.arrays[0].buf = make([]byte, 0, 1000)
		j.putParams(ps)
	}
	runtime.GC()
	for i := range keptParams(0) {
		if got := j.getParams(); got != sets[i] {
			t.Fatalf("set %d of buffers was not kept for the next batch", i)
		}
	}
	if got := j.getParams(); got == sets[len(sets)-1] {
		t.Fatal("more sets kept than batches can be in flight plus one")
	}
	big := j.getParams()
	big.wire.buf = make([]byte, 0, maxKeptParamBytes+1)
	j.putParams(big)
	if got := j.getParams(); got == big {
		t.Fatal("a set larger than maxKeptParamBytes was kept")
	}
	if keptParams(4) != 5 {
		t.Fatalf("MaxInFlight 4 keeps %d sets, want 5", keptParams(4))
	}
}
