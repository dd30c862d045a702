package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// Scenario 2: relay drain. The outbox is filled first; then one relay
// forwards it all. The library's relay and the raw relay drain rows the
// library wrote; watermill's forwarder drains rows its own publisher wrote
// (enveloped, as it requires) into the same table. All three publish into
// one durable quorum queue.

type drainSetup struct {
	p     producer
	queue string
	rawEx string // topic exchange of the raw relay
	fwdEx string // the forwarder's destination topic: a fanout exchange
}

// Cursor rows of the three relays in watermill_offsets_outbox.
const (
	groupShopmesh  = "shopmesh-relay" // fixed by the library
	groupRaw       = "bench-raw"
	groupForwarder = "bench-forwarder"
)

// prefillPerTx is how many events each pre-fill transaction writes.
const prefillPerTx = 10

func setupDrain(_ context.Context, r *runner) (err error) {
	d := &r.drain
	if d.p, err = r.newProducer("drain"); err != nil {
		return err
	}
	d.rawEx, d.fwdEx, d.queue = r.env.name("drain.raw"), r.env.name("drain.forwarder"), r.env.name("drain")
	if err := r.env.declareExchange(d.rawEx, "topic"); err != nil {
		return err
	}
	// The forwarder's publisher declares a durable fanout exchange named
	// after the topic; declaring it identically first lets the queue bind.
	if err := r.env.declareExchange(d.fwdEx, "fanout"); err != nil {
		return err
	}
	if err := r.env.declareQueue(d.queue, outbox.ExchangeName(d.p.service), d.p.eventType, nil); err != nil {
		return err
	}
	if err := r.env.bind(d.queue, d.rawEx, d.p.eventType); err != nil {
		return err
	}
	return r.env.bind(d.queue, d.fwdEx, "")
}

func roundDrain(ctx context.Context, r *runner, round int) error {
	for _, variant := range rotate([]string{"raw", "shopmesh", "forwarder"}, round) {
		rate, complete, err := r.drainOnce(ctx, variant)
		if err != nil {
			return fmt.Errorf("%s: %w", variant, err)
		}
		r.record(ScenarioDrain, variant, "throughput", "events/s", round, rate)
		if !complete {
			r.results.note(ScenarioDrain, fmt.Sprintf("forwarder: stopped after its %s limit; its rate is what it drained in that time",
				r.cfg.ForwarderLimit))
		}
	}
	r.results.note(ScenarioDrain, fmt.Sprintf("%d pre-filled events (%d per transaction); relay batch %d for shopmesh and raw; "+
		"the forwarder runs watermill's defaults (SQL batch 100, 1s poll; AMQP publisher without confirms, a channel per message)",
		r.cfg.Events, prefillPerTx, r.cfg.BatchSize))
	return nil
}

// drainOnce fills the outbox and measures one relay draining it. complete
// is false when the forwarder ran out of its time limit.
func (r *runner) drainOnce(ctx context.Context, variant string) (rate float64, complete bool, err error) {
	d := r.drain
	if err := r.resetTables(ctx); err != nil {
		return 0, false, err
	}
	if err := r.env.purge(d.queue); err != nil {
		return 0, false, err
	}
	c := newComponents(ctx, r.cfg.PhaseTimeout)
	defer func() { err = errors.Join(err, c.stop()) }()
	pool, err := r.pool(c, int32(r.cfg.Writers+1), nil)
	if err != nil {
		return 0, false, err
	}
	relayPool, err := r.pool(c, 4, nil)
	if err != nil {
		return 0, false, err
	}

	fill := r.prefillShopmesh(pool)
	if variant == "forwarder" {
		fill = r.prefillForwarder(pool)
	}
	txs := (r.cfg.Events + prefillPerTx - 1) / prefillPerTx
	if _, err := runWriters(c.ctx, r.cfg.Writers, txs, fill); err != nil {
		return 0, false, fmt.Errorf("pre-fill: %w", err)
	}
	last, err := lastRow(c.ctx, pool)
	if err != nil {
		return 0, false, err
	}

	var group string
	var limit time.Duration
	start := time.Now()
	switch variant {
	case "shopmesh":
		group = groupShopmesh
		relay, err := outbox.NewRelay(outbox.RelayConfig{Outbox: d.p.ob, Pool: relayPool, AMQPURL: r.env.amqpURL, BatchSize: r.cfg.BatchSize})
		if err != nil {
			return 0, false, err
		}
		c.start("relay", relay.Run)
	case "raw":
		group = groupRaw
		conn, err := r.dial(c)
		if err != nil {
			return 0, false, err
		}
		relay, err := newRawRelay(c.ctx, relayPool, conn, d.rawEx, groupRaw, r.cfg.BatchSize)
		if err != nil {
			return 0, false, err
		}
		c.start("raw relay", relay.run)
	case "forwarder":
		group, limit = groupForwarder, r.cfg.ForwarderLimit
		if err := startForwarder(c, relayPool, r.env.amqpURL); err != nil {
			return 0, false, err
		}
	}
	drained, elapsed, complete, err := waitDrained(c.ctx, pool, group, last, r.cfg.Events, start, limit)
	if err != nil {
		return 0, false, err
	}
	return float64(drained) / elapsed.Seconds(), complete, nil
}

// prefillShopmesh writes transaction seq's events with Outbox.Publish.
func (r *runner) prefillShopmesh(pool *pgxpool.Pool) writeFunc {
	d := r.drain
	return func(ctx context.Context, seq int) error {
		events := make([]outbox.Event, 0, prefillPerTx)
		for i := prefillSeqs(seq, r.cfg.Events); i.ok(); i.next() {
			ev := makeEvent(i.seq)
			events = append(events, outbox.Event{Type: d.p.eventType, AggregateID: ev.agg, Payload: json.RawMessage(ev.payload)})
		}
		return inTx(ctx, pool, func(tx pgx.Tx) error { return d.p.ob.Publish(ctx, tx, events...) })
	}
}

// prefillForwarder writes transaction seq's events the way an application
// using watermill's forwarder does: through forwarder.Publisher around a
// watermill-sql publisher on the transaction, with the library's envelope
// as metadata so the AMQP messages match.
func (r *runner) prefillForwarder(pool *pgxpool.Pool) writeFunc {
	d := r.drain
	return func(ctx context.Context, seq int) error {
		msgs := make([]*message.Message, 0, prefillPerTx)
		for i := prefillSeqs(seq, r.cfg.Events); i.ok(); i.next() {
			msgs = append(msgs, forwardedMessage(makeEvent(i.seq), d.p.eventType, d.p.service))
		}
		return inTx(ctx, pool, func(tx pgx.Tx) error { return publishForwarded(tx, d.fwdEx, msgs...) })
	}
}

// forwardedMessage is ev as a watermill message carrying the library's
// envelope as metadata, so that what the forwarder publishes matches what
// the library's relay publishes.
func forwardedMessage(ev event, eventType, source string) *message.Message {
	id := outbox.NewID()
	m := message.NewMessage(id, ev.payload)
	m.Metadata = envelope(id, eventType, source, ev.agg)
	return m
}

// publishForwarded writes msgs for destination into the outbox table in tx
// as an application using watermill's forwarder does: forwarder.Publisher
// around a watermill-sql publisher on the transaction.
func publishForwarded(tx pgx.Tx, destination string, msgs ...*message.Message) error {
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: wsql.DefaultPostgreSQLSchema{}}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	return forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: outbox.Topic}).Publish(destination, msgs...)
}

// prefillSeqs iterates the event numbers of pre-fill transaction tx
// (1-based), never past events.
type seqIter struct{ seq, end int }

func prefillSeqs(tx, events int) *seqIter {
	return &seqIter{seq: (tx-1)*prefillPerTx + 1, end: min(tx*prefillPerTx, events)}
}
func (i *seqIter) ok() bool { return i.seq <= i.end }
func (i *seqIter) next()    { i.seq++ }

// startForwarder runs watermill's forwarder as shipped: a watermill-sql
// subscriber on the outbox table and a watermill-amqp publisher, both with
// their defaults.
func startForwarder(c *components, pool *pgxpool.Pool, amqpURL string) error {
	logger := watermill.NopLogger{}
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{
		ConsumerGroup:  groupForwarder,
		SchemaAdapter:  wsql.DefaultPostgreSQLSchema{},
		OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
	}, logger)
	if err != nil {
		return fmt.Errorf("forwarder subscriber: %w", err)
	}
	pub, err := wamqp.NewPublisher(wamqp.NewDurablePubSubConfig(amqpURL, nil), logger)
	if err != nil {
		return fmt.Errorf("forwarder publisher: %w", err)
	}
	fwd, err := forwarder.NewForwarder(sub, pub, logger, forwarder.Config{ForwarderTopic: outbox.Topic})
	if err != nil {
		pub.Close()
		return fmt.Errorf("forwarder: %w", err)
	}
	c.start("forwarder", func(ctx context.Context) error {
		defer pub.Close()
		defer sub.Close()
		stopped := make(chan struct{})
		defer close(stopped)
		go func() {
			select {
			case <-ctx.Done():
				_ = fwd.Close()
			case <-stopped:
			}
		}()
		return fwd.Run(ctx)
	})
	return nil
}

// cursor is a relay's position: the last relayed row.
type cursor struct {
	txID   string // xid8 as text
	offset int64
}

func lastRow(ctx context.Context, pool *pgxpool.Pool) (cursor, error) {
	var c cursor
	// The table's column, not the text output column of the same name.
	err := pool.QueryRow(ctx, `SELECT transaction_id::text, "offset" FROM watermill_outbox
		ORDER BY watermill_outbox.transaction_id DESC, "offset" DESC LIMIT 1`).Scan(&c.txID, &c.offset)
	if err != nil {
		return c, fmt.Errorf("last outbox row: %w", err)
	}
	return c, nil
}

// waitDrained polls group's cursor until it reaches last, or until limit
// (when > 0) has passed since start, and returns how many rows the relay
// forwarded and in what time.
func waitDrained(ctx context.Context, pool *pgxpool.Pool, group string, last cursor, total int, start time.Time,
	limit time.Duration) (drained int, elapsed time.Duration, complete bool, err error) {
	err = wait.Poll(ctx, 5*time.Millisecond, "relay "+group+" to drain the outbox", func(ctx context.Context) (bool, error) {
		var at cursor
		err := pool.QueryRow(ctx, `SELECT last_processed_transaction_id::text, offset_acked FROM watermill_offsets_outbox
			WHERE consumer_group = $1`, group).Scan(&at.txID, &at.offset)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// The forwarder creates its cursor row when it subscribes.
		case err != nil:
			return false, err
		case at == last:
			elapsed, complete = time.Since(start), true
			return true, nil
		}
		elapsed = time.Since(start)
		return limit > 0 && elapsed >= limit, nil
	})
	if err != nil {
		return 0, 0, false, err
	}
	if complete {
		return total, elapsed, true, nil
	}
	err = pool.QueryRow(ctx, `SELECT count(*) FROM watermill_outbox o JOIN watermill_offsets_outbox c ON c.consumer_group = $1
		WHERE o.transaction_id < c.last_processed_transaction_id
		   OR (o.transaction_id = c.last_processed_transaction_id AND o."offset" <= c.offset_acked)`, group).Scan(&drained)
	if err != nil {
		return 0, 0, false, fmt.Errorf("count drained rows: %w", err)
	}
	return drained, elapsed, false, nil
}
