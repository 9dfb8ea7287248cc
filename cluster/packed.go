package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
)

// This file is the packed form of a batch's commands and replies
// (wire.CommandBatch.packed, wire.CommandBatchReply.packed; the layout is
// in wire.proto). As repeated protobuf messages, every command and every
// reply is a message of its own to size, write, read, allocate and check
// for valid UTF-8, field by field, on both ends; packed, a batch is one
// bytes field, written into one allocation of the exact size and read
// without allocating per command: the strings and byte slices of the
// unpacked commands and replies point into the packed bytes.
//
// That is sound because the packed bytes handed to unpackCommands and
// unpackReplies are the protobuf decoder's own copy for this one message
// (google.golang.org/protobuf copies every bytes field it decodes), which
// nothing writes to afterwards: the unpacked values may keep them, as
// they would keep strings of their own.
//
// A member packs only for a member that announced
// wire.Feature_FEATURE_PACKED_BATCH (a member of an older build would see
// an empty batch), and answers a packed batch with packed replies.

// errPacked is the error of malformed packed bytes.
var errPacked = errors.New("cluster: malformed packed batch")

// uvarintSize is the number of bytes binary.AppendUvarint writes for x.
func uvarintSize(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func fieldSize(n int) int { return uvarintSize(uint64(n)) + n }

func appendField[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// packCommands returns the packed form of the requests of items, numbered
// from 1 in their order (the seq their replies carry).
func packCommands(items []*batchItem) []byte {
	size := 0
	for i, it := range items {
		r := it.req
		size += uvarintSize(uint64(i+1)) + fieldSize(len(r.GetKind())) + fieldSize(len(r.GetAggregateId())) +
			fieldSize(len(r.GetCommandId())) + fieldSize(len(r.GetCommand()))
	}
	b := make([]byte, 0, size)
	for i, it := range items {
		r := it.req
		b = binary.AppendUvarint(b, uint64(i+1))
		b = appendField(b, r.GetKind())
		b = appendField(b, r.GetAggregateId())
		b = appendField(b, r.GetCommandId())
		b = appendField(b, r.GetCommand())
	}
	return b
}

// packedReader reads the packed form; a read past the end or a length
// beyond it sets err, after which every read returns zero values.
type packedReader struct {
	b   []byte
	pos int
	err error
}

func (r *packedReader) more() bool { return r.err == nil && r.pos < len(r.b) }

func (r *packedReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad %s at byte %d", errPacked, what, r.pos)
		return 0
	}
	r.pos += n
	return v
}

// bytes returns the next length-prefixed field, pointing into r.b (its
// capacity ends with it).
func (r *packedReader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.pos) {
		r.err = fmt.Errorf("%w: %s of %d bytes at byte %d exceeds the %d bytes left", errPacked, what, n, r.pos, len(r.b)-r.pos)
		return nil
	}
	f := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return f
}

// str is bytes as a string sharing r.b's memory (see the top of the file).
func (r *packedReader) str(what string) string {
	f := r.bytes(what)
	if len(f) == 0 {
		return ""
	}
	return unsafe.String(&f[0], len(f))
}

func (r *packedReader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.err = fmt.Errorf("%w: %s missing at byte %d", errPacked, what, r.pos)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// unpackCommands reads packed commands. Malformed input yields an error
// matching errPacked and no command: a batch is served whole or not at
// all. A first pass checks the input and counts the commands, so that the
// second allocates exactly once for all of them.
func unpackCommands(b []byte) ([]*wire.CommandRequest, error) {
	n := 0
	for r := (packedReader{b: b}); r.more(); n++ {
		seq := r.uvarint("seq")
		for _, what := range [...]string{"kind", "aggregate id", "command id", "command"} {
			r.bytes(what)
		}
		if r.err != nil {
			return nil, r.err
		}
		if seq == 0 || seq > maxBatchCommands {
			return nil, fmt.Errorf("%w: seq %d out of range 1..%d", errPacked, seq, maxBatchCommands)
		}
		if n == maxBatchCommands {
			return nil, fmt.Errorf("%w: more than %d commands", errPacked, maxBatchCommands)
		}
	}
	reqs := make([]wire.CommandRequest, n)
	out := make([]*wire.CommandRequest, n)
	r := packedReader{b: b}
	for i := range reqs {
		q := &reqs[i]
		q.Seq = uint32(r.uvarint("seq"))
		q.Kind, q.AggregateId, q.CommandId = r.str("kind"), r.str("aggregate id"), r.str("command id")
		q.Command = r.bytes("command")
		out[i] = q
	}
	return out, nil
}

const packedDuplicate = 1 << 0

// packReplies returns the packed form of replies.
func packReplies(replies []*wire.CommandReply) []byte {
	size := 0
	for _, r := range replies {
		size += uvarintSize(uint64(r.GetSeq())) + uvarintSize(uint64(r.GetCode())) + uvarintSize(r.GetVersion()) +
			uvarintSize(r.GetPosition()) + 1 + fieldSize(len(r.GetMessage())) + uvarintSize(uint64(len(r.GetEvents())))
		for _, e := range r.GetEvents() {
			size += fieldSize(len(e))
		}
	}
	b := make([]byte, 0, size)
	for _, r := range replies {
		b = binary.AppendUvarint(b, uint64(r.GetSeq()))
		b = binary.AppendUvarint(b, uint64(r.GetCode()))
		b = binary.AppendUvarint(b, r.GetVersion())
		b = binary.AppendUvarint(b, r.GetPosition())
		var flags byte
		if r.GetDuplicate() {
			flags |= packedDuplicate
		}
		b = append(b, flags)
		b = appendField(b, r.GetMessage())
		b = binary.AppendUvarint(b, uint64(len(r.GetEvents())))
		for _, e := range r.GetEvents() {
			b = appendField(b, e)
		}
	}
	return b
}

// unpackReplies reads packed replies. Malformed input yields an error
// matching errPacked and no reply. As unpackCommands, it checks and counts
// first, then allocates once for the replies and once for all their
// events.
func unpackReplies(b []byte) ([]*wire.CommandReply, error) {
	n, events := 0, 0
	for r := (packedReader{b: b}); r.more(); n++ {
		seq, code := r.uvarint("seq"), r.uvarint("code")
		r.uvarint("version")
		r.uvarint("position")
		flags := r.byte("flags")
		r.bytes("message")
		k := r.uvarint("event count")
		if r.err != nil {
			return nil, r.err
		}
		if k > uint64(len(b)-r.pos) {
			// Every event takes at least a byte.
			return nil, fmt.Errorf("%w: %d events exceed the %d bytes left", errPacked, k, len(b)-r.pos)
		}
		for range k {
			r.bytes("event")
		}
		if r.err != nil {
			return nil, r.err
		}
		if seq > maxBatchCommands || code > uint64(wire.Code_FAILED) || flags&^packedDuplicate != 0 {
			return nil, fmt.Errorf("%w: reply with seq %d, code %d, flags %#x", errPacked, seq, code, flags)
		}
		if n == maxBatchCommands {
			return nil, fmt.Errorf("%w: more than %d replies", errPacked, maxBatchCommands)
		}
		events += int(k)
	}
	reps := make([]wire.CommandReply, n)
	out := make([]*wire.CommandReply, n)
	var evs [][]byte
	if events > 0 {
		evs = make([][]byte, events)
	}
	r := packedReader{b: b}
	for i := range reps {
		q := &reps[i]
		q.Seq = uint32(r.uvarint("seq"))
		q.Code = wire.Code(r.uvarint("code"))
		q.Version, q.Position = r.uvarint("version"), r.uvarint("position")
		q.Duplicate = r.byte("flags")&packedDuplicate != 0
		q.Message = r.str("message")
		if k := int(r.uvarint("event count")); k > 0 {
			q.Events = evs[:k:k]
			evs = evs[k:]
			for j := range q.Events {
				q.Events[j] = r.bytes("event")
			}
		}
		out[i] = q
	}
	return out, nil
}
