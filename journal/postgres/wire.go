package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// A batch's Bind message is tens to hundreds of kilobytes (~260 bytes per
// event). pgx encodes every outgoing message into its frontend's write
// buffer, growing it by appending, and replaces that buffer with a new
// 1 KiB one after each flush that sent more than 1 KiB. So every batch
// regrew the buffer from 1 KiB by doubling: seven or eight allocations
// and copies adding up to about twice the message (CPU profile of the
// many-aggregates scenario: 4.6 % of the client's CPU in Bind.Encode, most
// of it growslice).
//
// wireRoom avoids that without changing how the statement is executed:
// just before ExecStatement, it sends the frontend a message that
// encodes to nothing but moves the frontend's pending bytes into a buffer
// of the batch slot that already has room for the whole batch. pgx then
// appends Bind, Execute and Sync into it, writes it, and (the message
// being over 1 KiB) drops it for a new buffer of its own. Only once the
// frontend no longer holds the buffer — checked after the call by a
// second message that only looks at the buffer it is given — is it
// reused for the next batch; otherwise it is left to the garbage
// collector.

// wireRoom is the frontend message that hands buf to the frontend.
type wireRoom struct{ buf []byte }

func (*wireRoom) Frontend() {}

func (*wireRoom) Decode([]byte) error { return errors.New("journal/postgres: wireRoom is not decoded") }

// Encode returns dst's bytes (normally none) in buf.
func (r *wireRoom) Encode(dst []byte) ([]byte, error) { return append(r.buf[:0], dst...), nil }

// wireProbe is the frontend message that checks whether the frontend
// still writes into buf.
type wireProbe struct {
	buf  []byte
	held bool
}

func (*wireProbe) Frontend() {}

func (*wireProbe) Decode([]byte) error {
	return errors.New("journal/postgres: wireProbe is not decoded")
}

// Encode appends nothing; it records whether dst shares buf's memory.
func (p *wireProbe) Encode(dst []byte) ([]byte, error) {
	p.held = sameArray(dst, p.buf)
	return dst, nil
}

// sameArray reports whether a and b start at the same array element.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0]
}

// wireBuffer is a batch slot's buffer for the outgoing messages.
type wireBuffer struct{ buf []byte }

// minWireRoom is the smallest message worth handing over: pgx keeps a
// buffer of at most 1 KiB after a flush, so a smaller one would stay with
// the frontend.
const minWireRoom = 4 << 10

// bindSize is an upper bound of the bytes ExecStatement sends for a
// statement named name with values (Bind with one format code per value
// and one result format, Execute, Sync).
func bindSize(name string, values [][]byte) int {
	n := 64 + len(name) + 2*len(values)
	for _, v := range values {
		n += 4 + len(v)
	}
	return n
}

// reserve gives the frontend fe (a PgConn's) a buffer with room for size bytes, if
// size is large enough to be worth it. It returns whether it did.
func (w *wireBuffer) reserve(fe *pgproto3.Frontend, size int) bool {
	if size < minWireRoom {
		return false
	}
	if cap(w.buf) < size {
		w.buf = make([]byte, 0, size+size/4)
	}
	fe.Send(&wireRoom{buf: w.buf})
	return true
}

// release checks, after the messages were sent, that fe no longer holds the buffer; if it does (the call ended before its
// flush), the buffer is given up to it.
func (w *wireBuffer) release(fe *pgproto3.Frontend) {
	p := wireProbe{buf: w.buf, held: true}
	fe.Send(&p)
	if p.held {
		w.buf = nil
	}
}

// reserveOn is reserve on pc's frontend, skipped on a closed connection:
// pgx closes a broken connection in a goroutine of its own that sends a
// last message through the frontend.
func (w *wireBuffer) reserveOn(pc *pgconn.PgConn, size int) bool {
	return !pc.IsClosed() && w.reserve(pc.Frontend(), size)
}

// releaseFrom is release on pc's frontend after a reserveOn. If the call
// broke the connection, pgx's closing goroutine may be using the
// frontend, so it is left alone and the buffer given up.
func (w *wireBuffer) releaseFrom(pc *pgconn.PgConn) {
	if pc.IsClosed() {
		w.buf = nil
		return
	}
	w.release(pc.Frontend())
}
