package saga

import (
	"context"
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// FollowConfig configures the handles that Follow and FollowProcess
// return. Journal and Registry are required.
type FollowConfig struct {
	// Journal is the journal the runner records sagas and processes in.
	// Required; it must implement journal.Watcher. It is not closed.
	Journal journal.Journal
	// Registry decodes the saga and process events and their data; the
	// saga event types are registered in it (as NewRunner does).
	// Required.
	Registry *orchestrix.Registry
	// Clock stamps the Started events Begin records and their deadlines
	// (Orchestration.Deadline). Nil means orchestrix.SystemClock.
	Clock orchestrix.Clock
	// Source is the CloudEvents source of those events. Empty means
	// DefaultSource.
	Source string
}

// Validate reports whether c can be used, with an error matching
// ErrInvalidSaga that says what is wrong.
func (c FollowConfig) Validate() error {
	var errs []error
	if c.Journal == nil {
		errs = append(errs, errors.New("FollowConfig.Journal is nil"))
	} else if _, ok := c.Journal.(journal.Watcher); !ok {
		errs = append(errs, fmt.Errorf("journal %T does not implement journal.Watcher", c.Journal))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("FollowConfig.Registry is nil"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: follow config: %w", ErrInvalidSaga, errors.Join(errs...))
	}
	return nil
}

// follower is the Runner of the handles made by Follow: it carries the
// configuration that reading and beginning sagas need, and runs nothing.
func follower(cfg FollowConfig) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = orchestrix.SystemClock{}
	}
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if err := registerEvents(cfg.Registry); err != nil {
		return nil, err
	}
	return &Runner{cfg: Config{Journal: cfg.Journal, Registry: cfg.Registry, Clock: cfg.Clock, Source: cfg.Source}}, nil
}

// Followed is a handle of an orchestration whose sagas run elsewhere: in
// another process, or in a runner of this process that may come and go,
// such as a cluster singleton (package cluster) that another member may
// be running right now. It reads what the journal records and runs
// nothing. Create it with Follow; it is safe for concurrent use and needs
// no closing.
type Followed[D any] struct {
	s      *Saga[D]
	follow *journalFollower
}

// Follow returns a handle of orchestration o that reads sagas from the
// journal without executing them: Status reads a saga's stream, Wait
// follows it as any runner records progress, and Begin records a saga's
// start for the runner that executes o to pick up. o is only read (for
// its name and step names); it need not be registered anywhere in this
// process.
func Follow[D any](cfg FollowConfig, o *Orchestration[D]) (*Followed[D], error) {
	if o == nil {
		return nil, fmt.Errorf("%w: nil orchestration", ErrInvalidSaga)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	r, err := follower(cfg)
	if err != nil {
		return nil, err
	}
	return &Followed[D]{s: &Saga[D]{r: r, o: o, name: o.name, active: map[string]*instance[D]{}, inflight: map[string]uint64{}},
		follow: newJournalFollower(cfg.Journal)}, nil
}

// Name returns the orchestration's name.
func (f *Followed[D]) Name() string { return f.s.name }

// Stream returns the stream recording saga id.
func (f *Followed[D]) Stream(id string) string { return f.s.Stream(id) }

// Begin records the start of saga id with data, as Saga.Begin does, and
// returns once it is durable. The runner executing the orchestration,
// wherever it runs, executes it; when none runs, the saga waits for one.
func (f *Followed[D]) Begin(ctx context.Context, id string, data D) error {
	return f.s.Begin(ctx, id, data)
}

// Status returns the status of saga id as its stream records it. Attempt,
// LastError and Executing are always zero: this handle executes nothing.
func (f *Followed[D]) Status(ctx context.Context, id string) (Status[D], error) {
	return f.s.Status(ctx, id)
}

// Wait blocks until cond holds for the status of saga id and returns that
// status, or returns ctx's error with the last status seen. It reads the
// status again whenever the saga's stream grows, whichever process
// records the progress. cond must depend on the status only and must not
// block.
//
// Cost: a waiting call wakes on every commit to the journal
// (journal.Watcher.WaitFor; journal/postgres is notified of other
// processes' commits) and reads the saga stream's head, one query, then
// the stream only when the head moved. Many concurrent Waits on a busy
// journal cost that many head reads per commit.
func (f *Followed[D]) Wait(ctx context.Context, id string, cond func(Status[D]) bool) (Status[D], error) {
	if err := validateID(id); err != nil {
		return Status[D]{Saga: f.s.name, ID: id, Stream: f.s.Stream(id)}, err
	}
	return followStream(ctx, f.follow, f.s.Stream(id), func(ctx context.Context) (Status[D], error) { return f.s.Status(ctx, id) }, cond)
}

// FollowedProcess is a handle of a process manager whose processes run
// elsewhere (see Followed). Create it with FollowProcess.
type FollowedProcess[S any] struct {
	m      *ProcessManager[S]
	follow *journalFollower
}

// FollowProcess returns a handle of process manager p that reads its
// processes from the journal without executing them: Status reads a
// process's newest record, and Wait follows its stream as any runner
// records inputs. p is only read (its name and Initial).
func FollowProcess[S any](cfg FollowConfig, p *Process[S]) (*FollowedProcess[S], error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil process", ErrInvalidSaga)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	r, err := follower(cfg)
	if err != nil {
		return nil, err
	}
	return &FollowedProcess[S]{m: &ProcessManager[S]{r: r, p: p, name: p.name}, follow: newJournalFollower(cfg.Journal)}, nil
}

// Name returns the process manager's name.
func (f *FollowedProcess[S]) Name() string { return f.m.name }

// Stream returns the stream recording process id.
func (f *FollowedProcess[S]) Stream(id string) string { return f.m.Stream(id) }

// Status returns what the journal records of process id.
func (f *FollowedProcess[S]) Status(ctx context.Context, id string) (ProcessStatus[S], error) {
	return f.m.Status(ctx, id)
}

// Wait blocks until cond holds for the status of process id and returns
// that status, or returns ctx's error with the last status seen. It reads
// the status again whenever the process's stream grows. cond must depend
// on the status only and must not block.
func (f *FollowedProcess[S]) Wait(ctx context.Context, id string, cond func(ProcessStatus[S]) bool) (ProcessStatus[S], error) {
	if err := validateID(id); err != nil {
		return ProcessStatus[S]{Process: f.m.name, ID: id, Stream: f.m.Stream(id)}, err
	}
	return followStream(ctx, f.follow, f.m.Stream(id), func(ctx context.Context) (ProcessStatus[S], error) { return f.m.Status(ctx, id) }, cond)
}

// journalFollower wakes the Waits of a followed handle on new commits.
type journalFollower struct {
	j journal.Journal
	w journal.Watcher
}

func newJournalFollower(j journal.Journal) *journalFollower {
	return &journalFollower{j: j, w: j.(journal.Watcher)} // FollowConfig.Validate checked it
}

// followStream reads the status (status) of what stream records until cond
// holds for it, reading it again each time the stream's head moves; it
// waits for commits with journal.Watcher.WaitFor, so it sees progress
// recorded by any process.
func followStream[T any](ctx context.Context, f *journalFollower, stream string, status func(context.Context) (T, error), cond func(T) bool) (T, error) {
	var (
		st   T
		seen uint64
		read bool
	)
	// Every commit after last wakes WaitFor; a head read after it returns
	// sees every commit up to the position it returned.
	last, err := f.w.LastPosition(ctx)
	if err != nil {
		return st, followErr(stream, err)
	}
	for {
		head, err := f.j.Head(ctx, stream)
		if err != nil {
			return st, followErr(stream, err)
		}
		if !read || head != seen {
			if st, err = status(ctx); err != nil {
				return st, err
			}
			if cond(st) {
				return st, nil
			}
			seen, read = head, true
		}
		if last, err = f.w.WaitFor(ctx, last); err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, followErr(stream, err)
		}
	}
}

func followErr(stream string, err error) error {
	return fmt.Errorf("saga: following %q: %w", stream, err)
}
