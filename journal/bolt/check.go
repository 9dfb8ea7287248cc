package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/journal"
)

// Streams lists every stream ever written, in ascending order of name,
// with its head and deletion point as last committed. It merges the
// cached heads with journal.streams, which it reads in chunks, each in its
// own short read transaction (so a long listing does not hold one open).
func (j *Journal) Streams(ctx context.Context) iter.Seq2[journal.StreamInfo, error] {
	return func(yield func(journal.StreamInfo, error) bool) {
		if err := j.checkOpen(ctx); err != nil {
			yield(journal.StreamInfo{}, err)
			return
		}
		// The cached streams as they stand now: those not yet in
		// journal.streams (new, not flushed) are listed from here.
		j.mu.RLock()
		cached := make([]journal.StreamInfo, 0, len(j.streams))
		for _, st := range j.streams {
			cached = append(cached, journal.StreamInfo{Name: st.name, Head: st.head, DeletedTo: st.deletedTo})
		}
		j.mu.RUnlock()
		slices.SortFunc(cached, func(a, b journal.StreamInfo) int { return strings.Compare(a.Name, b.Name) })
		emit := func(info journal.StreamInfo) bool {
			return info.Head == 0 || yield(info, nil)
		}
		var after []byte // last key listed from journal.streams
		started := false
		buf := make([]journal.StreamInfo, 0, readChunk)
		for {
			if err := j.checkOpen(ctx); err != nil {
				yield(journal.StreamInfo{}, err)
				return
			}
			buf = buf[:0]
			more := false
			// The transaction begins under j.mu.RLock, and a stream
			// cached at that moment is taken from memory: a stream
			// not cached then is clean, and the writer cannot change
			// it before the transaction has begun (heads.go).
			j.mu.RLock()
			err := view(j.db, func(tx *bbolt.Tx) error {
				c := tx.Bucket(bucketStreams).Cursor()
				var k, v []byte
				if !started {
					k, v = c.First()
				} else if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
				for ; k != nil; k, v = c.Next() {
					if len(buf) == readChunk {
						more = true
						break
					}
					info := journal.StreamInfo{Name: string(k)}
					if st := j.streams[info.Name]; st != nil {
						info.Head, info.DeletedTo = st.head, st.deletedTo
					} else if len(v) == 16 {
						info.Head, info.DeletedTo = binary.BigEndian.Uint64(v[0:8]), binary.BigEndian.Uint64(v[8:16])
					} else {
						return &journal.CorruptionError{Stream: info.Name, Err: errors.New("malformed stream head entry")}
					}
					buf = append(buf, info)
				}
				return nil
			})
			j.mu.RUnlock()
			if err != nil {
				yield(journal.StreamInfo{}, readErr(err))
				return
			}
			for _, info := range buf {
				// Cached streams that sort before this one and are
				// not in journal.streams.
				for len(cached) > 0 && cached[0].Name < info.Name {
					if !emit(cached[0]) {
						return
					}
					cached = cached[1:]
				}
				if len(cached) > 0 && cached[0].Name == info.Name {
					cached = cached[1:]
				}
				if !emit(info) {
					return
				}
			}
			if !more {
				break
			}
			started = true
			after = append(after[:0], buf[len(buf)-1].Name...)
			if err := ctx.Err(); err != nil {
				yield(journal.StreamInfo{}, err)
				return
			}
		}
		for _, info := range cached {
			if !emit(info) {
				return
			}
		}
	}
}

// Check verifies the journal file in one read transaction; see
// journal.Checker. Besides every record's checksum and the streams'
// versions, it verifies the file's own structures: commit blocks that
// parse and do not overlap, journal.index entries that map each version
// to the position actually holding it and cover every record up to the
// index checkpoint, journal.streams heads and deletion points that agree
// with the log, and the position counters.
//
// The read transaction stays open for the whole check; while it is open
// the writer cannot grow the file's memory map, so on a busy journal
// appends may stall until the check ends. Prefer CheckFile on a closed
// journal for large files.
func (j *Journal) Check(ctx context.Context) (journal.CheckReport, error) {
	if err := j.checkOpen(ctx); err != nil {
		return journal.CheckReport{}, err
	}
	var rep journal.CheckReport
	err := view(j.db, func(tx *bbolt.Tx) error {
		var err error
		rep, err = checkTx(ctx, tx)
		return err
	})
	if err != nil {
		return journal.CheckReport{}, readErr(err)
	}
	return rep, nil
}

// CheckFile checks the journal file at path like Journal.Check, without
// opening it as a journal: the file is opened read-only (a shared lock,
// so several checks may run at once, but not while a Journal has it open)
// and nothing in it is changed, so it also works on files that Open
// refuses. It fails with ErrLocked when the file stays locked for timeout
// (zero means DefaultTimeout).
func CheckFile(ctx context.Context, path string, timeout time.Duration) (journal.CheckReport, error) {
	db, err := openReadOnly(path, timeout)
	if err != nil {
		return journal.CheckReport{}, err
	}
	defer db.Close()
	var rep journal.CheckReport
	err = view(db, func(tx *bbolt.Tx) error {
		var err error
		rep, err = checkTx(ctx, tx)
		return err
	})
	if err != nil {
		return journal.CheckReport{}, fmt.Errorf("journal/bolt: check %s: %w", path, err)
	}
	return rep, nil
}

// openReadOnly opens an existing bbolt file read-only.
func openReadOnly(path string, timeout time.Duration) (*bbolt.DB, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("journal/bolt: %w", err)
	}
	db, err := boltsafe.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, bberrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, timeout)
		}
		return nil, fmt.Errorf("journal/bolt: open %s read-only: %w", path, err)
	}
	return db, nil
}

// streamCheck is what the check learns about one stream.
type streamCheck struct {
	name            string
	head, deletedTo uint64 // from journal.streams
	known           bool   // journal.streams has an entry

	last, lastPos uint64 // highest version seen in the log and its position
	logRuns       []run  // the log's records, in position order
	cpMax, cpPos  uint64 // highest version at or before the checkpoint, and its position
	indexRuns     []run  // journal.index entries, in version order
	indexLast     uint64 // last version covered by indexRuns
}

// checker holds the state of one check.
type checker struct {
	ctx        context.Context
	rep        journal.CheckReport
	streams    map[string]*streamCheck
	checkpoint uint64
	format     uint64
	steps      int
}

func (c *checker) stream(name string) *streamCheck {
	sc := c.streams[name]
	if sc == nil {
		sc = &streamCheck{name: name}
		c.streams[name] = sc
	}
	return sc
}

// tick returns the context's error every few thousand steps.
func (c *checker) tick() error {
	c.steps++
	if c.steps%4096 == 0 {
		return c.ctx.Err()
	}
	return nil
}

func (c *checker) add(stream string, version, pos uint64, format string, args ...any) {
	c.rep.Add(journal.Problem{Stream: stream, Version: version, Position: pos, Detail: fmt.Sprintf(format, args...)})
}

// checkTx checks the journal stored in tx.
func checkTx(ctx context.Context, tx *bbolt.Tx) (journal.CheckReport, error) {
	if err := ctx.Err(); err != nil {
		return journal.CheckReport{}, err
	}
	c := &checker{ctx: ctx, streams: make(map[string]*streamCheck)}
	var missing []string
	for _, name := range [][]byte{bucketLog, bucketIndex, bucketStreams, bucketMeta} {
		if tx.Bucket(name) == nil {
			missing = append(missing, string(name))
		}
	}
	if len(missing) > 0 {
		c.add("", 0, 0, "not a journal file: bucket(s) %s missing", strings.Join(missing, ", "))
		return c.rep, nil
	}
	metaLastPos := c.checkMeta(tx.Bucket(bucketMeta))
	if err := c.loadStreams(tx.Bucket(bucketStreams)); err != nil {
		return journal.CheckReport{}, err
	}
	maxPos, err := c.scanLog(tx.Bucket(bucketLog))
	if err != nil {
		return journal.CheckReport{}, err
	}
	if err := c.loadIndex(tx.Bucket(bucketIndex)); err != nil {
		return journal.CheckReport{}, err
	}

	names := make([]string, 0, len(c.streams))
	for name := range c.streams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := c.finishStream(c.streams[name]); err != nil {
			return journal.CheckReport{}, err
		}
	}

	c.rep.LastPosition = max(metaLastPos, maxPos)
	if c.checkpoint > c.rep.LastPosition {
		c.add("", 0, 0, "index checkpoint %d is beyond the last position %d", c.checkpoint, c.rep.LastPosition)
		c.rep.LastPosition = c.checkpoint
	}
	return c.rep, nil
}

// checkMeta verifies journal.meta and returns the stored last position.
func (c *checker) checkMeta(meta *bbolt.Bucket) uint64 {
	c.format = formatVersion
	switch v := meta.Get(metaFormat); {
	case v == nil:
		c.add("", 0, 0, "journal.meta has no format version")
	case len(v) != 8 || (binary.BigEndian.Uint64(v) != formatVersion && binary.BigEndian.Uint64(v) != formatVersion1):
		c.add("", 0, 0, "unknown journal format %x", v)
	default:
		c.format = binary.BigEndian.Uint64(v)
	}
	get := func(key []byte) uint64 {
		v := meta.Get(key)
		if v == nil {
			return 0
		}
		if len(v) != 8 {
			c.add("", 0, 0, "journal.meta %q is malformed (%d bytes)", key, len(v))
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	c.checkpoint = get(metaCheckpoint)
	return get(metaLastPos)
}

// loadStreams reads journal.streams.
func (c *checker) loadStreams(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if err := c.tick(); err != nil {
			return err
		}
		if len(v) != 16 {
			c.add(string(k), 0, 0, "malformed journal.streams entry (%d bytes)", len(v))
			return nil
		}
		sc := c.stream(string(k))
		sc.known = true
		sc.head = binary.BigEndian.Uint64(v[0:8])
		sc.deletedTo = binary.BigEndian.Uint64(v[8:16])
		if sc.deletedTo > sc.head {
			c.add(sc.name, 0, 0, "deleted up to version %d, beyond its head %d", sc.deletedTo, sc.head)
		}
		return nil
	})
}

// scanLog verifies every block and record of journal.log in position
// order and returns the highest position it covers.
func (c *checker) scanLog(b *bbolt.Bucket) (uint64, error) {
	var prevEnd uint64 // last position of the previous block
	cur := b.Cursor()
	for k, block := cur.First(); k != nil; k, block = cur.Next() {
		if err := c.tick(); err != nil {
			return 0, err
		}
		if len(k) != 8 {
			c.add("", 0, 0, "malformed journal.log key %x", k)
			continue
		}
		first := binary.BigEndian.Uint64(k)
		if first == 0 {
			c.add("", 0, 0, "journal.log has a block at position 0")
			continue
		}
		n, err := blockCount(block)
		if err != nil {
			c.add("", 0, first, "%v (block of %d bytes)", err, len(block))
			prevEnd = max(prevEnd, first)
			continue
		}
		if first <= prevEnd {
			c.add("", 0, first, "block overlaps the previous block, which ends at position %d", prevEnd)
		}
		prevEnd = max(prevEnd, first+uint64(n)-1)
		for i := range n {
			pos := first + uint64(i)
			f, err := blockFrame(block, n, i)
			if err != nil {
				c.add("", 0, pos, "%v: bad frame offsets", err)
				break
			}
			if len(f) == 0 {
				continue // deleted
			}
			if err := c.checkRecord(pos, f); err != nil {
				return 0, err
			}
		}
	}
	return prevEnd, nil
}

// checkRecord verifies the frame f stored at pos and tracks its stream's
// versions.
func (c *checker) checkRecord(pos uint64, f []byte) error {
	if err := c.tick(); err != nil {
		return err
	}
	fv, err := parseFrame(f)
	if errors.Is(err, errTruncate) {
		c.add("", 0, pos, "truncated record frame (%d bytes)", len(f))
		return nil
	}
	c.rep.Records++
	stream := string(fv.stream)
	if err != nil {
		// The header parsed; the stream and version may be damaged too,
		// but they are the best name the record has.
		c.add(stream, fv.version, pos, "checksum mismatch")
	} else {
		var env orchestrix.Envelope
		if derr := env.UnmarshalBinary(fv.body); derr != nil {
			c.add(stream, fv.version, pos, "event does not decode: %v", derr)
		}
	}
	if fv.version == 0 {
		c.add(stream, 0, pos, "record has version 0")
		return nil
	}
	sc := c.stream(stream)
	switch next := max(sc.last, sc.deletedTo) + 1; {
	case fv.version <= sc.deletedTo:
		c.add(stream, fv.version, pos, "record is still stored although the stream is deleted up to version %d", sc.deletedTo)
	case sc.last != 0 && fv.version <= sc.last:
		c.add(stream, fv.version, pos, "version stored again (or out of order) after version %d at position %d", sc.last, sc.lastPos)
	case fv.version > next:
		c.add(stream, next, pos, "versions %d..%d are missing: the next stored version is %d, at position %d", next, fv.version-1, fv.version, pos)
	}
	if fv.version > sc.last {
		sc.last, sc.lastPos = fv.version, pos
		sc.logRuns = appendRun(sc.logRuns, run{version: fv.version, pos: pos, n: 1})
	}
	if pos <= c.checkpoint && fv.version > sc.cpMax {
		sc.cpMax, sc.cpPos = fv.version, pos
	}
	return nil
}

// loadIndex reads journal.index into the streams' indexRuns.
func (c *checker) loadIndex(b *bbolt.Bucket) error {
	cur := b.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if err := c.tick(); err != nil {
			return err
		}
		n, m := binary.Uvarint(k)
		if m <= 0 || n > uint64(len(k)-m) || uint64(len(k)-m)-n != 8 {
			c.add("", 0, 0, "malformed journal.index key %x", k)
			continue
		}
		name := string(k[m : m+int(n)])
		first := binary.BigEndian.Uint64(k[m+int(n):])
		sc := c.stream(name)
		if first == 0 {
			c.add(name, 0, 0, "journal.index entry starts at version 0")
			continue
		}
		if sc.indexLast != 0 && first <= sc.indexLast {
			c.add(name, first, 0, "journal.index entries overlap: this entry starts at or below version %d, covered by the previous one", sc.indexLast)
			continue
		}
		var runs []run
		err := decodeEntry(first, v, func(r run) bool {
			runs = append(runs, r)
			return true
		})
		if err != nil {
			c.add(name, first, 0, "malformed journal.index entry: %v", err)
			continue
		}
		for _, r := range runs {
			sc.indexRuns = append(sc.indexRuns, r)
			sc.indexLast = r.last()
		}
	}
	return nil
}

// finishStream checks one stream's head and deletion point against the
// log, and its index entries against its records.
func (c *checker) finishStream(sc *streamCheck) error {
	if max(sc.head, sc.last) > 0 {
		c.rep.Streams++
	}
	if sc.known {
		if sc.head < sc.cpMax {
			c.add(sc.name, sc.cpMax, sc.cpPos, "head %d in journal.streams is below this version, stored before the index checkpoint", sc.head)
		}
		if from := max(sc.last, sc.deletedTo) + 1; sc.head >= from {
			c.add(sc.name, from, 0, "versions %d..%d are missing: the head is %d but the log's last version of the stream is %d", from, sc.head, sc.head, sc.last)
		}
	} else if sc.cpMax > 0 {
		c.add(sc.name, sc.cpMax, sc.cpPos, "stream has records before the index checkpoint but no journal.streams entry")
	}

	// Merge the log's records and the index's entries by version, both
	// above the deletion point.
	logCur := runCursor{runs: sc.logRuns}
	idxCur := runCursor{runs: sc.indexRuns}
	logCur.skipTo(sc.deletedTo + 1)
	idxCur.skipTo(sc.deletedTo + 1)
	for {
		if err := c.tick(); err != nil {
			return err
		}
		lv, lp, lok := logCur.peek()
		iv, ip, iok := idxCur.peek()
		switch {
		case !lok && !iok:
			return nil
		case lok && iok && lv == iv:
			if lp != ip {
				c.add(sc.name, lv, lp, "journal.index maps this version to position %d, but the log stores it here", ip)
			} else if c.format != formatVersion1 && iv > max(sc.head, sc.cpMax) {
				// (A head below cpMax is reported once, above.)
				c.indexAboveHead(sc, iv, ip)
			}
			logCur.next()
			idxCur.next()
		case lok && (!iok || lv < iv):
			switch {
			case lp <= c.checkpoint:
				c.add(sc.name, lv, lp, "record is before the index checkpoint (position %d) but missing from journal.index", c.checkpoint)
			case c.format != formatVersion1 && sc.known && lv <= sc.head:
				// Open takes the versions up to the stored head from
				// journal.index and skips them in the log: this record
				// would be invisible.
				c.add(sc.name, lv, lp, "record is at or below the head %d in journal.streams but missing from journal.index", sc.head)
			}
			logCur.next()
		default:
			c.add(sc.name, iv, ip, "journal.index maps this version to a position that holds no such record")
			idxCur.next()
		}
	}
}

// indexAboveHead reports an index entry for a version above the stream's
// stored head: a checkpoint writes a stream's entries and head in one
// transaction, so the head cannot be behind them (Open would then take
// the record from both the index and the log).
func (c *checker) indexAboveHead(sc *streamCheck, version, pos uint64) {
	if sc.known {
		c.add(sc.name, version, pos, "journal.index covers this version, above the head %d in journal.streams", sc.head)
	} else {
		c.add(sc.name, version, pos, "journal.index covers this version but the stream has no journal.streams entry")
	}
}

// runCursor walks the (version, position) pairs of version-ordered runs.
type runCursor struct {
	runs []run
	i    int
	off  uint64
}

func (rc *runCursor) peek() (version, pos uint64, ok bool) {
	if rc.i >= len(rc.runs) {
		return 0, 0, false
	}
	r := rc.runs[rc.i]
	return r.version + rc.off, r.pos + rc.off, true
}

func (rc *runCursor) next() {
	rc.off++
	if rc.off >= rc.runs[rc.i].n {
		rc.i++
		rc.off = 0
	}
}

// skipTo moves the cursor to the first pair with version >= v.
func (rc *runCursor) skipTo(v uint64) {
	for rc.i < len(rc.runs) {
		r := rc.runs[rc.i]
		if r.last() >= v {
			if v > r.version {
				rc.off = v - r.version
			}
			return
		}
		rc.i++
		rc.off = 0
	}
}

// Interface checks.
var (
	_ journal.StreamLister = (*Journal)(nil)
	_ journal.Checker      = (*Journal)(nil)
)
