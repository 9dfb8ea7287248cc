package bolt

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/journal"
)

// SalvageReport is what SalvageFile read and what it had to skip.
type SalvageReport struct {
	// Records is the number of records passed to the callback.
	Records uint64
	// Skipped says what could not be read, one entry per damaged page
	// (everything stored below it is lost to the salvage), commit block
	// or record, in the order met.
	Skipped []string
}

// SalvageFile reads every record still readable from the journal file at
// path, in position order, and passes each to fn; it is the recovery
// tool for a file that Open and CheckFile refuse as damaged. It reads the
// file's pages itself, without bbolt, skipping damaged pages (and what is
// stored below them), malformed commit blocks and records that fail their
// checksum, and reports each skip. Records of deleted events are not
// passed. The file is not changed; no Journal (or other process) may have
// it open for writing meanwhile. An error from fn ends the salvage and is
// returned; a file whose meta pages are both damaged fails with an error
// matching orchestrix.ErrCorrupt.
func SalvageFile(ctx context.Context, path string, fn func(journal.Record) error) (SalvageReport, error) {
	var rep SalvageReport
	skipped, err := boltsafe.Salvage(path, bucketLog, func(k, block []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(k) != 8 {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("log key of %d bytes", len(k)))
			return nil
		}
		first := binary.BigEndian.Uint64(k)
		n, err := blockCount(block)
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("position %d: %v", first, err))
			return nil
		}
		for i := range n {
			pos := first + uint64(i)
			f, err := blockFrame(block, n, i)
			if err != nil {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("position %d: %v", pos, err))
				continue
			}
			if len(f) == 0 {
				continue // deleted
			}
			rec, err := decodeRecord(pos, f)
			if err != nil {
				rep.Skipped = append(rep.Skipped, err.Error())
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
			rep.Records++
		}
		return nil
	})
	for _, s := range skipped {
		rep.Skipped = append(rep.Skipped, s.Error())
	}
	if err != nil {
		return rep, fmt.Errorf("journal/bolt: salvage %s: %w", path, err)
	}
	return rep, nil
}
