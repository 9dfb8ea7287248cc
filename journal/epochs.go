package journal

import "context"

// Epochs is an optional interface of a shared journal (see Shared): it
// hands out fencing epochs, one counter per name that only ever grows,
// kept in the journal's own database so that every process sharing the
// journal draws from one sequence. Package cluster takes a new epoch each
// time a member activates a singleton; what the activation writes carries
// that epoch, and a store refuses writes carrying an older one
// (projection/pgstore), so an activation that was replaced cannot write
// over its successor's work.
//
// All methods are safe for concurrent use, also from several processes.
type Epochs interface {
	Shared

	// NextEpoch raises the epoch of name by one, records holder (a free
	// text naming who holds it, such as a member's address) and returns the
	// new epoch: 1 the first time. Concurrent calls, from any process,
	// never return the same epoch, and the epoch is durable when
	// NextEpoch returns. On error the epoch may or may not have been
	// raised; either way a later call returns a higher one.
	NextEpoch(ctx context.Context, name, holder string) (uint64, error)

	// Epoch returns the current epoch of name and its holder: 0 and ""
	// when it was never taken, and holder "" once the holder of the
	// current epoch has called ReleaseEpoch.
	Epoch(ctx context.Context, name string) (epoch uint64, holder string, err error)

	// ReleaseEpoch records that the holder of epoch of name has stopped
	// working under it (Epoch then reports holder ""). It does nothing
	// when the epoch of name is no longer epoch: a successor holds it.
	ReleaseEpoch(ctx context.Context, name string, epoch uint64) error
}
