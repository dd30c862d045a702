package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// A relay reads only below the cluster's oldest running transaction, so an
// event committed while an older transaction runs (in any database of the
// cluster) is held back from the read its commit's wake-up starts. The
// older transaction's commit wakes nobody: the relay sees that events wait
// after its cursor, counts the read as held back, and looks again soon.
// With its safety-net poll at an hour, the event still arrives as soon as
// the older transaction ends. Meanwhile the outbox's stats count the event
// as held back.
func TestARelayHeldBackByAnOlderTransactionLooksAgain(t *testing.T) {
	t.Parallel()
	f, older, xid, reg := heldBackByAnOlderTransaction(t, 0)
	f.waitFor(30*time.Second, "the relay to find the event held back", func() (bool, string) {
		n := counterSum(t, reg, "shopmesh_relay_held_back_total")
		return n >= 1, fmt.Sprintf("%.0f held-back reads while transaction %s runs", n, xid)
	})
	if n := f.count(`SELECT count(*) FROM ledger`); n != 0 {
		t.Fatalf("%d events applied while an older transaction held them back", n)
	}
	if s, err := outbox.ReadStats(f.ctx, f.pool); err != nil || s.Pending != 1 || s.HeldBack != 1 {
		t.Errorf("stats while held back: %+v, %v; want 1 pending, 1 held back", s, err)
	}

	if err := older.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.waitApplied("ledger", 1, 30*time.Second)
	f.assertExactlyOnce("ledger")
}

// With HeldBackRetry negative the relay does not look again early: events
// held back wait for the next wake-up (or poll), as they did before the
// early reads existed. The benchmark's poll-only baseline runs this way.
func TestARelayWithoutHeldBackRetryWaitsForTheNextWakeUp(t *testing.T) {
	t.Parallel()
	f, older, _, reg := heldBackByAnOlderTransaction(t, -1)
	// The relay reads at its start and at the commit's wake-up, both held
	// back; then it sleeps. Early reads would have come 2, 6, 14, 30 ...
	// ms after the first held-back one: eight or more before the count
	// stays put for 300 ms.
	var reads float64
	last := time.Now()
	f.waitFor(30*time.Second, "the relay to sleep with the event held back", func() (bool, string) {
		n := counterSum(t, reg, "shopmesh_relay_held_back_total")
		if n != reads {
			reads, last = n, time.Now()
		}
		return n >= 1 && time.Since(last) >= 300*time.Millisecond, fmt.Sprintf("%.0f held-back reads", n)
	})
	if reads > 2 {
		t.Fatalf("%.0f held-back reads before the relay slept, want at most 2 (its first read and the wake-up's)", reads)
	}
	if err := older.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	f.waitFor(30*time.Second, "300 ms after the commit, with no wake-up", func() (bool, string) {
		if n := f.count(`SELECT count(*) FROM ledger`); n != 0 {
			t.Fatalf("%d events applied without a wake-up", n)
		}
		return time.Since(committed) >= 300*time.Millisecond, ""
	})
	// Other databases' transactions on a shared server may hold the event
	// back for a moment longer: each look needs a wake-up of its own.
	f.waitFor(30*time.Second, "the event applied after wake-ups", func() (bool, string) {
		f.ob.Notify()
		n := f.count(`SELECT count(*) FROM ledger`)
		return n == 1, fmt.Sprintf("%d applied", n)
	})
	f.assertExactlyOnce("ledger")
}

// heldBackByAnOlderTransaction starts a consumer, begins a transaction (its
// id is xid) and then a relay with an hour's poll and the given
// HeldBackRetry, and publishes one event after that transaction began.
func heldBackByAnOlderTransaction(t *testing.T, retry time.Duration) (f *fixture, older pgx.Tx, xid string, reg *prometheus.Registry) {
	f = newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil)) // declares its queue first
	older, xid = f.olderTransaction()
	reg = f.wakelessRelay(retry)
	if err := f.publish(1, "a"); err != nil {
		t.Fatal(err)
	}
	return f, older, xid, reg
}

// olderTransaction begins a transaction that holds a transaction id (xid):
// until it ends, no relay in the cluster reads events committed after it
// began. It is rolled back when the test ends, if not ended before.
func (f *fixture) olderTransaction() (older pgx.Tx, xid string) {
	f.t.Helper()
	return f.transactionHoldingXID(f.pool)
}

// transactionHoldingXID begins a transaction on pool and has it take a
// transaction id, which it returns; the transaction is rolled back when
// the test ends, if not ended before.
func (f *fixture) transactionHoldingXID(pool *pgxpool.Pool) (tx pgx.Tx, xid string) {
	f.t.Helper()
	tx, err := pool.Begin(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { tx.Rollback(context.Background()) })
	if err := tx.QueryRow(f.ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid); err != nil {
		f.t.Fatal(err)
	}
	return tx, xid
}

// wakelessRelay runs a relay that reads at its start, on the wake-ups a
// test sends and, held back, early (retry is its HeldBackRetry), but
// neither on an hour's poll nor on LISTEN. It returns its metrics.
func (f *fixture) wakelessRelay(retry time.Duration) *prometheus.Registry {
	f.t.Helper()
	reg, metrics := f.newMetrics()
	relay, err := outbox.NewRelay(outbox.RelayConfig{Outbox: f.ob, Pool: f.pool, AMQPURL: f.amqpURL,
		PollInterval: time.Hour, HeldBackRetry: retry, DisableListen: true, Metrics: metrics, Logger: testLogger()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.run(relay.Run)
	return reg
}

// A relay that sent a batch and sees committed events held back behind it
// (by an older transaction, running in any database of the cluster) looks
// again soon too, rather than sleeping until a wake-up no commit will
// send: with an hour's poll and no wake-ups at all, the event held back is
// applied once the older transaction ends.
func TestARelayLooksAgainForEventsHeldBackBehindItsBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil)) // declares its queue first
	f.commitQuietly(1, "a")                       // no wake-up: the relay reads only at its start
	f.waitReadable(1)
	older, _ := f.olderTransaction()
	f.commitQuietly(2, "a") // held back by older
	reg := f.wakelessRelay(0)
	f.waitApplied("ledger", 1, 30*time.Second)
	f.waitFor(30*time.Second, "the relay to see the second event held back", func() (bool, string) {
		n := counterSum(t, reg, "shopmesh_relay_held_back_total")
		return n >= 1, fmt.Sprintf("%.0f held-back reads", n)
	})
	if err := older.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.waitApplied("ledger", 2, 30*time.Second)
	f.assertExactlyOnce("ledger")
}

// A transaction running in another database of the cluster writes nothing
// to this outbox, so it holds nothing back for long: the second read in a
// row it holds back (below the cluster's oldest running transaction) is
// followed at once by one below this database's own, which takes the
// event. The outbox's stats do not count the event as held back either.
// With an hour's poll, this fails unless the relay looks past the other
// database's transaction.
func TestARelayIsNotHeldBackByAnotherDatabasesTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil)) // declares its queue first
	older, xid := f.otherDatabasesTransaction()
	f.commitQuietly(1, "a")
	if s, err := outbox.ReadStats(f.ctx, f.pool); err != nil || s.Pending != 1 || s.HeldBack != 0 {
		t.Errorf("stats with another database's transaction %s running: %+v, %v; want 1 pending, none held back", xid, s, err)
	}
	f.wakelessRelay(0)
	f.waitApplied("ledger", 1, 30*time.Second)
	if err := older.QueryRow(f.ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid); err != nil {
		t.Fatalf("the other database's transaction ended early: %v", err)
	}
	f.assertExactlyOnce("ledger")
}

// otherDatabasesTransaction begins a transaction that holds a transaction
// id (xid) in a new database of the cluster: until it ends, no read below
// the cluster's oldest running transaction takes events committed after it
// began. It is rolled back when the test ends, if not ended before.
func (f *fixture) otherDatabasesTransaction() (older pgx.Tx, xid string) {
	f.t.Helper()
	return f.transactionHoldingXID(f.otherDatabase())
}

// otherDatabase returns a pool on a new database of the fixture's cluster,
// closed when the test ends.
func (f *fixture) otherDatabase() *pgxpool.Pool {
	f.t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.NewDatabase(f.t))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.openPool(cfg)
}

// A replay reads history past another database's running transaction too:
// with one older than the event open, the event is replayed (an operator's
// replay that found nothing would report 0 events and stop).
func TestReplayReadsPastAnotherDatabasesTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	start := time.Now().Add(-time.Second)
	c := f.newConsumer("ledger", nil)
	f.declare(c)
	f.otherDatabasesTransaction()
	f.commitQuietly(1, "a")
	sent, err := outbox.Replay(f.ctx, outbox.ReplayRequest{Source: f.pool, AMQPURL: f.amqpURL, Queue: c.Queue(), Since: start})
	if err != nil || sent != 1 {
		t.Fatalf("replay with another database's older transaction open sent %d events, %v; want 1", sent, err)
	}
	f.startConsumer(c)
	f.waitApplied("ledger", 1, 30*time.Second)
}

// Reads that look past other databases' transactions still never pass one
// of this database's: writers whose transactions overlap (each pauses
// after its insert) commit while another database's transactions keep
// holding the cluster's bound back, so the relay reads below this
// database's own bound again and again; every event still arrives once
// and in order per aggregate. A bound that passed a running transaction
// of this database would move the cursor past its events, never to be
// sent: this stress loses one in about half its runs then, and
// TestARelayHeldBackByAnOlderTransactionLooksAgain in every run.
func TestReadsPastOtherDatabasesNeverPassThisDatabasesTransactions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", func(c *outbox.ConsumerConfig) { c.Workers = 4 }))
	reg, metrics := f.newMetrics()
	f.runRelayWith(metrics, nil)
	other := f.otherDatabase()

	noise, stopNoise := context.WithCancel(f.ctx)
	defer stopNoise()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for noise.Err() == nil {
				_ = pgx.BeginFunc(noise, other, func(tx pgx.Tx) error {
					if _, err := tx.Exec(noise, `SELECT pg_current_xact_id()`); err != nil {
						return err
					}
					return wait.Sleep(noise, time.Duration(rand.IntN(10))*time.Millisecond)
				})
			}
		})
	}
	const writers, perWriter = 8, 100
	f.writeConcurrently(writers, func(w int) error {
		agg := fmt.Sprintf("w%d", w)
		for seq := 1; seq <= perWriter; seq++ {
			err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
				if err := f.ob.Publish(f.ctx, tx, outbox.Event{Type: tickType, AggregateID: agg, Payload: tick{Seq: seq}}); err != nil {
					return err
				}
				return wait.Sleep(f.ctx, time.Duration(rand.IntN(10))*time.Millisecond)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	f.waitApplied("ledger", writers*perWriter, 30*time.Second)
	stopNoise()
	wg.Wait()
	f.assertExactlyOnce("ledger")
	f.assertOrderPerAggregate("ledger")
	if n := counterSum(t, reg, "shopmesh_relay_held_back_total"); n == 0 {
		t.Error("no relay read was held back: the test did not exercise reads past other databases' transactions")
	}
}

// A server may refuse the service's role the other sessions' transactions
// (EXECUTE on pg_stat_get_activity revoked from PUBLIC). The relay's read
// below its database's bound then fails once, and the relay goes on
// reading below the cluster's: events held back by another database's
// transaction wait for it to end, as they did before that bound existed,
// and nothing wedges. The outbox's stats fall back the same way.
func TestARelayDeniedOtherSessionsFallsBackToTheClusterBound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil)) // declares its queue first
	restricted := f.roleWithoutSessionStatus()
	older, xid := f.otherDatabasesTransaction()
	f.commitQuietly(1, "a")

	reg, metrics := f.newMetrics()
	relay, err := outbox.NewRelay(outbox.RelayConfig{Outbox: f.ob, Pool: restricted, AMQPURL: f.amqpURL,
		PollInterval: time.Hour, DisableListen: true, Metrics: metrics, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.run(relay.Run)
	f.waitFor(30*time.Second, "the relay's read below its database's bound to be refused", func() (bool, string) {
		n := counterSum(t, reg, "shopmesh_relay_errors_total")
		return n >= 1, fmt.Sprintf("%.0f failed reads", n)
	})
	// Held back, the relay keeps reading early (2, 4, 8 ... ms): a relay
	// that tried the refused read again would fail again within this.
	refused := time.Now()
	f.waitFor(30*time.Second, "half a second of reads after the refusal", func() (bool, string) {
		if n := counterSum(t, reg, "shopmesh_relay_errors_total"); n != 1 {
			t.Fatalf("%.0f failed reads, want 1: the relay tried the refused read again", n)
		}
		return time.Since(refused) >= 500*time.Millisecond, ""
	})
	if n := f.count(`SELECT count(*) FROM ledger`); n != 0 {
		t.Fatalf("%d events applied while another database's transaction %s held them back below the cluster's bound", n, xid)
	}
	if s, err := outbox.ReadStats(f.ctx, restricted); err != nil || s.Pending != 1 || s.HeldBack != 1 {
		t.Errorf("stats of the restricted role: %+v, %v; want 1 pending, 1 held back (below the cluster's bound)", s, err)
	}
	if err := older.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.waitApplied("ledger", 1, 30*time.Second)
	f.assertExactlyOnce("ledger")
}

// The backlog gauges, once refused the other sessions' transactions, count
// held-back events below the cluster's bound from then on instead of
// sending the refused statement again at every refresh.
func TestStatsGaugesSendTheRefusedReadOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.commitQuietly(1, "a")
	cfg := f.roleWithoutSessionStatus().Config()
	refused, reads := &sends{only: "pg_stat_get_activity"}, &sends{only: "outbox_scheduled"}
	cfg.ConnConfig.Tracer = multitracer.New(refused, reads)
	pool := f.openPool(cfg)
	_, metrics := f.newMetrics()
	f.run(func(ctx context.Context) error {
		return outbox.RunStatsGauges(ctx, pool, "ledger", metrics, 10*time.Millisecond)
	})
	f.waitFor(30*time.Second, "five refreshes of the gauges", func() (bool, string) {
		n := reads.n.Load()
		return n >= 6, fmt.Sprintf("%d stats reads", n)
	})
	if n := refused.n.Load(); n != 1 {
		t.Errorf("the refused read was sent %d times in %d stats reads, want once", n, reads.n.Load())
	}
}

// roleWithoutSessionStatus returns a pool on the fixture's database for a
// new role that may use its tables but, as on a server that revoked it,
// may not execute pg_stat_get_activity there.
func (f *fixture) roleWithoutSessionStatus() *pgxpool.Pool {
	f.t.Helper()
	role := testenv.UniqueName(f.t)
	const password = "relay-password"
	for _, stmt := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD '` + password + `'`,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ` + role,
		`REVOKE EXECUTE ON FUNCTION pg_stat_get_activity(integer) FROM PUBLIC`,
	} {
		if _, err := f.pool.Exec(f.ctx, stmt); err != nil {
			f.t.Fatalf("%s: %v", stmt, err)
		}
	}
	f.t.Cleanup(func() {
		ctx := context.Background()
		_, _ = f.pool.Exec(ctx, `DROP OWNED BY `+role)
		if _, err := f.pool.Exec(ctx, `DROP ROLE `+role); err != nil {
			f.t.Errorf("drop role %s: %v", role, err)
		}
	})
	cfg := f.pool.Config()
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, password
	return f.openPool(cfg)
}

// The outbox stats read other sessions' transactions (pg_stat_activity,
// costly while any transaction runs) only when some of the backlog is held
// back below the cluster's oldest running transaction: with another
// database's transaction running, PostgreSQL never executes that read while
// the backlog is older than the transaction, and executes it once an event
// commits behind it.
func TestStatsReadOtherSessionsOnlyWhenSomethingIsHeldBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.commitQuietly(1, "a")
	_, xid := f.otherDatabasesTransaction()
	// A snapshot lists a running transaction only once a later one ended
	// (before that its xmax is no later than the running one's xid):
	// end one, so that the stats have a running transaction to look into.
	if _, err := f.pool.Exec(f.ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	var running bool
	if err := f.pool.QueryRow(f.ctx, `SELECT $1::xid8 IN (SELECT pg_snapshot_xip(pg_current_snapshot()))`, xid).Scan(&running); err != nil || !running {
		t.Fatalf("snapshot lists %s as running: %v, %v; want true", xid, running, err)
	}
	// Other tests' transactions that began before the first event
	// committed hold it back below the cluster's bound until they end;
	// none that begins later can.
	f.waitFor(30*time.Second, "the first event to be readable below the cluster's bound", func() (bool, string) {
		var readable bool
		err := f.pool.QueryRow(f.ctx, `SELECT max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()) FROM watermill_outbox`).Scan(&readable)
		return err == nil && readable, fmt.Sprint(err)
	})

	if loops := f.sessionStatusReads(outbox.StatsQuery, outbox.RelayGroup); loops != 0 {
		t.Errorf("stats read other sessions %d times while %s held nothing back, want never", loops, xid)
	}
	if s, err := outbox.ReadStats(f.ctx, f.pool); err != nil || s.Pending != 1 || s.HeldBack != 0 {
		t.Errorf("stats: %+v, %v; want 1 pending, none held back", s, err)
	}

	f.commitQuietly(2, "b")
	if loops := f.sessionStatusReads(outbox.StatsQuery, outbox.RelayGroup); loops < 1 {
		t.Errorf("stats read other sessions %d times with an event committed behind %s, want at least once", loops, xid)
	}
	if s, err := outbox.ReadStats(f.ctx, f.pool); err != nil || s.Pending != 2 || s.HeldBack != 0 {
		t.Errorf("stats: %+v, %v; want 2 pending, none held back below the database's bound", s, err)
	}
}

// sessionStatusReads runs query under EXPLAIN ANALYZE and returns how many
// times its plan executed pg_stat_get_activity (PostgreSQL initialises
// every node, so a revoked permission would fail the query either way).
func (f *fixture) sessionStatusReads(query string, args ...any) int {
	f.t.Helper()
	var plan []map[string]any
	if err := json.Unmarshal(f.explainAnalyze(query, args...), &plan); err != nil {
		f.t.Fatalf("plan: %v", err)
	}
	loops, found := 0, false
	var walk func(node map[string]any)
	walk = func(node map[string]any) {
		if node["Function Name"] == "pg_stat_get_activity" {
			found = true
			n, _ := node["Actual Loops"].(float64)
			loops += int(n)
		}
		children, _ := node["Plans"].([]any)
		for _, c := range children {
			if child, ok := c.(map[string]any); ok {
				walk(child)
			}
		}
	}
	for _, p := range plan {
		if root, ok := p["Plan"].(map[string]any); ok {
			walk(root)
		}
	}
	if !found {
		f.t.Fatalf("the plan has no pg_stat_get_activity node: %v", plan)
	}
	return loops
}
