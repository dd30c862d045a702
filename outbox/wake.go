package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopmesh/shopmesh/internal/wait"
)

// NotifyChannel is the PostgreSQL channel a relay listens on. A writer in
// another process wakes the relay with `SELECT pg_notify('shopmesh_outbox', ”)`
// after its commit (or inside its transaction: notifications are delivered
// on commit). Writers in the relay's own process use Outbox.Notify instead.
const NotifyChannel = "shopmesh_outbox"

// listen holds a dedicated connection in LISTEN and turns notifications into
// wake-ups, reconnecting until ctx ends.
func (r *Relay) listen(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.listenOnce(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Debug("relay listen connection lost", "err", err)
			if wait.Sleep(ctx, jitter(time.Second)) != nil {
				return
			}
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is left in LISTEN state, so it must not return to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
}

// runScheduler moves due scheduled events into the outbox. Each move is one
// transaction (delete from the schedule, insert into the outbox), so a crash
// neither loses nor doubles a scheduled event. Several relays may run it at
// once: SKIP LOCKED hands each due row to exactly one of them.
//
// Each look also reads when the next scheduled event is due, and the
// scheduler sleeps until then: at most SchedulerIdlePoll while the schedule
// is empty, at least its short interval while events wait. Schedule in this
// process wakes it, and for SchedulerIdlePoll after that it looks at the
// short interval, so an event whose transaction commits after the wake-up
// is not left for the idle poll. An event scheduled only by another process
// (a replica that stopped before its due time) is found within
// SchedulerIdlePoll.
func (r *Relay) runScheduler(ctx context.Context) {
	short := min(r.cfg.PollInterval, 250*time.Millisecond)
	var lookFast time.Time // until then, look at the short interval
	for {
		n, next, err := r.moveDue(ctx)
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("scheduler failed", "err", err)
		}
		if n > 0 {
			r.cfg.Outbox.Notify()
			continue
		}
		sleep := r.cfg.SchedulerIdlePoll
		if next >= 0 {
			sleep = min(sleep, max(short, next))
		}
		if err != nil || time.Now().Before(lookFast) {
			sleep = short
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.cfg.Outbox.scheduled:
			lookFast = time.Now().Add(r.cfg.SchedulerIdlePoll)
		case <-t.C:
		}
		t.Stop()
	}
}

// moveDue moves up to 500 due events into the outbox and reports, from the
// same round trip, how long until the next scheduled event is due (by the
// database's clock; negative when none is scheduled, 0 when one is due
// already, such as a row another relay has locked).
func (r *Relay) moveDue(ctx context.Context) (moved int64, next time.Duration, err error) {
	next = -1
	b := &pgx.Batch{}
	b.Queue(`
		WITH due AS (
			DELETE FROM outbox_scheduled WHERE id IN (
				SELECT id FROM outbox_scheduled WHERE due_at <= now()
				ORDER BY due_at, id LIMIT 500 FOR UPDATE SKIP LOCKED)
			RETURNING id, uuid, payload, metadata
		)
		INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id)
		SELECT uuid, payload, metadata, pg_current_xact_id() FROM due ORDER BY id`).Exec(func(tag pgconn.CommandTag) error {
		moved = tag.RowsAffected()
		return nil
	})
	// The batch is one implicit transaction: this read sees the move.
	b.Queue(`SELECT extract(epoch FROM min(due_at) - now())::float8 FROM outbox_scheduled`).QueryRow(func(row pgx.Row) error {
		var secs *float64 // NULL: nothing scheduled
		if err := row.Scan(&secs); err != nil {
			return err
		}
		if secs != nil {
			next = max(time.Duration(*secs*float64(time.Second)), 0)
		}
		return nil
	})
	if err := r.cfg.Pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, -1, fmt.Errorf("move due scheduled events: %w", err)
	}
	return moved, next, nil
}
