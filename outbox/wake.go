package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
func (r *Relay) runScheduler(ctx context.Context) {
	interval := min(r.cfg.PollInterval, 250*time.Millisecond)
	for {
		n, err := r.moveDue(ctx)
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("scheduler failed", "err", err)
		}
		if n > 0 {
			r.cfg.Outbox.Notify()
			continue
		}
		if wait.Sleep(ctx, interval) != nil {
			return
		}
	}
}

func (r *Relay) moveDue(ctx context.Context) (int64, error) {
	tag, err := r.cfg.Pool.Exec(ctx, `
		WITH due AS (
			DELETE FROM outbox_scheduled WHERE id IN (
				SELECT id FROM outbox_scheduled WHERE due_at <= now()
				ORDER BY due_at, id LIMIT 500 FOR UPDATE SKIP LOCKED)
			RETURNING id, uuid, payload, metadata
		)
		INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id)
		SELECT uuid, payload, metadata, pg_current_xact_id() FROM due ORDER BY id`)
	if err != nil {
		return 0, fmt.Errorf("move due scheduled events: %w", err)
	}
	return tag.RowsAffected(), nil
}
