package postgres

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// LastPosition returns the position of the newest committed record (0 for
// an empty journal). See journal.Watcher.
func (j *Journal) LastPosition(ctx context.Context) (uint64, error) {
	if err := j.check(ctx); err != nil {
		return 0, err
	}
	var last int64
	if err := j.pool.QueryRow(ctx, j.sql.lastPosition).Scan(&last); err != nil {
		return 0, j.wrapDB(ctx, "last position", err)
	}
	j.advance(uint64(last))
	return uint64(last), nil
}

// WaitFor blocks until a record with a position above after is committed,
// then returns the newest committed position it knows. See
// journal.Watcher.
func (j *Journal) WaitFor(ctx context.Context, after uint64) (uint64, error) {
	if err := j.check(ctx); err != nil {
		return 0, err
	}
	poll := true
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		changed := j.watch()
		if last := j.lastKnown.Load(); last > after {
			return last, nil
		}
		if poll {
			last, err := j.LastPosition(ctx)
			if err != nil {
				return 0, err
			}
			if last > after {
				return last, nil
			}
			poll = false
			if timer == nil {
				timer = time.NewTimer(j.opts.PollInterval)
			} else {
				timer.Reset(j.opts.PollInterval)
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			poll = true
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-j.closedCh:
			return 0, errClosedWhileWaiting
		}
	}
}

// watch returns a channel closed at the next advance.
func (j *Journal) watch() <-chan struct{} {
	j.watchMu.Lock()
	defer j.watchMu.Unlock()
	return j.changed
}

// advance records that position pos is committed and wakes waiters if it
// is new.
func (j *Journal) advance(pos uint64) {
	for {
		cur := j.lastKnown.Load()
		if pos <= cur {
			return
		}
		if j.lastKnown.CompareAndSwap(cur, pos) {
			break
		}
	}
	j.watchMu.Lock()
	close(j.changed)
	j.changed = make(chan struct{})
	j.watchMu.Unlock()
}

// runListener keeps a connection LISTENing on the journal's channel and
// advances lastKnown from its notifications, reconnecting with backoff.
func (j *Journal) runListener() {
	defer close(j.listenDone)
	const minBackoff, maxBackoff = 50 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for j.runCtx.Err() == nil {
		err := j.listenOnce(&backoff, minBackoff)
		if j.runCtx.Err() != nil {
			return
		}
		j.opts.Logger.Warn("journal/postgres: listener connection lost; reconnecting",
			slog.Any("err", err), slog.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-j.runCtx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce connects, listens, catches up on the last position and
// relays notifications until the connection fails or the journal closes.
func (j *Journal) listenOnce(backoff *time.Duration, reset time.Duration) error {
	ctx := j.runCtx
	conn, err := pgx.ConnectConfig(ctx, j.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{j.channel}.Sanitize()); err != nil {
		return err
	}
	// Notifications sent before LISTEN took effect are lost: reread.
	var last int64
	if err := conn.QueryRow(ctx, j.sql.lastPosition).Scan(&last); err != nil {
		return err
	}
	j.advance(uint64(last))
	*backoff = reset
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if pos, perr := strconv.ParseUint(n.Payload, 10, 64); perr == nil {
			j.advance(pos)
		}
	}
}
