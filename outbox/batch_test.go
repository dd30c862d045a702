package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
)

// assertOrderPerAggregate checks that consumer applied each aggregate's
// messages in seq order (the ledger's id is the application order).
func (f *fixture) assertOrderPerAggregate(consumer string) {
	f.t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT aggregate, seq FROM ledger WHERE consumer = $1 ORDER BY id`, consumer)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	last := map[string]int{}
	for rows.Next() {
		var agg string
		var seq int
		if err := rows.Scan(&agg, &seq); err != nil {
			f.t.Fatal(err)
		}
		if seq <= last[agg] {
			f.t.Errorf("aggregate %s: seq %d applied after %d", agg, seq, last[agg])
		}
		last[agg] = seq
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
}

// backlog publishes n events, seq 1..n, over the given aggregates in turn,
// and relays them into the declared queues before any consumer runs.
func (f *fixture) backlog(n int, aggregates ...string) {
	f.t.Helper()
	for seq := 1; seq <= n; seq++ {
		if err := f.publish(seq, aggregates[seq%len(aggregates)]); err != nil {
			f.t.Fatal(err)
		}
	}
	f.relayAll()
}

// relayAll runs a relay until the outbox has nothing pending.
func (f *fixture) relayAll() {
	f.t.Helper()
	stop := f.runRelay(nil)
	f.waitFor(30*time.Second, "backlog relayed", func() (bool, string) {
		s, err := outbox.ReadStats(f.ctx, f.pool)
		if err != nil {
			return false, err.Error()
		}
		return s.Pending == 0, fmt.Sprintf("%d pending", s.Pending)
	})
	stop()
}

// batchHandler applies like ledgerHandler and records the transaction each
// message was applied in.
func batchHandler(consumer string) outbox.Handler {
	ledger := ledgerHandler(consumer)
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		if err := ledger(ctx, tx, msg); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO applied_in (message_id, txid) VALUES ($1, txid_current())`, msg.ID)
		return err
	}
}

// newBatchConsumer is a consumer with two workers, batches of up to 8 and
// metrics in reg; applied_in records each message's transaction.
func (f *fixture) newBatchConsumer(name string, reg *prometheus.Registry, handler outbox.Handler, mod func(*outbox.ConsumerConfig)) *outbox.Consumer {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE IF NOT EXISTS applied_in (message_id TEXT NOT NULL, txid BIGINT NOT NULL)`); err != nil {
		f.t.Fatal(err)
	}
	metrics, err := outbox.NewMetrics(reg)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.newConsumerWith(name, handler, func(c *outbox.ConsumerConfig) {
		c.Workers, c.MaxBatch, c.Metrics = 2, 8, metrics
		if mod != nil {
			mod(c)
		}
	})
}

// declare creates the consumer's queue and bindings without consuming.
func (f *fixture) declare(c *outbox.Consumer) {
	f.t.Helper()
	withChannel(f.t, f.amqpURL, func(ch *amqp.Channel) error { return outbox.DeclareQueue(ch, c.Spec()) })
}

// A worker commits what has queued up for it in shared transactions, never
// more than MaxBatch at a time, and batching changes nothing of what is
// applied or in which order.
func TestConsumerCommitsABacklogInBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	c := f.newBatchConsumer("ledger", reg, batchHandler("ledger"), nil)
	f.declare(c)
	const n = 400
	f.backlog(n, "a", "b", "c", "d", "e")
	f.run(c.Run)
	f.waitApplied("ledger", n, 60*time.Second)
	f.assertExactlyOnce("ledger")
	f.assertOrderPerAggregate("ledger")

	var txs, biggest int
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*), max(n) FROM (SELECT txid, count(*) AS n FROM applied_in GROUP BY txid) b`).
		Scan(&txs, &biggest); err != nil {
		t.Fatal(err)
	}
	if txs >= n {
		t.Errorf("%d messages took %d transactions: no batching", n, txs)
	}
	if biggest > 8 {
		t.Errorf("a transaction applied %d messages, above MaxBatch 8", biggest)
	}
	if splits := counterSum(t, reg, "shopmesh_consumer_batch_splits_total"); splits != 0 {
		t.Errorf("%v batches split with no failing message", splits)
	}
	t.Logf("%d messages in %d transactions (largest %d)", n, txs, biggest)
}

// A lingering worker gathers messages that trickle in into shared
// transactions: 20 events committed 20 ms apart, each relayed as it
// commits, reach one worker that waits up to 2 s to fill a batch of 64.
// Without the linger each would be applied in its own transaction (the
// worker finds nothing queued behind it).
func TestALingeringConsumerBatchesATrickle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	c := f.newBatchConsumer("ledger", reg, batchHandler("ledger"), func(c *outbox.ConsumerConfig) {
		c.Workers, c.MaxBatch, c.Linger = 1, 64, 2*time.Second
	})
	f.declare(c)
	f.runRelay(nil) // woken by each commit (Outbox.WithTx)
	f.run(c.Run)
	const n = 20
	for seq := 1; seq <= n; seq++ {
		if err := f.publish(seq, []string{"a", "b"}[seq%2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.waitApplied("ledger", n, 60*time.Second)
	f.assertExactlyOnce("ledger")
	f.assertOrderPerAggregate("ledger")
	txs := f.count(`SELECT count(DISTINCT txid) FROM applied_in`)
	// The trickle takes about 0.4 s; a stalled machine could cut it into
	// two or three lingers, never into twenty.
	if txs > 3 {
		t.Errorf("%d messages took %d transactions", n, txs)
	}
	t.Logf("%d messages in %d transactions", n, txs)
}

// A failing message inside a batch takes nothing else down: the others of
// its batch are applied, once each and in order, the failing one is retried
// on its own and dead-lettered, and aggregates behind it carry on.
func TestFailingMessageInABatchFailsAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	c := f.newBatchConsumer("ledger", reg, batchHandler("ledger"), func(c *outbox.ConsumerConfig) {
		c.Workers, c.MaxAttempts = 1, 3
	})
	f.declare(c)
	const n = 120
	for seq := 1; seq <= n; seq++ {
		id := outbox.NewID()
		if seq%40 == 20 { // three poisoned messages, each in the middle of a batch's worth
			if _, err := f.pool.Exec(f.ctx, `INSERT INTO poison VALUES ($1)`, id); err != nil {
				t.Fatal(err)
			}
		}
		err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
			return f.ob.Publish(f.ctx, tx, outbox.Event{ID: id, Type: tickType, AggregateID: fmt.Sprintf("agg-%d", seq%3), Payload: tick{seq}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	f.relayAll()
	f.run(c.Run)
	f.waitApplied("ledger", n-3, 60*time.Second)
	f.waitFor(30*time.Second, "three dead letters", func() (bool, string) {
		k := f.count(`SELECT count(*) FROM dead_letters`)
		return k == 3, fmt.Sprintf("%d dead letters", k)
	})
	if k := f.count(`SELECT count(*) FROM dead_letters d JOIN poison p ON p.message_id = d.message_id WHERE d.attempts = 3`); k != 3 {
		t.Errorf("%d of 3 dead letters are the poisoned messages after 3 attempts", k)
	}
	if k := f.count(`SELECT count(*) FROM ledger l JOIN poison p ON p.message_id = l.message_id`); k != 0 {
		t.Errorf("%d poisoned messages applied", k)
	}
	if k := f.count(`SELECT count(*) - count(DISTINCT message_id) FROM ledger`); k != 0 {
		t.Errorf("%d messages applied twice", k)
	}
	f.assertOrderPerAggregate("ledger")
	if splits := counterSum(t, reg, "shopmesh_consumer_batch_splits_total"); splits < 1 {
		t.Errorf("no batch split; the poisoned messages were never inside a batch, so this proves nothing")
	}
	if retries := counterSum(t, reg, "shopmesh_consumer_retries_total"); retries != 6 {
		t.Errorf("%v retries, want 6 (two per poisoned message; healthy ones are never retried)", retries)
	}
}

// A batch that waits for a row lock gives way after BatchLockTimeout and is
// applied one message per transaction, which waits as long as the lock is
// held: no deadlock can form between batches, and a lock wait is not a
// failed attempt.
func TestBatchGivesWayToARowLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE hot (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO hot VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	ledger := batchHandler("ledger")
	handler := func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		// The first message counts on a row nobody holds: the worker may
		// take it before the rest of the backlog has reached it, alone,
		// and a message alone waits for a lock as long as it is held. The
		// rest queue up meanwhile and are batched onto the held row.
		var p tick
		if err := msg.Decode(&p); err != nil {
			return err
		}
		row := 1
		if p.Seq == 1 {
			row = 2
		}
		if _, err := tx.Exec(ctx, `UPDATE hot SET n = n + 1 WHERE id = $1`, row); err != nil {
			return err
		}
		return ledger(ctx, tx, msg)
	}
	reg := prometheus.NewRegistry()
	c := f.newBatchConsumer("ledger", reg, handler, func(c *outbox.ConsumerConfig) {
		c.Workers, c.BatchLockTimeout = 1, 20*time.Millisecond
	})
	f.declare(c)
	const n = 40
	f.backlog(n, "a", "b")

	// Hold the row while the consumer starts on its full queue.
	holder, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background()) //nolint:errcheck // committed below
	if _, err := holder.Exec(f.ctx, `SELECT n FROM hot WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	f.run(c.Run)
	// Well inside the consumer's 30 s transaction deadline, which would
	// split the batch too, without any lock timeout.
	f.waitFor(15*time.Second, "a batch to give way", func() (bool, string) {
		s := counterSum(t, reg, "shopmesh_consumer_batch_splits_total")
		return s >= 1, fmt.Sprintf("%v splits", s)
	})
	if err := holder.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.waitApplied("ledger", n, 60*time.Second)
	f.assertExactlyOnce("ledger")
	f.assertOrderPerAggregate("ledger")
	if k := f.count(`SELECT sum(n) FROM hot`); k != n {
		t.Errorf("hot rows counted %d applications, want %d", k, n)
	}
	if retries := counterSum(t, reg, "shopmesh_consumer_retries_total"); retries != 0 {
		t.Errorf("%v retries: waiting for a lock counted as a failed attempt", retries)
	}
	if k := f.count(`SELECT count(*) FROM dead_letters`); k != 0 {
		t.Errorf("%d dead letters", k)
	}
}

// A batch claims its messages in one statement (a lone message in a single
// row): a message the inbox already holds, or one that appears twice in the
// batch, is claimed once and the rest are counted as duplicates.
func TestBatchClaimsEachMessageOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.newConsumer("ledger", nil)
	a, b, d := outbox.Message{ID: outbox.NewID(), Type: tickType}, outbox.Message{ID: outbox.NewID(), Type: tickType},
		outbox.Message{ID: outbox.NewID(), Type: tickType}
	claim := func(msgs ...outbox.Message) []bool {
		t.Helper()
		claimed, err := outbox.Claim(c, f.ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		return claimed
	}
	if got := fmt.Sprint(claim(a, b, a)); got != "[true true false]" {
		t.Errorf("first batch claimed %s, want [true true false]", got)
	}
	if got := fmt.Sprint(claim(b, d)); got != "[false true]" {
		t.Errorf("second batch claimed %s, want [false true]", got)
	}
	// One message alone takes the single-row path.
	if got := fmt.Sprint(claim(d)); got != "[false]" {
		t.Errorf("a lone duplicate claimed %s, want [false]", got)
	}
	e := outbox.Message{ID: outbox.NewID(), Type: tickType}
	if got := fmt.Sprint(claim(e)); got != "[true]" {
		t.Errorf("a lone new message claimed %s, want [true]", got)
	}
	if n := f.count(`SELECT count(*) FROM inbox WHERE consumer = 'ledger'`); n != 4 {
		t.Errorf("inbox holds %d keys, want 4", n)
	}
	if n := f.duplicates("ledger"); n != 3 {
		t.Errorf("%d duplicates counted, want 3", n)
	}
}

// BenchmarkInboxClaim times a transaction that claims a batch of 16 new
// messages as a batch does (one statement, sent with the BEGIN) side by side
// with one that begins and then inserts one row per message, alternating in
// one loop. Run it with
//
//	go test ./outbox -run '^$' -bench InboxClaim
func BenchmarkInboxClaim(b *testing.B) {
	ctx, pool := benchDatabase(b)
	c, err := outbox.NewConsumer(outbox.ConsumerConfig{Service: "sink", Name: "bench", Pool: pool, AMQPURL: "amqp://127.0.0.1:1/"})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 16
	msgs := make([]outbox.Message, batch)
	fresh := func() {
		for i := range msgs {
			msgs[i] = outbox.Message{ID: outbox.NewID(), Type: tickType}
		}
	}
	timed := func(fn func(tx pgx.Tx) error) time.Duration {
		start := time.Now()
		if err := pgx.BeginFunc(ctx, pool, fn); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var one, each time.Duration
	for b.Loop() {
		fresh()
		start := time.Now()
		claimed, err := outbox.Claim(c, ctx, msgs)
		if err != nil {
			b.Fatal(err)
		}
		if slices.Contains(claimed, false) {
			b.Fatalf("claimed %v, want all", claimed)
		}
		one += time.Since(start)
		fresh()
		each += timed(func(tx pgx.Tx) error {
			for _, m := range msgs {
				if _, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
					"bench", m.ID, m.Type); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(one), "one-statement-ms/batch")
	b.ReportMetric(ms(each), "per-message-ms/batch")
	b.ReportMetric(float64(each)/float64(one), "per-message/one")
}
