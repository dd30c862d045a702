package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
)

// ReplayRequest asks for retained history of one producer to be delivered
// again to one consumer queue.
type ReplayRequest struct {
	// Source is the producer's database (its retained outbox is the log).
	Source *pgxpool.Pool
	// AMQPURL must be allowed to publish to the default exchange.
	AMQPURL string
	// Queue is the consumer's queue; nothing else receives the replay.
	Queue string
	// Types limits the replay to these event types (normally the types the
	// consumer handles); empty means every type.
	Types []string
	// Since is the earliest outbox insert time replayed.
	Since time.Time
	// BatchSize is the publish batch. Default 500.
	BatchSize int
}

// Replay publishes retained outbox events, sent or not, in commit order to
// one queue through the default exchange and returns how many it sent. The
// events keep their ids, so the consumer's inbox skips the ones it already
// applied: to rebuild a read model from scratch, its owner clears the model
// and its inbox keys (ForgetInbox) first. Replays cannot reach further back
// than the outbox retention window, nor past a transaction still running in
// the producer's database (another database's does not stop them; see
// databaseBound).
func Replay(ctx context.Context, req ReplayRequest) (int, error) {
	if req.BatchSize == 0 {
		req.BatchSize = 500
	}
	pub, err := openOperatorPublisher(req.AMQPURL, req.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("replay to %s: %w", req.Queue, err)
	}
	defer pub.close()
	// Cursor: (transaction_id, offset) of the last row sent.
	lastTx, lastOffset := "0", int64(0)
	sent := 0
	for {
		rows, err := req.Source.Query(ctx, `
			SELECT `+outboxColumns+` FROM watermill_outbox
			WHERE created_at >= $1 AT TIME ZONE 'UTC'
			  AND ($2::text[] IS NULL OR cardinality($2::text[]) = 0 OR metadata->>'type' = ANY($2))
			  AND (transaction_id, "offset") > ($3::xid8, $4)
			  AND transaction_id < `+databaseBound+`
			ORDER BY watermill_outbox.transaction_id, "offset" LIMIT $5`, // qualified: sort by the xid8, never by its text
			req.Since.UTC(), req.Types, lastTx, lastOffset, req.BatchSize)
		if err != nil {
			return sent, fmt.Errorf("read history: %w", err)
		}
		batch, err := pgx.CollectRows(rows, scanOutboxRow)
		if err != nil {
			return sent, fmt.Errorf("read history: %w", err)
		}
		if len(batch) == 0 {
			return sent, nil
		}
		msgs := make([]amqp.Publishing, 0, len(batch))
		for _, row := range batch {
			p, _, err := rowToPublishing(row.uuid, row.payload, row.metadata)
			if err != nil {
				return sent, err
			}
			p.DeliveryMode = amqp.Persistent
			p.Headers[HeaderReplay] = "history"
			p.Headers[HeaderCommittedAt] = row.created.UTC().Format(time.RFC3339Nano)
			msgs = append(msgs, p)
		}
		if err := pub.toQueue(ctx, req.Queue, msgs); err != nil {
			return sent, fmt.Errorf("replay to %s: %w", req.Queue, err)
		}
		sent += len(batch)
		last := batch[len(batch)-1]
		lastTx, lastOffset = last.txID, last.offset
	}
}

// ForgetInbox deletes a consumer's inbox keys for messages received at or
// after since, so that a replay applies them again. Use it only together
// with resetting the state those messages built.
func ForgetInbox(ctx context.Context, tx pgx.Tx, consumer string, since time.Time) (int64, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM inbox WHERE consumer = $1 AND received_at >= $2`, consumer, since)
	if err != nil {
		return 0, fmt.Errorf("forget inbox of %s: %w", consumer, err)
	}
	return tag.RowsAffected(), nil
}

// RewindRelay moves the relay's cursor back to the first retained event
// that was committed at or after since (the zero time: the start of the
// outbox), so that the relay publishes everything from there to every
// bound queue again, and returns how many events that is. Consumers' inboxes
// absorb what they already applied. A running relay whose batch was read
// before the rewind does not advance the cursor past it (its update is
// conditional on the cursor it read), and the rewind wakes it.
func RewindRelay(ctx context.Context, pool *pgxpool.Pool, since time.Time) (int64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("rewind relay: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	// The new cursor sits just before the first event to publish again.
	var n int64
	var txID string
	var offset int64
	err = tx.QueryRow(ctx, `
		WITH first AS (
			SELECT transaction_id, "offset" FROM watermill_outbox
			WHERE created_at >= $1 AT TIME ZONE 'UTC'
			ORDER BY transaction_id, "offset" LIMIT 1
		)
		SELECT (SELECT count(*) FROM watermill_outbox o, first f WHERE (o.transaction_id, o."offset") >= (f.transaction_id, f."offset")),
		       coalesce((SELECT transaction_id::text FROM first), '0'),
		       coalesce((SELECT "offset" - 1 FROM first), 0)`, since.UTC()).Scan(&n, &txID, &offset)
	if err != nil {
		return 0, fmt.Errorf("rewind relay: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	// (transaction_id, offset-1) sorts before the first event and after every
	// earlier one: offsets are unique and increasing within a transaction.
	if _, err := tx.Exec(ctx, `UPDATE watermill_offsets_outbox SET offset_acked = $1, last_processed_transaction_id = $2::xid8
		WHERE consumer_group = $3`, offset, txID, relayGroup); err != nil {
		return 0, fmt.Errorf("rewind relay: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel); err != nil {
		return 0, fmt.Errorf("rewind relay: wake relay: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("rewind relay: %w", err)
	}
	return n, nil
}
