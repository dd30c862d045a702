package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
)

// sends counts what a pool sends to the server on its own: each batch and
// each statement outside one (pgx's tracer hooks; preparing a statement
// the first time on a connection is not counted); with only set, just
// those with a statement containing it.
type sends struct {
	only string
	n    atomic.Int64
}

func (s *sends) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.HasPrefix(d.SQL, "-- ping") && strings.Contains(d.SQL, s.only) {
		s.n.Add(1)
	}
	return ctx
}
func (s *sends) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *sends) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	if slices.ContainsFunc(d.Batch.QueuedQueries, func(q *pgx.QueuedQuery) bool { return strings.Contains(q.SQL, s.only) }) {
		s.n.Add(1)
	}
	return ctx
}
func (s *sends) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (s *sends) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// tracedPool is a second pool on the fixture's database whose sends (with
// a statement containing only) are counted.
func (f *fixture) tracedPool(only string) (*pgxpool.Pool, *sends) {
	f.t.Helper()
	s := &sends{only: only}
	return f.poolTracedBy(s), s
}

// poolTracedBy is a second pool on the fixture's database that tracer
// sees every statement and batch of. (Pool.Config returns a copy.)
func (f *fixture) poolTracedBy(tracer pgx.QueryTracer) *pgxpool.Pool {
	f.t.Helper()
	cfg := f.pool.Config()
	cfg.ConnConfig.Tracer = tracer
	return f.openPool(cfg)
}

// openPool opens a pool with cfg, closed when the test ends.
func (f *fixture) openPool(cfg *pgxpool.Config) *pgxpool.Pool {
	f.t.Helper()
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(pool.Close)
	return pool
}

// heldLedger records each message in the ledger with a statement held for
// the commit, after reading the poison table (a read, so a batch's earlier
// holds go out in front of it). A poisoned message's held statement fails
// on the server (a division by zero), after its handler has returned.
func heldLedger(consumer string) outbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		var p tick
		if err := msg.Decode(&p); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT 1 / (1 - (SELECT count(*) FROM poison WHERE message_id = $1))::int`, msg.ID)
		b.Queue(`INSERT INTO ledger (consumer, message_id, aggregate, seq) VALUES ($1, $2, $3, $4)`,
			consumer, msg.ID, msg.AggregateID, p.Seq)
		return outbox.SendAtCommit(ctx, tx, b)
	}
}

// A handler's held writes travel with the COMMIT, and the inbox claim and
// the BEGIN with them: a message whose handler only holds costs its
// transaction one send, where sending the same batch itself costs two (the
// claim rides with it, the COMMIT goes alone). The writes are committed,
// once each.
func TestHeldWritesTravelWithTheCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		handler outbox.Handler
		perMsg  int64
	}{
		{"held", heldLedger("held"), 1},
		{"sent", func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO ledger (consumer, message_id, aggregate, seq) VALUES ('sent', $1, $2, 0)`, msg.ID, msg.AggregateID)
			return tx.SendBatch(ctx, b).Close()
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			pool, counted := f.tracedPool("")
			c := f.newConsumerWith(tc.name, tc.handler, func(c *outbox.ConsumerConfig) {
				c.Pool, c.Workers, c.MaxBatch = pool, 1, 1
			})
			f.declare(c)
			const n = 20
			f.backlog(n, "a", "b")
			f.run(c.Run)
			f.waitApplied(tc.name, n, 60*time.Second)
			f.assertExactlyOnce(tc.name)
			if got := counted.n.Load(); got != tc.perMsg*n {
				t.Errorf("%d messages, one per transaction, cost %d sends, want %d", n, got, tc.perMsg*n)
			}
		})
	}
}

// The claim that rides with a transaction's first send fails on a message
// the inbox already holds, and takes everything sent after it down with it:
// here the held writes and the COMMIT, all in that one send. The batch is
// then claimed again with a claim of its own, which tells the copies apart:
// they are counted as duplicates and never applied, the other messages are
// applied once each.
func TestAClaimThatFailsTakesTheWritesSentWithIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg, metrics := f.newMetrics()
	c := f.newConsumerWith("held", heldLedger("held"), func(c *outbox.ConsumerConfig) { c.Metrics = metrics })
	f.declare(c)
	const n = 40
	var held []outbox.Message
	for i := range n {
		id := outbox.NewID()
		if err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
			return f.ob.Publish(f.ctx, tx, outbox.Event{ID: id, Type: tickType, AggregateID: "a", Payload: tick{Seq: i}})
		}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 1 {
			held = append(held, outbox.Message{ID: id, Type: tickType})
		}
	}
	if _, err := outbox.Claim(c, f.ctx, held); err != nil { // as if applied before
		t.Fatal(err)
	}
	f.relayAll()
	f.run(c.Run)
	f.waitFor(60*time.Second, "every message applied or absorbed", func() (bool, string) {
		applied, dups := f.count(`SELECT count(*) FROM ledger`), f.duplicates("held")
		return applied+dups >= n, fmt.Sprintf("%d applied, %d duplicates", applied, dups)
	})
	if k := f.count(`SELECT count(*) FROM ledger WHERE message_id = ANY($1)`, ids(held)); k != 0 {
		t.Errorf("%d of the %d messages the inbox held were applied again", k, len(held))
	}
	if k, d := f.count(`SELECT count(*) FROM ledger`), f.count(`SELECT count(DISTINCT message_id) FROM ledger`); k != n-len(held) || d != k {
		t.Errorf("ledger holds %d applications of %d messages, want %d once each", k, d, n-len(held))
	}
	if d := f.duplicates("held"); d != len(held) {
		t.Errorf("%d duplicates counted, want %d", d, len(held))
	}
	if splits := counterSum(t, reg, "shopmesh_consumer_batch_splits_total"); splits != 0 {
		t.Errorf("%.0f batch splits: a duplicate should be told apart without applying a batch one by one", splits)
	}
}

// A handler that fails after its first statement carried the guarded
// claim (and the claim was seen to succeed) failed on its own: its message
// is retried with backoff and counted as a retry, not run again at once
// with the eager claim, which is only for a claim whose fate is unknown.
func TestAHandlerFailingAfterItsGuardedClaimIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg, metrics := f.newMetrics()
	var calls atomic.Int32
	ledger := ledgerHandler("flaky")
	flaky := func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		if _, err := tx.Exec(ctx, `SELECT 1 WHERE $1::text <> ''`, msg.ID); err != nil { // carries the claim
			return err
		}
		if calls.Add(1) == 1 {
			return errors.New("flaky handler")
		}
		return ledger(ctx, tx, msg)
	}
	c := f.newConsumerWith("flaky", flaky, func(c *outbox.ConsumerConfig) { c.Metrics = metrics })
	f.startConsumer(c)
	if err := f.publish(1, "a"); err != nil {
		t.Fatal(err)
	}
	f.relayAll()
	f.waitApplied("flaky", 1, 30*time.Second)
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2 (the failure and the retry)", n)
	}
	if retries := counterSum(t, reg, "shopmesh_consumer_retries_total"); retries != 1 {
		t.Errorf("%.0f retries counted, want the one", retries)
	}
	f.assertExactlyOnce("flaky")
}

func ids(msgs []outbox.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// Held writes keep their place: a handler that reads what an earlier
// handler of its batch held sees it (the holds go out in front of the
// read), so a read-modify-write per aggregate, held, adds up; and a held
// write that fails on the server, after its handler returned, fails only
// its own message, which is dead-lettered, while its batch is applied
// again without it, every other message once.
func TestHeldWritesKeepTheirPlaceAndFailAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE counters (aggregate TEXT PRIMARY KEY, n INT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ledger := heldLedger("held")
	handler := func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		var n int
		err := tx.QueryRow(ctx, `SELECT n FROM counters WHERE aggregate = $1`, msg.AggregateID).Scan(&n)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO counters (aggregate, n) VALUES ($1, $2) ON CONFLICT (aggregate) DO UPDATE SET n = $2`, msg.AggregateID, n+1)
		if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
			return err
		}
		return ledger(ctx, tx, msg)
	}
	const n = 200
	reg, _ := f.applyPoisoned("held", handler, n, "a", "b")
	if k := f.count(`SELECT count(*) FROM ledger`); k != n-1 {
		t.Errorf("ledger holds %d applications, want %d", k, n-1)
	}
	if k := f.count(`SELECT count(DISTINCT message_id) FROM ledger`); k != n-1 {
		t.Errorf("ledger holds %d messages, want %d", k, n-1)
	}
	f.assertOrderPerAggregate("held")
	// Every applied message added one to its aggregate's counter: none read
	// a counter an earlier handler of its batch had moved but not sent.
	if k := f.count(`SELECT coalesce(sum(n), 0) FROM counters`); k != n-1 {
		t.Errorf("counters add up to %d, want %d: a read missed a held write", k, n-1)
	}
	if splits := counterSum(t, reg, "shopmesh_consumer_batch_splits_total"); splits < 1 {
		t.Errorf("no batch split: the poisoned message was never in a batch, so this proves nothing")
	}
}

// A batch with result callbacks is sent at once, even inside a consumer's
// transaction: a callback's check must be able to stop the commit.
func TestSendAtCommitSendsABatchWithCallbacksAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	checked := make(chan error, 1)
	handler := func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`).Exec(func(pgconn.CommandTag) error { return errors.New("refused") })
		err := outbox.SendAtCommit(ctx, tx, b)
		select {
		case checked <- err:
		default:
		}
		return outbox.Permanent(errors.New("done"))
	}
	c := f.newConsumerWith("callbacks", handler, nil)
	f.declare(c)
	f.backlog(1, "a")
	f.run(c.Run)
	select {
	case err := <-checked:
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("SendAtCommit = %v, want the callback's error at once", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the handler never ran")
	}
}
