package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/wait"
)

// RetentionConfig says how long sent outbox rows and inbox keys are kept.
type RetentionConfig struct {
	// Outbox is how long sent events stay replayable. Default 7 days.
	Outbox time.Duration
	// Inbox is how long a consumer remembers a message id. It must exceed
	// the longest time a message can be redelivered or replayed after its
	// first delivery, or a late duplicate would be applied again. Default 7 days.
	Inbox time.Duration
	// Interval between prunes. Default 1 minute.
	Interval time.Duration
	Logger   *slog.Logger
}

func (c *RetentionConfig) setDefaults() {
	if c.Outbox == 0 {
		c.Outbox = 7 * 24 * time.Hour
	}
	if c.Inbox == 0 {
		c.Inbox = 7 * 24 * time.Hour
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Prune deletes sent outbox rows and inbox keys older than their windows and
// returns how many of each it deleted. Unsent rows are never deleted.
func Prune(ctx context.Context, pool *pgxpool.Pool, cfg RetentionConfig) (outbox, inbox int64, err error) {
	cfg.setDefaults()
	if cfg.Outbox < 0 || cfg.Inbox < 0 {
		return 0, 0, errors.New("retention windows must be positive")
	}
	tag, err := pool.Exec(ctx, `
		DELETE FROM watermill_outbox o USING watermill_offsets_outbox c
		WHERE c.consumer_group = $1
		  AND (o.transaction_id < c.last_processed_transaction_id
		       OR (o.transaction_id = c.last_processed_transaction_id AND o."offset" <= c.offset_acked))
		  AND o.created_at < (now() AT TIME ZONE 'UTC') - $2 * interval '1 second'`,
		relayGroup, cfg.Outbox.Seconds())
	if err != nil {
		return 0, 0, fmt.Errorf("prune outbox: %w", err)
	}
	outbox = tag.RowsAffected()
	tag, err = pool.Exec(ctx, `DELETE FROM inbox WHERE received_at < now() - $1 * interval '1 second'`, cfg.Inbox.Seconds())
	if err != nil {
		return outbox, 0, fmt.Errorf("prune inbox: %w", err)
	}
	return outbox, tag.RowsAffected(), nil
}

// RunRetention prunes every interval until ctx ends.
func RunRetention(ctx context.Context, pool *pgxpool.Pool, cfg RetentionConfig) error {
	cfg.setDefaults()
	for {
		o, i, err := Prune(ctx, pool, cfg)
		switch {
		case err != nil && ctx.Err() == nil:
			cfg.Logger.Warn("retention prune failed", "err", err)
		case o+i > 0:
			cfg.Logger.Info("retention pruned", "outbox_rows", o, "inbox_keys", i)
		}
		if wait.Sleep(ctx, cfg.Interval) != nil {
			return ctx.Err()
		}
	}
}
