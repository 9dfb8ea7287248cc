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
//     reading the file with ReadAt and never through bbolt, and reports
//     the first page that is wrong. A quick walk checks the meta pages and
//     the persisted free list (what bbolt.Open reads when the free list is
//     synced); a full walk checks every page reachable from the root.
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
// that is wrong. Its cost grows with the file (BENCHMARKS.md: about what
// bbolt's own free-page scan costs).
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
	src, err := mapFile(f, st.Size())
	if err != nil {
		return Meta{}, err
	}
	defer src.close()
	w := &walker{r: src, size: st.Size(), path: path}
	m, err := w.meta()
	if err != nil {
		return Meta{}, err
	}
	w.m = m
	w.seen = make(map[uint64]bool)
	if err := w.bucketRoot(m.Root, 0); err != nil {
		return m, err
	}
	if m.FreelistSynced() {
		if err := w.freelist(); err != nil {
			return m, err
		}
	}
	return m, nil
}

type walker struct {
	r    source
	size int64
	path string
	m    Meta
	seen map[uint64]bool // pages reached from the root, with overflow
}

func (w *walker) corrupt(page int64, format string, args ...any) error {
	return &CorruptError{Path: w.path, Page: page, Reason: fmt.Sprintf(format, args...)}
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

// mark records pages id … id+overflow as reachable.
func (w *walker) mark(id uint64, p []byte) error {
	n := uint64(len(p) / w.m.PageSize)
	for i := range n {
		if w.seen[id+i] {
			return w.corrupt(int64(id+i), "page referenced twice")
		}
		w.seen[id+i] = true
	}
	return nil
}

// bucketRoot walks the tree of one bucket stored at page root.
func (w *walker) bucketRoot(root uint64, depth int) error {
	return w.node(root, depth, nil)
}

// node walks page id and its children. lower is the smallest key the
// page may hold (the branch key that points at it), nil for none.
func (w *walker) node(id uint64, depth int, lower []byte) error {
	if depth > maxTreeDepth {
		return w.corrupt(int64(id), "tree deeper than %d levels", maxTreeDepth)
	}
	p, err := w.page(id, flagBranch|flagLeaf)
	if err != nil {
		return err
	}
	if err := w.mark(id, p); err != nil {
		return err
	}
	return w.elements(p, int64(id), depth, lower)
}

// elements checks the elements of a branch or leaf page held in p (a
// page read from the file, or an inline bucket's page). page names it in
// errors.
func (w *walker) elements(p []byte, page int64, depth int, lower []byte) error {
	le := binary.LittleEndian
	flags := le.Uint16(p[8:])
	count := int(le.Uint16(p[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return w.corrupt(page, "unexpected page type (flags %#x)", flags)
	}
	if pageHeaderSize+count*elementSize > len(p) {
		return w.corrupt(page, "%d elements do not fit in %d bytes", count, len(p))
	}
	if count == 0 && flags&flagBranch != 0 {
		return w.corrupt(page, "branch page without elements")
	}
	prev := lower
	for i := range count {
		at := pageHeaderSize + i*elementSize
		e := p[at : at+elementSize]
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
		if pos < elementSize*uint64(count-i) || start+ksize+vsize > uint64(len(p)) {
			return w.corrupt(page, "element %d (key %d bytes, value %d bytes at offset %d) lies outside the page", i, ksize, vsize, pos)
		}
		key := p[start : start+ksize]
		if prev != nil && bytes.Compare(key, prev) < 0 || i > 0 && bytes.Equal(key, prev) {
			return w.corrupt(page, "element %d: keys out of order", i)
		}
		prev = key
		if flags&flagBranch != 0 {
			if err := w.node(child, depth+1, key); err != nil {
				return err
			}
			continue
		}
		if eflags&leafBucket == 0 {
			continue
		}
		val := p[start+ksize : start+ksize+vsize]
		if len(val) < bucketHdrSize {
			return w.corrupt(page, "element %d: bucket header of %d bytes", i, len(val))
		}
		if root := le.Uint64(val[0:]); root != 0 {
			if err := w.node(root, depth+1, nil); err != nil {
				return err
			}
			continue
		}
		inline := val[bucketHdrSize:]
		if len(inline) < pageHeaderSize || le.Uint16(inline[8:]) != flagLeaf {
			return w.corrupt(page, "element %d: malformed inline bucket", i)
		}
		if err := w.elements(inline, page, depth+1, nil); err != nil {
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
	if w.seen[id] {
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
		if w.seen[fid] {
			return w.corrupt(int64(fid), "page is both free and in use")
		}
	}
	return nil
}
