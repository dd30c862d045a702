package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
)

// The raw baselines are the limit the library is held against: the smallest
// code that keeps the same guarantees, written directly on pgx and amqp091.
// They are deliberately bare (no reconnects, leader lock, mandatory routing,
// scheduler, metrics, tracing or dead letters) and exist only in the bench.

// selectBatch is the outbox read every relay must do: rows after the cursor
// (compared as a row, so the primary key serves it as one index range), in
// commit order, and only below pg_snapshot_xmin so that a transaction still
// in flight is never skipped. ORDER BY names the table's column: the bare
// name would sort by the text output column of the same name, putting xid
// 100000 before 99999 across a decimal-digit boundary.
const selectBatch = `
	WITH cursor AS (
		SELECT offset_acked, last_processed_transaction_id FROM watermill_offsets_outbox WHERE consumer_group = $1
	)
	SELECT "offset", transaction_id::text, uuid, payload, metadata, created_at FROM watermill_outbox
	WHERE (transaction_id, "offset") > ((SELECT last_processed_transaction_id FROM cursor), (SELECT offset_acked FROM cursor))
	  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY watermill_outbox.transaction_id, "offset"
	LIMIT $2`

// rawRelay selects a batch, publishes it persistent with publisher confirms
// outstanding together, waits for every confirm, then advances its cursor
// (its own row of watermill_offsets_outbox) in the same transaction.
type rawRelay struct {
	pool     *pgxpool.Pool
	ch       *amqp.Channel
	exchange string
	group    string
	batch    int
	wake     chan struct{}
}

// rawPoll is the raw relay's safety-net poll, the library relay's default.
const rawPoll = 500 * time.Millisecond

func newRawRelay(ctx context.Context, pool *pgxpool.Pool, conn *amqp.Connection, exchange, group string, batch int) (*rawRelay, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("raw relay channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("raw relay confirms: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO watermill_offsets_outbox (consumer_group, offset_acked, last_processed_transaction_id)
		VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, group); err != nil {
		return nil, fmt.Errorf("raw relay cursor: %w", err)
	}
	return &rawRelay{pool: pool, ch: ch, exchange: exchange, group: group, batch: batch, wake: make(chan struct{}, 1)}, nil
}

// notify wakes the relay after a commit; it never blocks.
func (r *rawRelay) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run relays until ctx ends; any failure ends it.
func (r *rawRelay) run(ctx context.Context) error {
	defer r.ch.Close()
	for {
		n, err := r.relayBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if n == r.batch {
			continue
		}
		t := time.NewTimer(rawPoll)
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (r *rawRelay) relayBatch(ctx context.Context) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	rows, err := tx.Query(ctx, selectBatch, r.group, r.batch)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	type row struct {
		offset            int64
		txID, uuid        string
		payload, metadata []byte
		created           time.Time
	}
	var batch []row
	var o row
	if _, err := pgx.ForEachRow(rows, []any{&o.offset, &o.txID, &o.uuid, &o.payload, &o.metadata, &o.created}, func() error {
		batch = append(batch, o)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	confirms := make([]*amqp.DeferredConfirmation, len(batch))
	for i, row := range batch {
		var md map[string]string
		if err := json.Unmarshal(row.metadata, &md); err != nil {
			return 0, fmt.Errorf("metadata of %s: %w", row.uuid, err)
		}
		headers := make(amqp.Table, len(md)+1)
		for k, v := range md {
			headers[k] = v
		}
		headers[outbox.HeaderCommittedAt] = row.created.UTC().Format(time.RFC3339Nano)
		confirms[i], err = r.ch.PublishWithDeferredConfirmWithContext(ctx, r.exchange, md[outbox.HeaderType], false, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    row.uuid,
			Type:         md[outbox.HeaderType],
			Headers:      headers,
			Body:         row.payload,
		})
		if err != nil {
			return 0, fmt.Errorf("publish %s: %w", row.uuid, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i, dc := range confirms {
		ok, err := dc.WaitContext(wctx)
		if err != nil {
			return 0, fmt.Errorf("confirm of %s: %w", batch[i].uuid, err)
		}
		if !ok {
			return 0, fmt.Errorf("broker nacked %s", batch[i].uuid)
		}
	}
	last := batch[len(batch)-1]
	if _, err := tx.Exec(ctx, `UPDATE watermill_offsets_outbox SET offset_acked = $1, last_processed_transaction_id = $2::xid8
		WHERE consumer_group = $3`, last.offset, last.txID, r.group); err != nil {
		return 0, fmt.Errorf("advance cursor: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit cursor: %w", err)
	}
	return len(batch), nil
}

// rawConsumer applies deliveries inside transactions that claim each one in
// the inbox together with its effect, acknowledging after the commit. Like
// the library's consumer, workers own a share of the aggregates, so each
// aggregate's messages are applied in queue order. With maxBatch 1 it
// commits every message on its own, as the library does; above 1 a worker
// commits whatever has queued up for it (up to maxBatch) in one
// transaction, which never waits for a batch to fill, so it adds no latency
// when idle and saves a commit per message under load. Its handler never
// fails, so it needs nothing for a failure inside a batch.
type rawConsumer struct {
	pool     *pgxpool.Pool
	conn     *amqp.Connection
	queue    string
	name     string
	workers  int
	prefetch int
	maxBatch int
	clock    *commitClock
}

func (c *rawConsumer) run(ctx context.Context) error {
	ch, err := c.conn.Channel()
	if err != nil {
		return fmt.Errorf("raw consumer channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		return fmt.Errorf("raw consumer qos: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	// Consume without a context: its cancellation would race the channel's
	// Close (two RPCs in flight on one channel), and Close ends consuming.
	deliveries, err := ch.Consume(c.queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.queue, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	inputs := make([]chan amqp.Delivery, c.workers)
	for i := range inputs {
		inputs[i] = make(chan amqp.Delivery, c.prefetch)
		wg.Go(func() {
			batch := make([]amqp.Delivery, 0, c.maxBatch)
			for d := range inputs[i] {
				batch = append(batch[:0], d)
			fill:
				for len(batch) < c.maxBatch {
					select {
					case d, ok := <-inputs[i]:
						if !ok {
							break fill
						}
						batch = append(batch, d)
					default:
						break fill
					}
				}
				if ctx.Err() != nil {
					continue // the broker redelivers what was not acknowledged
				}
				if err := c.apply(ctx, batch); err != nil {
					cancel(err)
				}
			}
		})
	}
	defer func() {
		for _, in := range inputs {
			close(in)
		}
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); err != ctx.Err() {
				return err
			}
			return nil
		case d, ok := <-deliveries:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("deliveries of %s ended: %v", c.queue, <-closed)
			}
			key, _ := d.Headers[outbox.HeaderAggregateID].(string)
			h := fnv.New32a()
			_, _ = io.WriteString(h, key)
			inputs[h.Sum32()%uint32(len(inputs))] <- d
		}
	}
}

// apply claims and applies batch in one transaction, then acknowledges it.
func (c *rawConsumer) apply(ctx context.Context, batch []amqp.Delivery) error {
	claimed := make([]bool, len(batch))
	err := inTx(ctx, c.pool, func(tx pgx.Tx) error {
		for i, d := range batch {
			var p struct {
				Seq int `json:"seq"`
			}
			if err := json.Unmarshal(d.Body, &p); err != nil {
				return fmt.Errorf("decode %s: %w", d.MessageId, err)
			}
			id, typ, agg := deliveryMeta(d)
			tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				c.name, id, typ)
			if err != nil {
				return fmt.Errorf("inbox claim %s: %w", id, err)
			}
			if claimed[i] = tag.RowsAffected() == 1; !claimed[i] {
				continue // a duplicate: acknowledge, apply nothing
			}
			if _, err := tx.Exec(ctx, insertApplied, c.name, id, agg, p.Seq); err != nil {
				return fmt.Errorf("apply %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for i, d := range batch {
		id, _, _ := deliveryMeta(d)
		if claimed[i] {
			c.clock.record(id, now)
		}
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("ack %s: %w", id, err)
		}
	}
	return nil
}

// deliveryMeta reads a delivery's message id, type and aggregate. The raw
// relay sets the AMQP properties; watermill's AMQP publisher (behind the
// forwarder) sends only headers, which carry the same envelope.
func deliveryMeta(d amqp.Delivery) (id, eventType, aggregateID string) {
	id, eventType = d.MessageId, d.Type
	if id == "" {
		id, _ = d.Headers[outbox.HeaderID].(string)
	}
	if eventType == "" {
		eventType, _ = d.Headers[outbox.HeaderType].(string)
	}
	aggregateID, _ = d.Headers[outbox.HeaderAggregateID].(string)
	return id, eventType, aggregateID
}

const insertApplied = `INSERT INTO bench_applied (consumer, message_id, aggregate_id, seq) VALUES ($1, $2, $3, $4)`
