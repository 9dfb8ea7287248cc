package journal

import (
	"fmt"
	"strings"
)

// The naming scheme of the streams the runtime writes, defined here once:
// a stream is named kind + "-" + id (StreamName), where kind names what the
// stream records and id which one. Kinds in use:
//
//   - an aggregate's Kind ("account-42", see aggregate.Definition.Kind);
//   - "saga." + name for an orchestrated saga's progress (saga.Stream);
//   - "process." + name for a process manager's record (saga.ProcessStream);
//   - "pii" for the erasure record of a data subject (pii.ErasureStream).
//
// A kind never contains '-', so the kind of any stream is the part of its
// name before the first '-' (StreamKind), and the id is the rest, which may
// contain '-'.

// Limits of the naming scheme, in bytes. Every name StreamName builds from
// a kind accepted by ValidateKind and an id of at most MaxIDLen bytes is
// at most MaxStreamLen bytes long.
const (
	// MaxKindLen is the longest kind.
	MaxKindLen = 64
	// MaxIDLen is the longest id: what remains of MaxStreamLen after the
	// longest kind and the separator.
	MaxIDLen = MaxStreamLen - MaxKindLen - 1
)

// StreamName returns the name of the stream of id of kind: kind + "-" + id.
func StreamName(kind, id string) string { return kind + "-" + id }

// StreamKind returns the kind of a stream name: the part before the first
// '-', or the whole name when it has none.
func StreamKind(stream string) string {
	kind, _, _ := strings.Cut(stream, "-")
	return kind
}

// SplitStream splits a stream name into its kind and id, reporting false
// when the name has no '-'.
func SplitStream(stream string) (kind, id string, ok bool) {
	return strings.Cut(stream, "-")
}

// ValidateKind reports whether kind is usable as the kind of a stream name:
// 1 to MaxKindLen ASCII letters, digits, '_' or '.' (so never '-').
func ValidateKind(kind string) error {
	if kind == "" || len(kind) > MaxKindLen {
		return fmt.Errorf("kind %q must be 1-%d characters", kind, MaxKindLen)
	}
	for _, r := range kind {
		ok := r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("kind %q may contain only ASCII letters, digits, '_' and '.'", kind)
		}
	}
	return nil
}
