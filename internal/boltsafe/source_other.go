//go:build !unix

package boltsafe

import "os"

func mapFile(f *os.File, _ int64) (source, error) { return readerAt{f}, nil }
