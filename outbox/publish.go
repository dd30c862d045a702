package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"
)

// Topic is the watermill-sql topic of the outbox; its table is watermill_outbox.
const Topic = "outbox"

// Outbox writes a service's events into its database inside the caller's
// transaction. It is safe for concurrent use.
type Outbox struct {
	source    string
	wake      chan struct{}
	scheduled chan struct{} // Schedule wakes the relay's scheduler
}

// New returns the outbox of the named service. The name is the events'
// source and the prefix of every event type it may publish.
func New(service string) (*Outbox, error) {
	if !serviceName.MatchString(service) {
		return nil, fmt.Errorf("outbox: service name %q must be lower-case letters, digits or _", service)
	}
	return &Outbox{source: service, wake: make(chan struct{}, 1), scheduled: make(chan struct{}, 1)}, nil
}

// Source is the service name events are published under.
func (o *Outbox) Source() string { return o.source }

// Publish writes events into the outbox in tx. Nothing reaches the broker
// unless tx commits; after a commit, call Notify (or use WithTx, which does)
// so the relay forwards the events at once instead of at its next poll.
// Inside a consumer's transaction or WithTx's the insert travels with the
// transaction's next statement or its COMMIT (SendAtCommit).
func (o *Outbox) Publish(ctx context.Context, tx pgx.Tx, events ...Event) error {
	msgs, err := o.messages(ctx, events)
	if err != nil {
		return err
	}
	return write(ctx, tx, msgs)
}

// Queue adds the insert of events into the outbox to b, a batch the caller
// sends in its transaction: the events travel in the same round trip as the
// caller's own writes queued there. As with Publish, nothing reaches the
// broker unless the transaction commits, and Notify wakes the relay after.
func (o *Outbox) Queue(ctx context.Context, b *pgx.Batch, events ...Event) error {
	msgs, err := o.messages(ctx, events)
	if err != nil {
		return err
	}
	return queueInsert(b, msgs)
}

// PublishLatest publishes snapshot events: each carries the whole current
// state of its aggregate (a stock level), so readers need only the latest
// per aggregate. Inside a consumer's transaction (ctx being a Handler's) it
// keeps the last event per type and aggregate and writes those when the
// transaction ends, after the events published with Publish: a batch of
// messages that moves one stock level twenty times publishes it once, and
// the levels in between were never visible outside the transaction anyway.
// Each kept event keeps its own correlation, cause and time. Elsewhere it
// publishes at once, as Publish does.
func (o *Outbox) PublishLatest(ctx context.Context, tx pgx.Tx, events ...Event) error {
	msgs, err := o.messages(ctx, events)
	if err != nil || len(msgs) == 0 {
		return err
	}
	l, deferred := Defer(ctx, latestKey{o}, func() *latest { return &latest{at: map[latestOf]int{}} })
	if !deferred {
		return write(ctx, tx, msgs)
	}
	for i, m := range msgs {
		key := latestOf{events[i].Type, events[i].AggregateID}
		if j, seen := l.at[key]; seen {
			l.msgs[j] = m
			continue
		}
		l.at[key] = len(l.msgs)
		l.msgs = append(l.msgs, m)
	}
	return nil
}

// latest is a consumer transaction's snapshot events of one outbox, the
// last per type and aggregate, in the order each was first published.
type latest struct {
	msgs []*message.Message
	at   map[latestOf]int
}

type latestKey struct{ o *Outbox }

type latestOf struct{ eventType, aggregateID string }

func (l *latest) Flush(ctx context.Context, tx pgx.Tx) error { return write(ctx, tx, l.msgs) }

// QueueFlush queues the insert of the kept events, to travel with the
// consumer transaction's COMMIT.
func (l *latest) QueueFlush(b *pgx.Batch) error { return queueInsert(b, l.msgs) }

// write inserts msgs into the outbox table in tx, in one statement (held
// for the commit where tx holds writes).
func write(ctx context.Context, tx pgx.Tx, msgs []*message.Message) error {
	b := &pgx.Batch{}
	if err := queueInsert(b, msgs); err != nil || b.Len() == 0 {
		return err
	}
	if err := SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("write %d events to outbox: %w", len(msgs), err)
	}
	return nil
}

// queueInsert queues the statement that writes msgs into the outbox table,
// if there are any: the one watermill-sql's publisher runs, built by its
// PostgreSQL schema adapter.
func queueInsert(b *pgx.Batch, msgs []*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	q, err := schemaAdapter{}.InsertQuery(wsql.InsertQueryParams{Topic: Topic, Msgs: msgs})
	if err != nil {
		return fmt.Errorf("outbox insert of %d events: %w", len(msgs), err)
	}
	b.Queue(q.Query, q.Args...)
	return nil
}

// Schedule writes events that enter the outbox at dueAt (a saga timeout, a
// delayed retry). Like Publish it is part of tx (and held for its commit
// where tx holds writes): a rolled-back transaction schedules nothing. The
// relay's scheduler moves due events into the outbox.
func (o *Outbox) Schedule(ctx context.Context, tx pgx.Tx, dueAt time.Time, events ...Event) error {
	msgs, err := o.messages(ctx, events)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	payloads := make([]string, len(msgs))
	metadata := make([]string, len(msgs))
	for i, m := range msgs {
		md, err := json.Marshal(m.Metadata)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", m.UUID, err)
		}
		ids[i], payloads[i], metadata[i] = m.UUID, string(m.Payload), string(md)
	}
	// One statement for the whole call; WITH ORDINALITY keeps the events'
	// order in the id sequence the scheduler moves them by.
	b := &pgx.Batch{}
	b.Queue(`
		INSERT INTO outbox_scheduled (due_at, uuid, payload, metadata)
		SELECT $1, e.uuid, e.payload::json, e.metadata::json
		FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS e(uuid, payload, metadata, n)
		ORDER BY e.n`, dueAt, ids, payloads, metadata)
	if err := SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("schedule %d events: %w", len(msgs), err)
	}
	select { // the scheduler looks often while the transaction may commit
	case o.scheduled <- struct{}{}:
	default:
	}
	return nil
}

// Unschedule withdraws scheduled events by id (a saga timeout whose wait
// ended otherwise), as part of tx: held for its commit like Schedule, so a
// rolled-back transaction withdraws nothing. An event the scheduler has
// already moved into the outbox, or one never scheduled, is no error:
// withdrawing saves its delivery, and a consumer must still tolerate the
// late event, as it tolerates any reordering of a timer and its answer.
func (o *Outbox) Unschedule(ctx context.Context, tx pgx.Tx, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM outbox_scheduled WHERE uuid = ANY($1::text[])`, ids)
	if err := SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("unschedule %d events: %w", len(ids), err)
	}
	return nil
}

// Notify tells the relay that a transaction with events has committed. It
// never blocks; several notifications before the relay wakes count as one.
func (o *Outbox) Notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Within runs fn in db's transaction when db is one (typically a
// consumer's: its owner commits, and an error from fn must fail it, as
// nothing fn wrote is undone on its own); otherwise it runs fn as WithTx
// does, in a transaction of its own. A store that works both inside a
// consumer's transaction and on its own uses it, so that inside it costs no
// savepoint (two round trips) per call.
func (o *Outbox) Within(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(tx pgx.Tx) error) error {
	if tx, ok := db.(pgx.Tx); ok {
		return fn(tx)
	}
	return o.WithTx(ctx, db, fn)
}

// WithTx runs fn in a transaction on db, commits, and wakes the relay. On
// a pool the transaction costs no round trips of its own: its BEGIN
// travels with fn's first statement, and what fn holds for the commit
// (Publish, SendAtCommit) with its COMMIT; so a transaction whose last
// statements are held writes ends in one round trip, and one that sent
// and held nothing sends nothing. On a transaction db it runs fn in a
// savepoint.
func (o *Outbox) WithTx(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(tx pgx.Tx) error) error {
	pool, ok := db.(*pgxpool.Pool)
	if !ok {
		if err := withBegin(ctx, db, fn); err != nil {
			return err
		}
		o.Notify()
		return nil
	}
	t, err := acquire(ctx, pool)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer t.close(ctx)
	st := newDeferredState(t)
	if err := fn(st.tx); err != nil {
		return err
	}
	if err := t.commit(ctx, st.takeHeld()); err != nil {
		return err
	}
	o.Notify()
	return nil
}

// withBegin runs fn in the transaction db.Begin opens (a savepoint when db
// is a transaction) and commits it.
func withBegin(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (o *Outbox) messages(ctx context.Context, events []Event) ([]*message.Message, error) {
	msgs := make([]*message.Message, 0, len(events))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	correlation, causation := CorrelationID(ctx), causationID(ctx)
	for _, e := range events {
		producer, err := ProducerOf(e.Type)
		if err != nil {
			return nil, err
		}
		if producer != o.source {
			return nil, fmt.Errorf("outbox %s cannot publish %s: it belongs to %s", o.source, e.Type, producer)
		}
		if e.AggregateID == "" {
			return nil, errors.New("outbox: event " + e.Type + " has no aggregate id")
		}
		payload, err := marshalPayload(e.Payload)
		if err != nil {
			return nil, fmt.Errorf("payload of %s: %w", e.Type, err)
		}
		id := e.ID
		if id == "" {
			id = NewID()
		}
		at := e.OccurredAt
		if at.IsZero() {
			at = time.Now()
		}
		m := message.NewMessage(id, payload)
		m.Metadata = message.Metadata{
			HeaderID:          id,
			HeaderType:        e.Type,
			HeaderSource:      o.source,
			HeaderAggregateID: e.AggregateID,
			HeaderOccurredAt:  at.UTC().Format(time.RFC3339Nano),
		}
		if correlation == "" {
			// The first event of a flow starts its correlation.
			correlation = id
		}
		m.Metadata[HeaderCorrelationID] = correlation
		if e.CorrelationID != "" {
			m.Metadata[HeaderCorrelationID] = e.CorrelationID
		}
		if causation != "" {
			m.Metadata[HeaderCausationID] = causation
		}
		if e.CausationID != "" {
			m.Metadata[HeaderCausationID] = e.CausationID
		}
		if tp := carrier.Get("traceparent"); tp != "" {
			m.Metadata[HeaderTraceparent] = tp
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func marshalPayload(p any) ([]byte, error) {
	var b []byte
	switch v := p.(type) {
	case json.RawMessage:
		b = v
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(p); err != nil {
			return nil, err
		}
	}
	if !json.Valid(b) {
		return nil, errors.New("payload is not valid JSON")
	}
	return b, nil
}

// schemaAdapter is watermill-sql's PostgreSQL schema with the tables created by
// this package's migrations instead of on first publish (creating tables
// inside a caller's transaction would take locks the caller does not expect).
type schemaAdapter struct{ wsql.DefaultPostgreSQLSchema }
