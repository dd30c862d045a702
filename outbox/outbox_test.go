package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

const tickType = "source.tick.v1"

// fixture is one producer ("source") and the test consumers' database, on a
// fresh database and vhost.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	amqpURL string
	ob      *outbox.Outbox
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, testenv.NewDatabase(t), testenv.NewVHost(t))
}

func newFixtureOn(t *testing.T, dbURL, amqpURL string) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := outbox.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE ledger (
		id BIGSERIAL PRIMARY KEY, consumer TEXT NOT NULL, message_id TEXT NOT NULL, aggregate TEXT NOT NULL, seq INT NOT NULL)`); err != nil {
		t.Fatalf("ledger: %v", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE poison (message_id TEXT PRIMARY KEY)`); err != nil {
		t.Fatalf("poison: %v", err)
	}
	ob, err := outbox.New("source")
	if err != nil {
		t.Fatal(err)
	}
	// Declare the producer exchange up front, as `shopmesh migrate` does.
	withChannel(t, amqpURL, func(ch *amqp.Channel) error { return outbox.DeclareExchange(ch, "source") })
	return &fixture{t: t, ctx: ctx, pool: pool, amqpURL: amqpURL, ob: ob}
}

func withChannel(t *testing.T, url string, fn func(*amqp.Channel) error) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	if err := fn(ch); err != nil {
		t.Fatal(err)
	}
}

type tick struct {
	Seq int `json:"seq"`
}

// publish commits one transaction with one event per aggregate, seq as given.
func (f *fixture) publish(seq int, aggregates ...string) error {
	return f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		events := make([]outbox.Event, 0, len(aggregates))
		for _, a := range aggregates {
			events = append(events, outbox.Event{Type: tickType, AggregateID: a, Payload: tick{Seq: seq}})
		}
		return f.ob.Publish(f.ctx, tx, events...)
	})
}

// runRelay starts a relay and returns a function that stops it and waits.
func (f *fixture) runRelay(mod func(*outbox.Relay)) func() {
	return f.runRelayWith(nil, mod)
}

func (f *fixture) runRelayWith(metrics *outbox.Metrics, mod func(*outbox.Relay)) func() {
	f.t.Helper()
	r, err := outbox.NewRelay(outbox.RelayConfig{Outbox: f.ob, Pool: f.pool, AMQPURL: f.amqpURL, PollInterval: 50 * time.Millisecond,
		Metrics: metrics, Logger: testLogger()})
	if err != nil {
		f.t.Fatal(err)
	}
	if mod != nil {
		mod(r)
	}
	return f.run(r.Run)
}

func (f *fixture) run(fn func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = fn(ctx) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			f.t.Errorf("component did not stop within 30s")
		}
	}
	f.t.Cleanup(stop)
	return stop
}

// ledgerHandler records every application; a message applied twice shows up
// as two rows. Messages listed in the poison table fail.
func ledgerHandler(consumer string) outbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		var poisoned bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM poison WHERE message_id = $1)`, msg.ID).Scan(&poisoned); err != nil {
			return err
		}
		if poisoned {
			return errors.New("poisoned message")
		}
		var p tick
		if err := msg.Decode(&p); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ledger (consumer, message_id, aggregate, seq) VALUES ($1, $2, $3, $4)`,
			consumer, msg.ID, msg.AggregateID, p.Seq)
		return err
	}
}

func (f *fixture) newConsumer(name string, mod func(*outbox.ConsumerConfig)) *outbox.Consumer {
	f.t.Helper()
	return f.newConsumerWith(name, ledgerHandler(name), mod)
}

// newMetrics is a fresh registry with the library's metrics in it.
func (f *fixture) newMetrics() (*prometheus.Registry, *outbox.Metrics) {
	f.t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := outbox.NewMetrics(reg)
	if err != nil {
		f.t.Fatal(err)
	}
	return reg, metrics
}

// newConsumerWith is newConsumer with handler h.
func (f *fixture) newConsumerWith(name string, h outbox.Handler, mod func(*outbox.ConsumerConfig)) *outbox.Consumer {
	f.t.Helper()
	cfg := outbox.ConsumerConfig{Service: "sink", Name: name, Pool: f.pool, AMQPURL: f.amqpURL,
		RetryBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: testLogger()}
	if mod != nil {
		mod(&cfg)
	}
	c, err := outbox.NewConsumer(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := c.Handle(tickType, h); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// startConsumer declares the consumer's queue and bindings first, as
// `shopmesh migrate` does in production (a queue receives only what is
// published after its bindings exist), then runs the consumer.
func (f *fixture) startConsumer(c *outbox.Consumer) func() {
	f.t.Helper()
	f.declare(c)
	return f.run(c.Run)
}

// waitFor polls cond until it holds or the deadline passes.
func (f *fixture) waitFor(timeout time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) count(query string, args ...any) int {
	f.t.Helper()
	n, err := f.tryCount(query, args...)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// tryCount is count for a wait that outlasts a failed query, such as one
// on a pooled connection a database restart broke (the pool replaces it).
func (f *fixture) tryCount(query string, args ...any) (int, error) {
	var n int
	if err := f.pool.QueryRow(f.ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", query, err)
	}
	return n, nil
}

// waitApplied waits until consumer has applied want distinct messages.
func (f *fixture) waitApplied(consumer string, want int, timeout time.Duration) {
	f.t.Helper()
	f.waitFor(timeout, fmt.Sprintf("%d messages applied by %s", want, consumer), func() (bool, string) {
		n := f.count(`SELECT count(DISTINCT message_id) FROM ledger WHERE consumer = $1`, consumer)
		return n >= want, fmt.Sprintf("%d applied", n)
	})
}

// assertExactlyOnce checks that every event in the outbox was applied by
// consumer exactly once, and nothing else was.
func (f *fixture) assertExactlyOnce(consumer string) {
	f.t.Helper()
	var outboxRows, applied, distinct, missing int
	err := f.pool.QueryRow(f.ctx, `SELECT
		(SELECT count(*) FROM watermill_outbox),
		(SELECT count(*) FROM ledger WHERE consumer = $1),
		(SELECT count(DISTINCT message_id) FROM ledger WHERE consumer = $1),
		(SELECT count(*) FROM watermill_outbox o WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.consumer = $1 AND l.message_id = o.uuid))`,
		consumer).Scan(&outboxRows, &applied, &distinct, &missing)
	if err != nil {
		f.t.Fatal(err)
	}
	if missing != 0 || applied != outboxRows || distinct != outboxRows {
		f.t.Errorf("consumer %s: outbox has %d events, ledger %d applications of %d messages, %d never applied",
			consumer, outboxRows, applied, distinct, missing)
	}
}

func (f *fixture) duplicates(consumer string) int {
	return f.count(`SELECT coalesce((SELECT count FROM inbox_duplicates WHERE consumer = $1), 0)`, consumer)
}

func testLogger() *slog.Logger {
	if os.Getenv("SHOPMESH_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// 1. A rolled-back transaction's events never reach the broker; a committed
// one's always do.
func TestRolledBackEventsNeverReachTheBroker(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	f.runRelay(nil)

	rolledBack := errors.New("business rule failed")
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		if err := f.ob.Publish(f.ctx, tx, outbox.Event{Type: tickType, AggregateID: "rolled-back", Payload: tick{1}}); err != nil {
			return err
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Fatalf("WithTx error = %v, want %v", err, rolledBack)
	}
	if err := f.publish(2, "committed"); err != nil {
		t.Fatal(err)
	}
	// Commit order: once the later committed event has arrived, the relay
	// has passed every earlier transaction, so the rolled-back one had its chance.
	f.waitApplied("ledger", 1, 20*time.Second)
	if n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'rolled-back'`); n != 0 {
		t.Errorf("rolled-back event applied %d times, want 0", n)
	}
	if n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'committed'`); n != 1 {
		t.Errorf("committed event applied %d times, want 1", n)
	}
}

// 2. Thousands of events from concurrent writers all arrive, and events of
// one aggregate arrive in commit order.
func TestConcurrentWritersAllArriveInOrderPerAggregate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", func(c *outbox.ConsumerConfig) { c.Workers = 4 }))
	f.runRelay(nil)

	const writers, perWriter, aggregatesPerWriter = 8, 60, 5 // 8*60*5 = 2400 events
	f.writeConcurrently(writers, func(w int) error {
		aggs := make([]string, aggregatesPerWriter)
		for i := range aggs {
			aggs[i] = fmt.Sprintf("w%d-a%d", w, i)
		}
		for seq := 1; seq <= perWriter; seq++ {
			if err := f.publish(seq, aggs...); err != nil {
				return err
			}
		}
		return nil
	})
	total := writers * perWriter * aggregatesPerWriter
	f.waitApplied("ledger", total, 90*time.Second)
	f.assertExactlyOnce("ledger")

	f.assertOrderPerAggregate("ledger")
}

// writeConcurrently runs write for writers 0 to n-1 at once, waits for all
// of them and fails the test with the first error.
func (f *fixture) writeConcurrently(n int, write func(w int) error) {
	f.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range n {
		wg.Go(func() {
			if err := write(w); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatal(err)
	}
}

// resetCursor makes the relay publish everything again, as if it had never
// marked anything: every event is delivered once more.
func (f *fixture) resetCursor() {
	f.t.Helper()
	n, err := outbox.RewindRelay(f.ctx, f.pool, time.Time{})
	if err != nil {
		f.t.Fatal(err)
	}
	if want := int64(f.count(`SELECT count(*) FROM watermill_outbox`)); n != want {
		f.t.Fatalf("RewindRelay rewound %d events, want all %d", n, want)
	}
	f.ob.Notify()
}

// 3. Every message delivered several times changes consumer state once.
func TestRedeliveredMessagesApplyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	f.runRelay(nil)
	const n = 200
	for i := 1; i <= n; i++ {
		if err := f.publish(i, fmt.Sprintf("agg-%d", i%7)); err != nil {
			t.Fatal(err)
		}
	}
	f.waitApplied("ledger", n, 30*time.Second)
	for round := 1; round <= 2; round++ {
		f.resetCursor()
		f.waitFor(30*time.Second, "redeliveries absorbed", func() (bool, string) {
			d := f.duplicates("ledger")
			return d == round*n, fmt.Sprintf("%d duplicates, want %d", d, round*n)
		})
	}
	f.assertExactlyOnce("ledger")
}

// 4. The relay dies after the broker confirmed a batch but before it marked
// it: the batch is published again and the inbox absorbs it.
func TestRelayCrashAfterConfirmBeforeMark(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	const n = 50
	for i := 1; i <= n; i++ {
		if err := f.publish(i, "agg"); err != nil {
			t.Fatal(err)
		}
	}
	crashed := make(chan struct{})
	var once sync.Once
	var crashedBatch int // rows confirmed by the broker but never marked
	stop := f.runRelay(func(r *outbox.Relay) {
		outbox.SetAfterConfirm(r, func(batch int) error {
			once.Do(func() { crashedBatch = batch; close(crashed) })
			return errors.New("crash after confirm")
		})
	})
	select {
	case <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("relay never reached the confirm")
	}
	stop()
	if n := f.count(`SELECT offset_acked FROM watermill_offsets_outbox WHERE consumer_group = 'shopmesh-relay'`); n != 0 {
		t.Fatalf("cursor advanced to %d despite the crash", n)
	}
	f.runRelay(nil) // the restarted relay
	f.waitApplied("ledger", n, 30*time.Second)
	// The crashed batch may be smaller than n: rows become visible to the
	// relay only below the cluster's oldest running transaction.
	if crashedBatch == 0 {
		t.Fatal("crashed batch was empty")
	}
	f.waitFor(20*time.Second, "the republished batch absorbed", func() (bool, string) {
		d := f.duplicates("ledger")
		return d >= crashedBatch, fmt.Sprintf("%d duplicates, want >= %d", d, crashedBatch)
	})
	f.assertExactlyOnce("ledger")
}

// A rewind while the relay's cursor move is still to be written wins, also
// one back to the very position the batch was read from (the cursor then
// holds the values the move expects, so only its version tells them
// apart): here a second rewind to the start while the relay sends what the
// first one rewound. The relay sends everything again each time, and the
// inbox absorbs it.
func TestARewindToWhereTheBatchWasReadWins(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	const n = 20
	for i := 1; i <= n; i++ {
		if err := f.publish(i, "agg"); err != nil {
			t.Fatal(err)
		}
	}
	var armed atomic.Bool
	var once sync.Once
	rewound := make(chan error, 1)
	f.runRelay(func(r *outbox.Relay) {
		outbox.SetAfterConfirm(r, func(int) error {
			if armed.Load() {
				// This batch was read from where the first rewind put the
				// cursor, which is where this one puts it again; the
				// batch's move rides with the next read.
				once.Do(func() {
					_, err := outbox.RewindRelay(f.ctx, f.pool, time.Time{})
					rewound <- err
				})
			}
			return nil
		})
	})
	f.waitApplied("ledger", n, 30*time.Second)
	armed.Store(true)
	f.resetCursor()
	select {
	case err := <-rewound:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the relay never sent the rewound events")
	}
	f.waitFor(30*time.Second, "both rewinds sent again and absorbed", func() (bool, string) {
		d := f.duplicates("ledger")
		return d == 2*n, fmt.Sprintf("%d duplicates, want %d", d, 2*n)
	})
	f.assertExactlyOnce("ledger")
}

// 6. A poison message is dead-lettered with its reason after bounded retries;
// once the cause is fixed, replaying it applies it exactly once.
func TestPoisonMessageDeadLetteredAndReplayedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", func(c *outbox.ConsumerConfig) { c.MaxAttempts = 3 }))
	f.runRelay(nil)

	poisonID := outbox.NewID()
	if _, err := f.pool.Exec(f.ctx, `INSERT INTO poison VALUES ($1)`, poisonID); err != nil {
		t.Fatal(err)
	}
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Publish(f.ctx, tx,
			outbox.Event{ID: poisonID, Type: tickType, AggregateID: "p", Payload: tick{1}},
			outbox.Event{Type: tickType, AggregateID: "bad-payload", Payload: []byte(`{"seq": "not a number"}`)},
			outbox.Event{Type: tickType, AggregateID: "healthy", Payload: tick{1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(30*time.Second, "two dead letters", func() (bool, string) {
		n := f.count(`SELECT count(*) FROM dead_letters`)
		return n == 2, fmt.Sprintf("%d dead letters", n)
	})
	f.waitApplied("ledger", 1, 10*time.Second)
	letters, err := outbox.ListDeadLetters(f.ctx, f.pool, false)
	if err != nil {
		t.Fatal(err)
	}
	var poison outbox.DeadLetter
	for _, d := range letters {
		switch d.MessageID {
		case poisonID:
			poison = d
			if d.Attempts != 3 || d.Reason != "retries exhausted after 3 attempts: poisoned message" {
				t.Errorf("poison dead letter: attempts %d, reason %q", d.Attempts, d.Reason)
			}
		default:
			if d.Attempts != 1 || d.Type != tickType {
				t.Errorf("bad payload dead letter: attempts %d (want 1: permanent errors are not retried), type %s", d.Attempts, d.Type)
			}
		}
		if d.Consumer != "ledger" || d.Queue != "shopmesh.sink.ledger" || len(d.Payload) == 0 {
			t.Errorf("dead letter %d lacks its origin: %+v", d.ID, d)
		}
	}
	if poison.ID == 0 {
		t.Fatalf("poison message not among dead letters %+v", letters)
	}
	if n := f.count(`SELECT count(*) FROM ledger WHERE message_id = $1`, poisonID); n != 0 {
		t.Fatalf("poison message applied %d times before the fix", n)
	}

	if _, err := f.pool.Exec(f.ctx, `DELETE FROM poison`); err != nil { // the fix
		t.Fatal(err)
	}
	if err := outbox.ReplayDeadLetter(f.ctx, f.pool, f.amqpURL, poison.ID); err != nil {
		t.Fatal(err)
	}
	if err := outbox.ReplayDeadLetter(f.ctx, f.pool, f.amqpURL, poison.ID); !errors.Is(err, outbox.ErrNoDeadLetter) {
		t.Errorf("second replay error = %v, want ErrNoDeadLetter", err)
	}
	f.waitFor(20*time.Second, "replayed message applied", func() (bool, string) {
		n := f.count(`SELECT count(*) FROM ledger WHERE message_id = $1`, poisonID)
		return n == 1, fmt.Sprintf("applied %d times", n)
	})
	// Replaying the same message again through the broker is absorbed.
	before := f.duplicates("ledger")
	if _, err := f.pool.Exec(f.ctx, `UPDATE dead_letters SET replayed_at = NULL WHERE id = $1`, poison.ID); err != nil {
		t.Fatal(err)
	}
	if err := outbox.ReplayDeadLetter(f.ctx, f.pool, f.amqpURL, poison.ID); err != nil {
		t.Fatal(err)
	}
	f.waitFor(20*time.Second, "second replay absorbed", func() (bool, string) {
		return f.duplicates("ledger") == before+1, fmt.Sprintf("%d duplicates", f.duplicates("ledger"))
	})
	if n := f.count(`SELECT count(*) FROM ledger WHERE message_id = $1`, poisonID); n != 1 {
		t.Errorf("replayed message applied %d times, want 1", n)
	}
}

// 7. Two relays on one outbox: every event delivered, none lost, none
// applied twice; and as long as no batch failed (a confirm that misses its
// deadline on an overloaded machine legitimately republishes a batch), no
// duplicate at all, which shows the two take turns instead of overlapping.
func TestTwoRelaysOnOneOutbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	reg, metrics := f.newMetrics()
	f.runRelayWith(metrics, nil)
	f.runRelayWith(metrics, nil)
	const writers, each = 4, 150
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				if err := f.publish(i, fmt.Sprintf("w%d", w)); err != nil {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatal("a writer failed")
	}
	f.waitApplied("ledger", writers*each, 60*time.Second)
	f.assertExactlyOnce("ledger")
	failedBatches := counterSum(t, reg, "shopmesh_relay_errors_total")
	published := counterSum(t, reg, "shopmesh_relay_published_total")
	d := f.duplicates("ledger")
	t.Logf("%v events confirmed by the two relays, %v failed batches, %d duplicates absorbed", published, failedBatches, d)
	if failedBatches == 0 && (d != 0 || published != writers*each) {
		t.Errorf("with no failed batch the relays confirmed %v events for %d and caused %d duplicates: they overlapped",
			published, writers*each, d)
	}
}

// counterSum adds up every series of a counter in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// 8. Replay of history rebuilds one consumer's state without touching others.
func TestReplayRebuildsOneConsumerOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	start := time.Now().Add(-time.Second)
	a := f.newConsumer("rebuilt", nil)
	b := f.newConsumer("bystander", nil)
	f.startConsumer(a)
	f.startConsumer(b)
	f.runRelay(nil)
	const n = 120
	for i := 1; i <= n; i++ {
		if err := f.publish(i, fmt.Sprintf("agg-%d", i%5)); err != nil {
			t.Fatal(err)
		}
	}
	f.waitApplied("rebuilt", n, 30*time.Second)
	f.waitApplied("bystander", n, 30*time.Second)

	// Lose the rebuilt consumer's state, as when a read model is recreated.
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(f.ctx, `DELETE FROM ledger WHERE consumer = 'rebuilt'`); err != nil {
			return err
		}
		_, err := outbox.ForgetInbox(f.ctx, tx, "rebuilt", start)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := outbox.Replay(f.ctx, outbox.ReplayRequest{Source: f.pool, AMQPURL: f.amqpURL, Queue: a.Queue(),
		Types: []string{tickType}, Since: start})
	if err != nil {
		t.Fatal(err)
	}
	if sent != n {
		t.Errorf("replay sent %d events, want %d", sent, n)
	}
	f.waitApplied("rebuilt", n, 30*time.Second)
	f.assertExactlyOnce("rebuilt")
	f.assertExactlyOnce("bystander")
	if d := f.duplicates("bystander"); d != 0 {
		t.Errorf("bystander saw %d replayed messages, want none", d)
	}
	// Replaying again without forgetting changes nothing.
	if _, err := outbox.Replay(f.ctx, outbox.ReplayRequest{Source: f.pool, AMQPURL: f.amqpURL, Queue: a.Queue(), Since: start}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(20*time.Second, "second replay absorbed", func() (bool, string) {
		return f.duplicates("rebuilt") == n, fmt.Sprintf("%d duplicates", f.duplicates("rebuilt"))
	})
	f.assertExactlyOnce("rebuilt")
}

// An event no queue is bound for is an error that keeps the event, not a
// silent drop. The events before it are marked sent; the ones after it wait
// behind it (commit order) without being published again and again; once a
// queue binds its type, everything flows.
func TestUnroutableEventStaysInOutbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	reg, metrics := f.newMetrics()
	f.runRelayWith(metrics, nil)
	const orphanType = "source.orphan.v1"
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Publish(f.ctx, tx,
			outbox.Event{Type: tickType, AggregateID: "before", Payload: tick{1}},
			outbox.Event{Type: orphanType, AggregateID: "orphan", Payload: tick{1}},
			outbox.Event{Type: tickType, AggregateID: "after", Payload: tick{1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(20*time.Second, "the event before the orphan applied", func() (bool, string) {
		n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'before'`)
		return n == 1, fmt.Sprintf("%d", n)
	})
	// Let the relay retry the orphan several times before looking.
	f.waitFor(20*time.Second, "the relay retrying the orphan", func() (bool, string) {
		n := counterSum(t, reg, "shopmesh_relay_unroutable_total")
		return n >= 3, fmt.Sprintf("%v unroutable attempts", n)
	})
	stats, err := outbox.ReadStats(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending != 2 {
		t.Errorf("pending = %d, want 2 (the orphan and the event behind it)", stats.Pending)
	}
	// The event behind the orphan went out at most once, with the first
	// attempt's batch; retries publish the orphan alone.
	if d := f.duplicates("ledger"); d > 0 {
		t.Errorf("the event behind the orphan was published again %d times while waiting", d)
	}

	withChannel(t, f.amqpURL, func(ch *amqp.Channel) error {
		return outbox.DeclareQueue(ch, outbox.QueueSpec{Name: "shopmesh.sink.orphans", Types: []string{orphanType}})
	})
	f.ob.Notify()
	f.waitFor(20*time.Second, "outbox drained", func() (bool, string) {
		s, err := outbox.ReadStats(f.ctx, f.pool)
		return err == nil && s.Pending == 0, fmt.Sprintf("%+v %v", s, err)
	})
	f.waitFor(20*time.Second, "the event behind the orphan applied", func() (bool, string) {
		n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'after'`)
		return n == 1, fmt.Sprintf("%d", n)
	})
	if depth, err := outbox.QueueDepth(f.ctx, f.amqpURL, "shopmesh.sink.orphans"); err != nil || depth != 1 {
		t.Errorf("orphan queue depth = %d, %v; want the one orphan", depth, err)
	}
}

// Scheduled events enter the outbox at their due time, not before, and a
// rolled-back schedule never fires.
func TestScheduledEventsFireOnceWhenDue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	f.runRelay(nil)
	due := time.Now().Add(700 * time.Millisecond)
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Schedule(f.ctx, tx, due,
			outbox.Event{Type: tickType, AggregateID: "timer", Payload: tick{1}},
			outbox.Event{Type: tickType, AggregateID: "timer", Payload: tick{2}})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		if err := f.ob.Schedule(f.ctx, tx, time.Now(), outbox.Event{Type: tickType, AggregateID: "never", Payload: tick{1}}); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	f.waitApplied("ledger", 2, 20*time.Second)
	var appliedAt time.Time
	if err := f.pool.QueryRow(f.ctx, `SELECT min(received_at) FROM inbox WHERE consumer = 'ledger'`).Scan(&appliedAt); err != nil {
		t.Fatal(err)
	}
	if seqs := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'timer' AND seq IN (1, 2)`); seqs != 2 {
		t.Errorf("%d of the 2 events scheduled together fired", seqs)
	}
	if appliedAt.Before(due) {
		t.Errorf("scheduled event applied at %s, before its due time %s", appliedAt, due)
	}
	if n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'never'`); n != 0 {
		t.Errorf("rolled-back schedule fired %d times", n)
	}
}

// Retention deletes only sent rows older than the window, and old inbox keys.
func TestRetentionPrunesOnlySentHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	stopRelay := f.runRelay(nil)
	for i := 1; i <= 10; i++ {
		if err := f.publish(i, "old"); err != nil {
			t.Fatal(err)
		}
	}
	f.waitApplied("ledger", 10, 20*time.Second)
	stopRelay()
	for i := 1; i <= 5; i++ { // unsent: no relay runs
		if err := f.publish(i, "unsent"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE watermill_outbox SET created_at = created_at - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE inbox SET received_at = received_at - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	o, i, err := outbox.Prune(f.ctx, f.pool, outbox.RetentionConfig{Outbox: time.Hour, Inbox: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if o != 10 || i != 10 {
		t.Errorf("pruned %d outbox rows and %d inbox keys, want 10 and 10", o, i)
	}
	if n := f.count(`SELECT count(*) FROM watermill_outbox`); n != 5 {
		t.Errorf("%d outbox rows left, want the 5 unsent", n)
	}
}

// A dead letter replayed before its cause is fixed fails again and must show
// up as a new open dead letter, however fast the consumer is: the old one is
// marked replayed, never merged with the new failure.
func TestReplayedDeadLetterThatFailsAgainStaysVisible(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", func(c *outbox.ConsumerConfig) { c.MaxAttempts = 1 }))
	f.runRelay(nil)
	poisonID := outbox.NewID()
	if _, err := f.pool.Exec(f.ctx, `INSERT INTO poison VALUES ($1)`, poisonID); err != nil {
		t.Fatal(err)
	}
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Publish(f.ctx, tx, outbox.Event{ID: poisonID, Type: tickType, AggregateID: "p", Payload: tick{1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		var open []outbox.DeadLetter
		f.waitFor(20*time.Second, fmt.Sprintf("open dead letter, round %d", round), func() (bool, string) {
			var err error
			open, err = outbox.ListDeadLetters(f.ctx, f.pool, false)
			return err == nil && len(open) == 1, fmt.Sprintf("%d open, %v", len(open), err)
		})
		if err := outbox.ReplayDeadLetter(f.ctx, f.pool, f.amqpURL, open[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor(20*time.Second, "fourth failure recorded", func() (bool, string) {
		n := f.count(`SELECT count(*) FROM dead_letters`)
		return n == 4, fmt.Sprintf("%d dead letters", n)
	})
	if n := f.count(`SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL`); n != 3 {
		t.Errorf("%d dead letters marked replayed, want 3", n)
	}
}

// Commit order is transaction id order, numerically: rows on both sides of a
// power of ten (99999 < 100000, though "100000" < "99999" as text) are all
// relayed, in order, even when the boundary falls inside a batch.
func TestRelayOrdersTransactionIDsNumerically(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", func(c *outbox.ConsumerConfig) { c.Workers = 1 }))
	// The largest power of ten whose neighbours are all below the server's
	// oldest running transaction, so rows with those ids are visible at once
	// (a fresh cluster is only a few thousand transactions old).
	var xmin int64
	if err := f.pool.QueryRow(f.ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	boundary := int64(10)
	for boundary*10+1 < xmin {
		boundary *= 10
	}
	if boundary+1 >= xmin {
		t.Fatalf("server transaction horizon %d too young for the test", xmin)
	}
	// Rows as three past transactions would have written them.
	for i, xid := range []int64{boundary - 1, boundary, boundary + 1} {
		id := outbox.NewID()
		md := fmt.Sprintf(`{"id":%q,"type":%q,"source":"source","aggregate_id":"agg","occurred_at":%q}`,
			id, tickType, time.Now().UTC().Format(time.RFC3339Nano))
		if _, err := f.pool.Exec(f.ctx, `INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3, $4::xid8)`,
			id, fmt.Sprintf(`{"seq": %d}`, i+1), md, fmt.Sprint(xid)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := outbox.NewRelay(outbox.RelayConfig{Outbox: f.ob, Pool: f.pool, AMQPURL: f.amqpURL, BatchSize: 2,
		PollInterval: 50 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.run(r.Run)
	f.waitApplied("ledger", 3, 20*time.Second)
	rows, err := f.pool.Query(f.ctx, `SELECT seq FROM ledger ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[1 2 3]" {
		t.Errorf("applied in order %v, want [1 2 3] (transaction ids %d, %d, %d)", seqs, boundary-1, boundary, boundary+1)
	}
}

// An event published outside the handler of its cause (a dispatcher, a
// scheduled job) can name its correlation and cause explicitly.
func TestExplicitCorrelationAndCausationReachTheConsumer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	got := make(chan outbox.Message, 1)
	c, err := outbox.NewConsumer(outbox.ConsumerConfig{Service: "sink", Name: "envelopes", Pool: f.pool, AMQPURL: f.amqpURL, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Handle(tickType, func(_ context.Context, _ pgx.Tx, msg outbox.Message) error {
		select {
		case got <- msg:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.startConsumer(c)
	f.runRelay(nil)
	correlation, cause := outbox.NewID(), outbox.NewID()
	err = f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Publish(f.ctx, tx, outbox.Event{Type: tickType, AggregateID: "a", Payload: tick{1},
			CorrelationID: correlation, CausationID: cause})
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if msg.CorrelationID != correlation || msg.CausationID != cause {
			t.Errorf("correlation %q, causation %q; want %q, %q", msg.CorrelationID, msg.CausationID, correlation, cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the event never arrived")
	}
}

// A standing-by relay takes over when the leader stops, and the two never
// send the same event twice while one of them leads.
func TestStandbyRelayTakesOverWhenTheLeaderStops(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil))
	reg, metrics := f.newMetrics()
	stopLeader := f.runRelayWith(metrics, nil)
	for i := 1; i <= 50; i++ {
		if err := f.publish(i, "a"); err != nil {
			t.Fatal(err)
		}
	}
	f.waitApplied("ledger", 50, 30*time.Second)
	f.runRelayWith(metrics, nil) // stands by: the first one leads
	for i := 51; i <= 100; i++ {
		if err := f.publish(i, "a"); err != nil {
			t.Fatal(err)
		}
	}
	f.waitApplied("ledger", 100, 30*time.Second)
	stopLeader()
	for i := 101; i <= 150; i++ {
		if err := f.publish(i, "a"); err != nil {
			t.Fatal(err)
		}
	}
	f.waitApplied("ledger", 150, 30*time.Second)
	f.assertExactlyOnce("ledger")
	f.assertOrderPerAggregate("ledger")
	if failed := counterSum(t, reg, "shopmesh_relay_errors_total"); failed == 0 {
		if d := f.duplicates("ledger"); d != 0 {
			// Whose copies they were: events the relays sent twice, or
			// deliveries the broker repeated to the consumer.
			t.Errorf("%d duplicates with no failed batch: the relays overlapped (they published %v events for 150)",
				d, counterSum(t, reg, "shopmesh_relay_published_total"))
		}
	}
}
