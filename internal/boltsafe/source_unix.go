//go:build unix

package boltsafe

import (
	"os"
	"syscall"
)

func mapFile(f *os.File, size int64) (source, error) {
	if size <= 0 || int64(int(size)) != size {
		return readerAt{f}, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return readerAt{f}, nil
	}
	return mappedFile{b}, nil
}

type mappedFile struct{ mapped }

func (m mappedFile) close() { _ = syscall.Munmap(m.mapped) }
