// Package boltsafe keeps a damaged bbolt file from crashing the process.
//
// bbolt trusts the pages it reads: a flipped byte in a page header or an
// element offset makes it index out of range, fail an assertion or read
// outside its memory map, and some of that happens on goroutines bbolt
// starts itself (the free-page scan of Open when the free list is not
// persisted, Tx.Check), where no caller can recover. This package offers
// two defences, used by every bbolt file the project writes:
//
//   - Verify walks the file's structure with bounds checks of its own,
//     reading the file with pread (runs of consecutive pages at once, up
//     to 4 goroutines) and never through bbolt, and reports the first
//     page that is wrong: the meta pages, every page reachable from the
//     root, and the persisted free list.
//   - Do runs bbolt calls and turns a panic raised inside bbolt (and only
//     inside bbolt) into an error matching orchestrix.ErrCorrupt.
package boltsafe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/orchestrix/orchestrix"
)

// CorruptError describes a damaged bbolt file. It matches
// orchestrix.ErrCorrupt.
type CorruptError struct {
	// Path is the file.
	Path string
	// Page is the page found wrong; -1 when no page applies.
	Page int64
	// Reason says what is wrong.
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Page < 0 {
		return fmt.Sprintf("%s: damaged bbolt file: %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("%s: damaged bbolt file: page %d: %s", e.Path, e.Page, e.Reason)
}

// Is makes errors.Is(err, orchestrix.ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == orchestrix.ErrCorrupt }

// On-disk layout of bbolt (go.etcd.io/bbolt/internal/common), as written
// by bbolt v1.3 and later.
const (
	pageHeaderSize = 16
	elementSize    = 16 // branch and leaf elements are both 16 bytes
	bucketHdrSize  = 16 // root page id and sequence

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10

	leafBucket = 0x01

	magic        = 0xED0CDAED
	version      = 2
	metaSize     = 64
	noFreelist   = ^uint64(0)
	minPageSize  = 512
	maxPageSize  = 1 << 20
	maxTreeDepth = 64
)

// Meta is what Verify learned from the file's valid meta page.
type Meta struct {
	PageSize int
	Root     uint64 // root bucket's page
	Freelist uint64 // the free-list page, or ^0 when it is not persisted
	HighMark uint64 // pages below it are in use or free
	TxID     uint64
}

// FreelistSynced reports whether the file has a persisted free list, so
// bbolt.Open reads it instead of scanning every page.
func (m Meta) FreelistSynced() bool { return m.Freelist != noFreelist }

// Verify checks the bbolt file at path: its meta pages, every page
// reachable from the root bucket and the persisted free list, if any. A
// file that does not exist or is empty is fine (bbolt creates it). It
// returns the meta page it trusts, or a *CorruptError naming the page
// that is wrong. Its cost grows with the file: it reads every page once
// (BENCHMARKS.md, issue 12: about 0.5 s of CPU for 2.4 GiB, page cache
// warm).
func Verify(path string) (Meta, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, nil
	}
	if err != nil {
		return Meta{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Meta{}, err
	}
	if st.IsDir() {
		return Meta{}, &fs.PathError{Op: "open", Path: path, Err: errors.New("is a directory, not a bbolt file")}
	}
	if st.Size() == 0 {
		return Meta{}, nil
	}
	w := &walker{r: readerAt{f}, f: f, size: st.Size(), path: path}
	m, err := w.meta()
	if err != nil {
		return Meta{}, err
	}
	w.m = m
	w.seen = make([]atomic.Uint64, (m.HighMark+63)/64)
	w.helpers = make(chan struct{}, walkHelpers())
	w.node(&walkState{}, m.Root, 0, nil)
	w.wg.Wait()
	if err := w.failure(); err != nil {
		return m, err
	}
	if m.FreelistSynced() {
		if err := w.freelist(); err != nil {
			return m, err
		}
	}
	return m, nil
}

// walker walks the tree of a bbolt file. The walk of a subtree may run
// on a helper goroutine (at most cap(helpers) at a time, besides the
// caller's): the source is read-only, seen is updated atomically, and the
// first error found stops every walker.
type walker struct {
	r    source   // the meta pages, the free list, Salvage's pages
	f    *os.File // the pages Verify walks
	size int64
	path string
	m    Meta
	// seen has one bit per page: reached from the root (with its
	// overflow pages).
	seen []atomic.Uint64

	helpers chan struct{} // a token per running helper goroutine
	wg      sync.WaitGroup
	failed  atomic.Bool
	errMu   sync.Mutex
	err     error
}

// walkHelpers is the number of goroutines that may walk subtrees beside
// the caller's: one per further processor, at most 3. With the page
// cache warm the walk's cost is copying every page out of it, which
// runs in parallel.
func walkHelpers() int { return min(runtime.GOMAXPROCS(0)-1, 3) }

func (w *walker) corrupt(page int64, format string, args ...any) error {
	return &CorruptError{Path: w.path, Page: page, Reason: fmt.Sprintf(format, args...)}
}

// fail records err as the walk's outcome unless an error came first, and
// stops the other walkers.
func (w *walker) fail(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
	w.failed.Store(true)
}

func (w *walker) failure() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// meta reads both meta pages and returns the valid one with the higher
// transaction id, as bbolt does.
func (w *walker) meta() (Meta, error) {
	const n = pageHeaderSize + metaSize
	hdr, err := w.r.slice(0, n)
	if err != nil {
		return Meta{}, w.corrupt(0, "file too short for a meta page (%d bytes)", w.size)
	}
	m0, err0 := parseMeta(hdr, 0)
	pageSize := m0.PageSize
	if err0 != nil {
		// Meta page 0 is damaged: find page 1 at the usual sizes.
		pageSize = 0
		for ps := 4096; ps <= 64<<10; ps *= 2 {
			hdr, err := w.r.slice(int64(ps), n)
			if err != nil {
				break
			}
			if m, err := parseMeta(hdr, 1); err == nil && m.PageSize == ps {
				pageSize = ps
				break
			}
		}
		if pageSize == 0 {
			return Meta{}, w.corrupt(0, "%v, and no valid meta page 1 was found", err0)
		}
	}
	if w.size < int64(2*pageSize) {
		return Meta{}, w.corrupt(-1, "file of %d bytes is shorter than its two meta pages", w.size)
	}
	hdr, err = w.r.slice(int64(pageSize), n)
	if err != nil {
		return Meta{}, err
	}
	m1, err1 := parseMeta(hdr, 1)
	if err1 == nil && m1.PageSize != pageSize {
		err1 = fmt.Errorf("page size %d differs from meta page 0's %d", m1.PageSize, pageSize)
	}
	var m Meta
	switch {
	case err0 != nil && err1 != nil:
		return Meta{}, w.corrupt(0, "both meta pages are damaged: %v; page 1: %v", err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil:
		m = m0
	case m1.TxID > m0.TxID:
		m = m1
	default:
		m = m0
	}
	if m.HighMark < 3 || m.HighMark > uint64(w.size)/uint64(m.PageSize) {
		return Meta{}, w.corrupt(-1, "meta page claims %d pages, the file holds %d", m.HighMark, uint64(w.size)/uint64(m.PageSize))
	}
	if m.Root < 2 || m.Root >= m.HighMark {
		return Meta{}, w.corrupt(-1, "root bucket page %d outside 2..%d", m.Root, m.HighMark-1)
	}
	if m.FreelistSynced() && (m.Freelist < 2 || m.Freelist >= m.HighMark) {
		return Meta{}, w.corrupt(-1, "free-list page %d outside 2..%d", m.Freelist, m.HighMark-1)
	}
	return m, nil
}

func parseMeta(b []byte, id uint64) (Meta, error) {
	le := binary.LittleEndian
	if got := le.Uint64(b[0:]); got != id {
		return Meta{}, fmt.Errorf("meta page identifies as page %d", got)
	}
	if le.Uint16(b[8:])&flagMeta == 0 {
		return Meta{}, fmt.Errorf("not a meta page (flags %#x)", le.Uint16(b[8:]))
	}
	mb := b[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(mb[:metaSize-8])
	if h.Sum64() != le.Uint64(mb[56:]) {
		return Meta{}, errors.New("meta page checksum mismatch")
	}
	if le.Uint32(mb[0:]) != magic || le.Uint32(mb[4:]) != version {
		return Meta{}, errors.New("not a bbolt file (magic or version)")
	}
	m := Meta{
		PageSize: int(le.Uint32(mb[8:])),
		Root:     le.Uint64(mb[16:]),
		Freelist: le.Uint64(mb[32:]),
		HighMark: le.Uint64(mb[40:]),
		TxID:     le.Uint64(mb[48:]),
	}
	if m.PageSize < minPageSize || m.PageSize > maxPageSize || m.PageSize&(m.PageSize-1) != 0 {
		return Meta{}, fmt.Errorf("invalid page size %d", m.PageSize)
	}
	return m, nil
}

// page reads page id with its overflow pages and checks its header.
func (w *walker) page(id uint64, wantFlags uint16) ([]byte, error) {
	if id < 2 || id >= w.m.HighMark {
		return nil, w.corrupt(int64(id), "page id outside 2..%d", w.m.HighMark-1)
	}
	ps := uint64(w.m.PageSize)
	hdr, err := w.r.slice(int64(id*ps), pageHeaderSize)
	if err != nil {
		return nil, w.corrupt(int64(id), "cannot read: %v", err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr[0:]); got != id {
		return nil, w.corrupt(int64(id), "page identifies as page %d", got)
	}
	flags := le.Uint16(hdr[8:])
	if flags&wantFlags == 0 || flags&^(flagBranch|flagLeaf|flagMeta|flagFreelist) != 0 {
		return nil, w.corrupt(int64(id), "unexpected page type (flags %#x)", flags)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if overflow >= w.m.HighMark-id {
		return nil, w.corrupt(int64(id), "%d overflow pages run past the last page %d", overflow, w.m.HighMark-1)
	}
	buf, err := w.r.slice(int64(id*ps), int((overflow+1)*ps))
	if err != nil {
		return nil, w.corrupt(int64(id), "cannot read %d pages: %v", overflow+1, err)
	}
	return buf, nil
}

// pageRef is a page being checked: its first bytes are in head, the rest
// is read from the file when needed.
type pageRef struct {
	id   int64  // the page named in errors
	off  int64  // file offset of the page; -1 for an inline page (all in head)
	size uint64 // bytes of the page with its overflow pages
	head []byte
}

// at returns n bytes at offset at of the page (at+n <= p.size).
func (w *walker) at(p *pageRef, at, n uint64) ([]byte, error) {
	if at+n <= uint64(len(p.head)) {
		return p.head[at : at+n : at+n], nil
	}
	b := make([]byte, n)
	if _, err := w.f.ReadAt(b, p.off+int64(at)); err != nil {
		return nil, w.corrupt(p.id, "cannot read %d bytes at offset %d: %v", n, at, err)
	}
	return b, nil
}

// headRead is the most the walk reads of a page at first: the whole
// page up to 64 KiB, overflow pages aside. One read of a whole page
// costs less than a read of its start and another of a key further in
// (measured: 63 against 84 ms for 1 M events' pages of 16 KiB).
const headRead = 64 << 10

// walkState is what one walking goroutine owns: per tree level, a
// buffer and a read-ahead window for the pages it reads (a page's bytes
// stay valid while its children, one level deeper, are walked).
type walkState struct {
	bufs [][]byte
	wins []window
}

// window holds pages first … first+n-1 read with one pread. Reading a
// run of consecutive pages at once (the leaves of an append-mostly
// bucket such as the journal's log) halves the cost per page; the window
// grows while a level's pages come in order and shrinks to one page
// when they do not, so scattered pages are not read in bulk.
type window struct {
	first, n uint64
	want     uint64 // pages to read next time
	b        []byte
}

// maxWindow is the most a window reads at once.
const maxWindow = 256 << 10

// pageBytes returns the first min(page size, headRead) bytes of page id
// (id < HighMark), from the window of depth, which it refills when id is
// not in it.
func (st *walkState) pageBytes(w *walker, depth int, id uint64) ([]byte, error) {
	for len(st.wins) <= depth {
		st.wins = append(st.wins, window{want: 1})
	}
	win := &st.wins[depth]
	ps := uint64(w.m.PageSize)
	n := min(ps, headRead)
	if id >= win.first && id < win.first+win.n {
		at := (id - win.first) * ps
		return win.b[at : at+n : at+n], nil
	}
	switch {
	case win.n > 0 && id == win.first+win.n:
		win.want = min(win.want*2, max(maxWindow/ps, 1))
	default:
		win.want = 1
	}
	pages := min(win.want, w.m.HighMark-id)
	size := int((pages-1)*ps + n)
	if cap(win.b) < size {
		win.b = make([]byte, size, max(size, int(min(maxWindow, ps*(maxWindow/ps)))))
	}
	win.b = win.b[:size]
	if _, err := w.f.ReadAt(win.b, int64(id*ps)); err != nil {
		win.n = 0
		return nil, err
	}
	win.first, win.n = id, pages
	return win.b[:n:n], nil
}

func (st *walkState) buf(depth, n int) []byte {
	for len(st.bufs) <= depth {
		st.bufs = append(st.bufs, nil)
	}
	if cap(st.bufs[depth]) < n {
		st.bufs[depth] = make([]byte, n)
	}
	return st.bufs[depth][:n]
}

// readPage reads page id (up to headRead bytes, more when its element
// array is longer; overflow pages on demand) through the goroutine's
// window or buffer for depth, and checks its header. It reads with pread
// rather than through a memory map: touching every page of a large map
// cost twice the CPU here (page faults; BENCHMARKS.md, issue 12).
func (w *walker) readPage(st *walkState, id uint64, depth int) (*pageRef, error) {
	if id < 2 || id >= w.m.HighMark {
		return nil, w.corrupt(int64(id), "page id outside 2..%d", w.m.HighMark-1)
	}
	ps := uint64(w.m.PageSize)
	off := int64(id * ps)
	head, err := st.pageBytes(w, depth, id)
	if err != nil {
		return nil, w.corrupt(int64(id), "cannot read: %v", err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(head[0:]); got != id {
		return nil, w.corrupt(int64(id), "page identifies as page %d", got)
	}
	flags := le.Uint16(head[8:])
	if flags&(flagBranch|flagLeaf) == 0 || flags&^(flagBranch|flagLeaf|flagMeta|flagFreelist) != 0 {
		return nil, w.corrupt(int64(id), "unexpected page type (flags %#x)", flags)
	}
	overflow := uint64(le.Uint32(head[12:]))
	if overflow >= w.m.HighMark-id {
		return nil, w.corrupt(int64(id), "%d overflow pages run past the last page %d", overflow, w.m.HighMark-1)
	}
	p := &pageRef{id: int64(id), off: off, size: (overflow + 1) * ps, head: head}
	if count := uint64(le.Uint16(head[10:])); pageHeaderSize+count*elementSize > uint64(len(head)) {
		// A page of many elements: their keys fill it, read it whole.
		n := min(p.size, pageHeaderSize+count*elementSize+ps)
		if n > uint64(len(head)) {
			p.head = st.buf(depth, int(n))
			copy(p.head, head)
			if _, err := w.f.ReadAt(p.head[len(head):], off+int64(len(head))); err != nil {
				return nil, w.corrupt(int64(id), "cannot read: %v", err)
			}
		}
	}
	return p, nil
}

// markPages records pages id … id+n-1 as reachable (readPage checked
// they lie below HighMark).
func (w *walker) markPages(id, n uint64) error {
	for i := range n {
		word, bit := &w.seen[(id+i)/64], uint64(1)<<((id+i)%64)
		if word.Or(bit)&bit != 0 {
			return w.corrupt(int64(id+i), "page referenced twice")
		}
	}
	return nil
}

// mark records pages id … id+overflow, held in p, as reachable.
func (w *walker) mark(id uint64, p []byte) error {
	return w.markPages(id, uint64(len(p)/w.m.PageSize))
}

// isSeen reports whether page id was reached from the root.
func (w *walker) isSeen(id uint64) bool {
	return w.seen[id/64].Load()&(1<<(id%64)) != 0
}

// node walks page id and its children, and records the first error
// found (fail). lower is the smallest key the page may hold (the branch
// key that points at it), nil for none. It returns whether the page is a
// branch page.
func (w *walker) node(st *walkState, id uint64, depth int, lower []byte) (branch bool) {
	if w.failed.Load() {
		return false
	}
	if depth > maxTreeDepth {
		w.fail(w.corrupt(int64(id), "tree deeper than %d levels", maxTreeDepth))
		return false
	}
	p, err := w.readPage(st, id, depth)
	if err == nil {
		err = w.markPages(id, p.size/uint64(w.m.PageSize))
	}
	if err == nil {
		branch = binary.LittleEndian.Uint16(p.head[8:]) == flagBranch
		err = w.elements(st, p, depth, lower)
	}
	if err != nil {
		w.fail(err)
	}
	return branch
}

// child walks the subtree at page id, on a helper goroutine when spawn
// is set and a helper is free, on the caller's otherwise. It returns
// whether the page is a branch page (false when it went to a helper).
func (w *walker) child(st *walkState, id uint64, depth int, lower []byte, spawn bool) bool {
	if !spawn {
		return w.node(st, id, depth, lower)
	}
	select {
	case w.helpers <- struct{}{}:
		// lower lies in a buffer of st, which the caller reuses.
		lower = bytes.Clone(lower)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer func() { <-w.helpers }()
			w.node(&walkState{}, id, depth, lower)
		}()
		return false
	default:
		return w.node(st, id, depth, lower)
	}
}

// elements checks the elements of a branch or leaf page (read from the
// file, or an inline bucket's page) and walks the pages they point at.
func (w *walker) elements(st *walkState, p *pageRef, depth int, lower []byte) error {
	le := binary.LittleEndian
	h := p.head
	if len(h) < pageHeaderSize {
		return w.corrupt(p.id, "page of %d bytes", len(h))
	}
	flags := le.Uint16(h[8:])
	count := int(le.Uint16(h[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return w.corrupt(p.id, "unexpected page type (flags %#x)", flags)
	}
	if pageHeaderSize+uint64(count)*elementSize > p.size || pageHeaderSize+count*elementSize > len(h) {
		return w.corrupt(p.id, "%d elements do not fit in %d bytes", count, p.size)
	}
	if count == 0 && flags&flagBranch != 0 {
		return w.corrupt(p.id, "branch page without elements")
	}
	prev := lower
	// Subtrees go to helper goroutines only below a branch page whose
	// children are branch pages too: a helper then walks hundreds of
	// pages, not one leaf.
	spawn := false
	for i := range count {
		at := pageHeaderSize + i*elementSize
		e := h[at : at+elementSize]
		var pos, ksize, vsize uint64
		var child uint64
		var eflags uint32
		if flags&flagBranch != 0 {
			pos, ksize, child = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:])), le.Uint64(e[8:])
		} else {
			eflags = le.Uint32(e[0:])
			pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		}
		start := uint64(at) + pos
		if pos < elementSize*uint64(count-i) || start+ksize+vsize > p.size {
			return w.corrupt(p.id, "element %d (key %d bytes, value %d bytes at offset %d) lies outside the page", i, ksize, vsize, pos)
		}
		key, err := w.at(p, start, ksize)
		if err != nil {
			return err
		}
		if prev != nil && bytes.Compare(key, prev) < 0 || i > 0 && bytes.Equal(key, prev) {
			return w.corrupt(p.id, "element %d: keys out of order", i)
		}
		prev = key
		if flags&flagBranch != 0 {
			if w.failed.Load() {
				return nil
			}
			if w.child(st, child, depth+1, key, spawn) && i == 0 {
				spawn = true
			}
			continue
		}
		if eflags&leafBucket == 0 {
			continue
		}
		if vsize < bucketHdrSize {
			return w.corrupt(p.id, "element %d: bucket header of %d bytes", i, vsize)
		}
		val, err := w.at(p, start+ksize, vsize)
		if err != nil {
			return err
		}
		if root := le.Uint64(val[0:]); root != 0 {
			w.child(st, root, depth+1, nil, true)
			continue
		}
		inline := val[bucketHdrSize:]
		if len(inline) < pageHeaderSize || le.Uint16(inline[8:]) != flagLeaf {
			return w.corrupt(p.id, "element %d: malformed inline bucket", i)
		}
		ip := &pageRef{id: p.id, off: -1, size: uint64(len(inline)), head: inline}
		if err := w.elements(st, ip, depth+1, nil); err != nil {
			return err
		}
	}
	return nil
}

// freelist checks the persisted free-list page: its ids lie in range,
// and (after a full walk) none of them is also reachable.
func (w *walker) freelist() error {
	id := w.m.Freelist
	p, err := w.page(id, flagFreelist)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint16(p[8:]) != flagFreelist {
		return w.corrupt(int64(id), "not a free-list page (flags %#x)", le.Uint16(p[8:]))
	}
	if w.isSeen(id) {
		return w.corrupt(int64(id), "free-list page is also part of a bucket")
	}
	count, at := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return w.corrupt(int64(id), "free-list page too short")
		}
		count, at = le.Uint64(p[pageHeaderSize:]), at+8
	}
	if count > (uint64(len(p))-at)/8 {
		return w.corrupt(int64(id), "free list of %d ids does not fit in its %d bytes", count, len(p))
	}
	for i := range count {
		fid := le.Uint64(p[at+8*i:])
		if fid < 2 || fid >= w.m.HighMark {
			return w.corrupt(int64(id), "free page id %d outside 2..%d", fid, w.m.HighMark-1)
		}
		if w.isSeen(fid) {
			return w.corrupt(int64(fid), "page is both free and in use")
		}
	}
	return nil
}
