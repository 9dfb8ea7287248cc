package boltsafe

import (
	"fmt"
	"io"
	"os"
)

// source gives the walker the bytes of the file: for Salvage, which
// reads values too, a read-only memory map where the platform has one
// (no copy), ReadAt otherwise; for Verify's meta pages and free list,
// ReadAt (its walk of the tree reads with pread, walk.go).
type source interface {
	// slice returns n bytes at off, valid until close; an error when
	// they lie past the end of the file.
	slice(off int64, n int) ([]byte, error)
	close()
}

type mapped []byte

func (m mapped) slice(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > int64(len(m)) || int64(n) > int64(len(m))-off {
		return nil, fmt.Errorf("%d bytes at offset %d: %w", n, off, io.ErrUnexpectedEOF)
	}
	return m[off : off+int64(n) : off+int64(n)], nil
}

type readerAt struct{ f *os.File }

func (r readerAt) slice(off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := r.f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

func (readerAt) close() {}
