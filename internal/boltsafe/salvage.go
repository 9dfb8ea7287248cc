package boltsafe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"sync/atomic"
)

// Salvage reads the key/value pairs of the top-level bucket named bucket
// from the file at path without bbolt, in key order, skipping what is
// damaged: a page that fails its checks is reported in skipped with
// everything below it, and the walk goes on with its siblings. fn is
// called for every pair found (key and value are valid only during the
// call); an error from fn ends the walk and is returned. A file whose
// meta pages or root are unreadable fails with a *CorruptError.
func Salvage(path string, bucket []byte, fn func(key, value []byte) error) (skipped []*CorruptError, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	src, err := mapFile(f, st.Size())
	if err != nil {
		return nil, err
	}
	defer src.close()
	w := &walker{r: src, size: st.Size(), path: path}
	if w.m, err = w.meta(); err != nil {
		return nil, err
	}
	w.seen = make([]atomic.Uint64, (w.m.HighMark+63)/64)
	s := &salvager{w: w, fn: fn}
	// The root bucket: find bucket's entry among its leaves.
	s.target = bucket
	s.walk(w.m.Root, 0, false)
	if s.err != nil {
		return s.skipped, s.err
	}
	if !s.found && len(s.skipped) == 0 {
		return nil, &CorruptError{Path: path, Page: int64(w.m.Root), Reason: "bucket " + string(bucket) + " not found"}
	}
	return s.skipped, nil
}

type salvager struct {
	w       *walker
	fn      func(k, v []byte) error
	target  []byte
	found   bool
	skipped []*CorruptError
	err     error
}

func (s *salvager) skip(err error) {
	var ce *CorruptError
	if errors.As(err, &ce) {
		s.skipped = append(s.skipped, ce)
		return
	}
	s.skipped = append(s.skipped, &CorruptError{Path: s.w.path, Page: -1, Reason: err.Error()})
}

// walk visits page id: inside the root bucket (data false) it looks for
// the target bucket's entry; inside the target (data true) it passes
// every plain key/value pair to fn.
func (s *salvager) walk(id uint64, depth int, data bool) {
	if s.err != nil {
		return
	}
	if depth > maxTreeDepth {
		s.skip(s.w.corrupt(int64(id), "tree deeper than %d levels", maxTreeDepth))
		return
	}
	p, err := s.w.page(id, flagBranch|flagLeaf)
	if err == nil {
		err = s.w.mark(id, p)
	}
	if err != nil {
		s.skip(err)
		return
	}
	s.elements(p, int64(id), depth, data)
}

func (s *salvager) elements(p []byte, page int64, depth int, data bool) {
	le := binary.LittleEndian
	flags := le.Uint16(p[8:])
	count := int(le.Uint16(p[10:]))
	branch := flags&flagBranch != 0
	if flags != flagBranch && flags != flagLeaf || pageHeaderSize+count*elementSize > len(p) {
		s.skip(s.w.corrupt(page, "unexpected page type (flags %#x) or %d elements in %d bytes", flags, count, len(p)))
		return
	}
	for i := range count {
		if s.err != nil {
			return
		}
		at := pageHeaderSize + i*elementSize
		e := p[at : at+elementSize]
		var pos, ksize, vsize, child uint64
		var eflags uint32
		if branch {
			pos, ksize, child = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:])), le.Uint64(e[8:])
		} else {
			eflags = le.Uint32(e[0:])
			pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		}
		start := uint64(at) + pos
		if pos < elementSize*uint64(count-i) || start+ksize+vsize > uint64(len(p)) {
			s.skip(s.w.corrupt(page, "element %d lies outside the page", i))
			continue
		}
		key, val := p[start:start+ksize], p[start+ksize:start+ksize+vsize]
		switch {
		case branch:
			s.walk(child, depth+1, data)
		case data && eflags&leafBucket == 0:
			if err := s.fn(key, val); err != nil {
				s.err = err
			}
		case !data && eflags&leafBucket != 0 && bytes.Equal(key, s.target):
			s.found = true
			if len(val) < bucketHdrSize {
				s.skip(s.w.corrupt(page, "bucket %s: header of %d bytes", key, len(val)))
				continue
			}
			if root := le.Uint64(val); root != 0 {
				s.walk(root, depth+1, true)
			} else if inline := val[bucketHdrSize:]; len(inline) >= pageHeaderSize {
				s.elements(inline, page, depth+1, true)
			}
		}
	}
}
