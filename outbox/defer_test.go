package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopmesh/shopmesh/outbox"
)

// tally adds up the messages of one consumer transaction per aggregate and
// writes one row per aggregate and one flush record when it is flushed.
// Like ledgerHandler it refuses poisoned messages, but only when flushing,
// so that no single handler call can be blamed.
type tally struct {
	counts   map[string]int
	messages []string
}

type tallyKey struct{}

func (t *tally) Flush(ctx context.Context, tx pgx.Tx) error {
	var poisoned bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM poison WHERE message_id = ANY($1))`, t.messages).Scan(&poisoned); err != nil {
		return err
	}
	if poisoned {
		return errors.New("poisoned batch")
	}
	b := &pgx.Batch{}
	for agg, n := range t.counts {
		b.Queue(`INSERT INTO tallies (aggregate, n) VALUES ($1, $2) ON CONFLICT (aggregate) DO UPDATE SET n = tallies.n + $2`, agg, n)
	}
	b.Queue(`INSERT INTO flushes (txid, messages) VALUES (txid_current(), $1)`, len(t.messages))
	return tx.SendBatch(ctx, b).Close()
}

// tallyTables creates the tables tally writes.
func (f *fixture) tallyTables() {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, `
		CREATE TABLE tallies (aggregate TEXT PRIMARY KEY, n INT NOT NULL);
		CREATE TABLE flushes (txid BIGINT PRIMARY KEY, messages INT NOT NULL)`); err != nil {
		f.t.Fatal(err)
	}
}

func newTally() *tally { return &tally{counts: map[string]int{}} }

// tallyHandler records each message in the ledger and in the transaction's
// tally.
func tallyHandler(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
	t, ok := outbox.Defer(ctx, tallyKey{}, newTally)
	if !ok {
		return errors.New("handler context has no consumer transaction")
	}
	t.counts[msg.AggregateID]++
	t.messages = append(t.messages, msg.ID)
	_, err := tx.Exec(ctx, `INSERT INTO ledger (consumer, message_id, aggregate, seq) VALUES ('tally', $1, $2, 0)`, msg.ID, msg.AggregateID)
	return err
}

// applyPoisoned runs a consumer named name with handler h, one worker,
// batches of up to 16 and two attempts, over a backlog of n ticks spread
// over aggregates in turn (one event per transaction, relayed before the
// consumer starts) whose middle one is poisoned, until every message is
// applied or dead-lettered; it checks that the poisoned one, alone, was.
// It returns the consumer's metrics and the poisoned message's id.
func (f *fixture) applyPoisoned(name string, h outbox.Handler, n int, aggregates ...string) (*prometheus.Registry, string) {
	f.t.Helper()
	reg, metrics := f.newMetrics()
	c := f.newConsumerWith(name, h, func(c *outbox.ConsumerConfig) {
		c.Workers, c.MaxBatch, c.MaxAttempts, c.Metrics = 1, 16, 2, metrics
	})
	f.declare(c)
	var poisoned string
	for seq := 1; seq <= n; seq++ {
		id := outbox.NewID()
		if seq == n/2 {
			poisoned = id
			if _, err := f.pool.Exec(f.ctx, `INSERT INTO poison VALUES ($1)`, id); err != nil {
				f.t.Fatal(err)
			}
		}
		err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
			return f.ob.Publish(f.ctx, tx, outbox.Event{ID: id, Type: tickType, AggregateID: aggregates[seq%len(aggregates)], Payload: tick{seq}})
		})
		if err != nil {
			f.t.Fatal(err)
		}
	}
	f.relayAll()
	f.run(c.Run)
	f.waitFor(60*time.Second, "every message applied or dead-lettered", func() (bool, string) {
		applied, dead := f.count(`SELECT count(*) FROM ledger`), f.count(`SELECT count(*) FROM dead_letters`)
		return applied+dead == n, fmt.Sprintf("%d applied, %d dead-lettered", applied, dead)
	})
	if k := f.count(`SELECT count(*) FROM dead_letters d JOIN poison p USING (message_id)`); k != 1 {
		f.t.Errorf("%d dead letters are the poisoned message, want 1 (and no other)", k)
	}
	return reg, poisoned
}

// A Deferred is flushed once per consumer transaction, after its handlers:
// a backlog applied in batches is written once per batch, and what it adds
// up counts every message exactly once. A batch whose flush fails is applied
// one message per transaction, so only the message at fault is
// dead-lettered and none of its batch is lost or counted twice.
func TestDeferredFlushesOncePerTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.tallyTables()
	const n = 300
	reg, _ := f.applyPoisoned("tally", tallyHandler, n, "a", "b", "c")
	if k := f.count(`SELECT coalesce(sum(n), 0) FROM tallies`); k != n-1 {
		t.Errorf("tallies add up to %d, want %d: a message counted twice or lost", k, n-1)
	}
	if k := f.count(`SELECT coalesce(sum(messages), 0) FROM flushes`); k != n-1 {
		t.Errorf("flushes cover %d messages, want %d", k, n-1)
	}
	txs := f.count(`SELECT count(*) FROM flushes`)
	if txs >= n/2 {
		t.Errorf("%d flushes for %d messages: the backlog was not written once per batch", txs, n)
	}
	if splits := counterSum(t, reg, "shopmesh_consumer_batch_splits_total"); splits < 1 {
		t.Errorf("no batch split: the poisoned message was never in a batch, so this proves nothing")
	}
	t.Logf("%d messages, %d flushes", n, txs)
}

// Outside a consumer's handler Accumulate flushes at once, in the caller's
// transaction.
func TestAccumulateOutsideAConsumerFlushesAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.tallyTables()
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return outbox.Accumulate(f.ctx, tx, tallyKey{}, newTally, func(t *tally) {
			t.counts["a"] += 2
			t.messages = append(t.messages, outbox.NewID())
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, k := f.count(`SELECT coalesce(sum(n), 0) FROM tallies`), f.count(`SELECT count(*) FROM flushes`); n != 2 || k != 1 {
		t.Errorf("after one Accumulate outside a consumer: tally %d, flushes %d; want 2 and 1", n, k)
	}
}

// Outside a consumer's handler there is no transaction end to defer to.
func TestDeferOutsideAConsumerTransaction(t *testing.T) {
	created := false
	_, ok := outbox.Defer(context.Background(), tallyKey{}, func() *tally { created = true; return &tally{} })
	if ok || created {
		t.Errorf("Defer outside a handler: ok %v, created %v; want neither", ok, created)
	}
}

const levelType = "source.level.v1"

// levelHandler applies a tick and publishes its aggregate's new level, a
// snapshot, latest-only.
func (f *fixture) levelHandler(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
	var p tick
	if err := msg.Decode(&p); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ledger (consumer, message_id, aggregate, seq) VALUES ('levels', $1, $2, $3)`,
		msg.ID, msg.AggregateID, p.Seq); err != nil {
		return err
	}
	return f.ob.PublishLatest(ctx, tx, outbox.Event{Type: levelType, AggregateID: msg.AggregateID, Payload: tick{p.Seq}})
}

// Inside a consumer's batch PublishLatest keeps one event per aggregate,
// the last, caused by the message that set it; per aggregate the published
// levels still rise in order and the last one published is the final level.
// Outside a consumer it publishes every call.
func TestPublishLatestKeepsTheLastSnapshotPerTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.newConsumerWith("levels", f.levelHandler, func(c *outbox.ConsumerConfig) { c.Workers, c.MaxBatch = 1, 16 })
	f.declare(c)
	const n = 240
	f.backlog(n, "a", "b", "c")
	f.run(c.Run)
	f.waitApplied("levels", n, 60*time.Second)

	rows, err := f.pool.Query(f.ctx, `
		SELECT o.metadata->>'aggregate_id', (o.payload->>'seq')::int, l.seq
		FROM watermill_outbox o LEFT JOIN ledger l ON l.message_id = o.metadata->>'causation_id'
		WHERE o.metadata->>'type' = $1 ORDER BY o."offset"`, levelType)
	if err != nil {
		t.Fatal(err)
	}
	last, published := map[string]int{}, 0
	for rows.Next() {
		var agg string
		var seq int
		var cause *int
		if err := rows.Scan(&agg, &seq, &cause); err != nil {
			t.Fatal(err)
		}
		published++
		if cause == nil || *cause != seq {
			t.Errorf("level %s/%d is not caused by the message that set it (cause seq %v)", agg, seq, cause)
		}
		if seq <= last[agg] {
			t.Errorf("aggregate %s: level %d published after %d", agg, seq, last[agg])
		}
		last[agg] = seq
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, agg := range []string{"a", "b", "c"} {
		if want := f.count(`SELECT max(seq) FROM ledger WHERE consumer = 'levels' AND aggregate = $1`, agg); last[agg] != want {
			t.Errorf("aggregate %s: last published level %d, final level %d", agg, last[agg], want)
		}
	}
	if published >= n/2 {
		t.Errorf("%d levels published for %d messages: no batch kept the latest only", published, n)
	}
	t.Logf("%d messages, %d levels published", n, published)

	before := f.count(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1`, levelType)
	err = f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		for seq := range 2 {
			if err := f.ob.PublishLatest(f.ctx, tx, outbox.Event{Type: levelType, AggregateID: "a", Payload: tick{n + seq}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.count(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1`, levelType) - before; got != 2 {
		t.Errorf("outside a consumer two PublishLatest calls wrote %d events, want 2", got)
	}
}

// What a handler registers with AfterCommit runs once its transaction has
// committed, when others can read what it wrote, and only then: a batch
// that rolls back (a poisoned message in it) drops what its handlers
// registered, the messages applied again register again, and the poisoned
// message's registration never runs. Outside a consumer's handler
// AfterCommit refuses.
func TestAfterCommitRunsOnceItsTransactionCommitted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if outbox.AfterCommit(f.ctx, func() {}) {
		t.Error("AfterCommit accepted a context that is no consumer transaction's")
	}
	var (
		mu        sync.Mutex
		ran       = map[string]int{}
		invisible []string
	)
	ledger := ledgerHandler("after")
	handler := func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		ok := outbox.AfterCommit(ctx, func() {
			// Read on another connection: the row must be committed.
			visible := f.count(`SELECT count(*) FROM ledger WHERE consumer = 'after' AND message_id = $1`, msg.ID) == 1
			mu.Lock()
			defer mu.Unlock()
			ran[msg.ID]++
			if !visible {
				invisible = append(invisible, msg.ID)
			}
		})
		if !ok {
			return errors.New("handler context has no consumer transaction")
		}
		return ledger(ctx, tx, msg)
	}
	const n = 200
	reg, poisoned := f.applyPoisoned("after", handler, n, "a")
	// The last commit's registrations run just after it.
	f.waitFor(10*time.Second, "every applied message's registration ran", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) >= n-1, fmt.Sprintf("%d of %d ran", len(ran), n-1)
	})
	mu.Lock()
	defer mu.Unlock()
	if ran[poisoned] != 0 {
		t.Errorf("the poisoned message's registration ran %d times", ran[poisoned])
	}
	for id, k := range ran {
		if k != 1 && id != poisoned {
			t.Errorf("message %s: its registration ran %d times, want once", id, k)
		}
	}
	if len(invisible) > 0 {
		t.Errorf("%d registrations ran before their transaction's rows were visible, first %s", len(invisible), invisible[0])
	}
	if f.count(`SELECT count(*) FROM dead_letters WHERE message_id = $1`, poisoned) != 1 {
		t.Error("the poisoned message was not dead-lettered")
	}
	if splits := counterSum(t, reg, "shopmesh_consumer_batch_splits_total"); splits < 1 {
		t.Errorf("no batch split: the poisoned message was never in a batch, so this proves nothing")
	}
}

// Batch names the messages whose handlers run in the handler's
// transaction: its own among them, every message in exactly one
// transaction's batch, several in one when a backlog is applied; nothing
// outside a handler.
func TestBatchNamesTheMessagesOfTheTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if got := outbox.Batch(f.ctx); got != nil {
		t.Fatalf("Batch outside a handler = %v, want nil", got)
	}
	var (
		mu      sync.Mutex
		batches = map[string][]string{} // message -> the batch its handler saw
	)
	c := f.newConsumerWith("batch", func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		var ids []string
		for _, m := range outbox.Batch(ctx) {
			ids = append(ids, m.ID)
		}
		mu.Lock()
		batches[msg.ID] = ids
		mu.Unlock()
		_, err := tx.Exec(ctx, `INSERT INTO ledger (consumer, message_id, aggregate, seq) VALUES ('batch', $1, $2, 0)`, msg.ID, msg.AggregateID)
		return err
	}, func(c *outbox.ConsumerConfig) { c.Workers, c.MaxBatch = 1, 16 })
	f.declare(c)
	const n = 40
	f.backlog(n, "a", "b", "c")
	f.run(c.Run)
	f.waitApplied("batch", n, 60*time.Second)
	mu.Lock()
	defer mu.Unlock()
	largest := 0
	for id, batch := range batches {
		if !slices.Contains(batch, id) {
			t.Errorf("message %s ran in a batch without it: %v", id, batch)
		}
		for _, other := range batch { // a batch is the same for each of its messages
			if !slices.Equal(batches[other], batch) {
				t.Errorf("messages %s and %s of one batch saw %v and %v", id, other, batch, batches[other])
			}
		}
		largest = max(largest, len(batch))
	}
	if len(batches) != n {
		t.Errorf("%d messages handled, want %d", len(batches), n)
	}
	if largest < 2 {
		t.Errorf("a backlog of %d was applied one message per transaction: no batch to name", n)
	}
}
