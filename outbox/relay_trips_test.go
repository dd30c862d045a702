package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
)

// relayTrips counts the relay's round trips that read the outbox or write
// its cursor: each statement sent alone, and each pgx batch once.
type relayTrips struct {
	mu                 sync.Mutex
	alone, batched     int
	cursorWritesAlone  int
	cursorWritesInRead int
}

func touchesOutbox(sql string) bool { return strings.Contains(sql, "watermill_offsets_outbox") }

func (c *relayTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if touchesOutbox(d.SQL) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.alone++
		if strings.HasPrefix(strings.TrimSpace(d.SQL), "UPDATE") {
			c.cursorWritesAlone++
		}
	}
	return ctx
}

func (c *relayTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *relayTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	counted := false
	for _, q := range d.Batch.QueuedQueries {
		if !touchesOutbox(q.SQL) {
			continue
		}
		if !counted {
			c.batched++
			counted = true
		}
		if strings.HasPrefix(strings.TrimSpace(q.SQL), "UPDATE") {
			c.cursorWritesInRead++
		}
	}
	return ctx
}

func (c *relayTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *relayTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// unsentBatches declares the ledger consumer's queue and commits n
// transactions of ten events each (aggregates a to j), none relayed yet. It
// returns once a relay's first read would find them all: the relay reads
// only below the cluster's oldest running transaction, which other tests'
// transactions may hold back for a while, and a quiet relay that found
// nothing would wait for its hourly poll.
func (f *fixture) unsentBatches(n int) *outbox.Consumer {
	f.t.Helper()
	c := f.newConsumer("ledger", nil)
	f.declare(c)
	for seq := 1; seq <= n; seq++ {
		if err := f.publish(seq, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"); err != nil {
			f.t.Fatal(err)
		}
	}
	f.waitFor(30*time.Second, "the backlog readable by a relay", func() (bool, string) {
		k := f.count(`SELECT count(*) FROM watermill_outbox WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`)
		return k == 10*n, fmt.Sprintf("%d of %d rows below every running transaction", k, 10*n)
	})
	return c
}

// quietRelay is a relay of batches of ten on pool that neither polls nor
// listens: it reads at its start and after each batch it sent, nothing else.
func (f *fixture) quietRelay(pool *pgxpool.Pool) *outbox.Relay {
	f.t.Helper()
	relay, err := outbox.NewRelay(outbox.RelayConfig{Outbox: f.ob, Pool: pool, AMQPURL: f.amqpURL,
		BatchSize: 10, PollInterval: time.Hour, DisableListen: true, Logger: testLogger()})
	if err != nil {
		f.t.Fatal(err)
	}
	return relay
}

// A confirmed batch's cursor move travels with the next batch's read: a
// backlog of three batches costs four round trips (three reads that find
// rows, each but the first carrying the previous move, and a last one that
// carries the third move and finds nothing), not three reads, three cursor
// writes and a last read. Nothing is sent twice, and the cursor ends past
// every event.
func TestRelayWritesItsCursorWithTheNextRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.unsentBatches(3)
	pool, trips := f.relayTracedPool()
	stop := f.run(f.quietRelay(pool).Run)
	f.waitFor(30*time.Second, "the backlog relayed and the cursor written", func() (bool, string) {
		s, err := outbox.ReadStats(f.ctx, f.pool)
		if err != nil {
			return false, err.Error()
		}
		return s.Pending == 0, ""
	})
	stop()

	trips.mu.Lock()
	defer trips.mu.Unlock()
	if trips.batched != 4 || trips.alone != 0 || trips.cursorWritesInRead != 3 || trips.cursorWritesAlone != 0 {
		t.Errorf("round trips: %d batches (%d cursor writes in them), %d statements alone (%d cursor writes); "+
			"want 4 batches carrying 3 cursor writes and nothing alone", trips.batched, trips.cursorWritesInRead, trips.alone, trips.cursorWritesAlone)
	}
	f.startConsumer(c)
	f.waitApplied("ledger", 30, 30*time.Second)
	if n := f.duplicates("ledger"); n != 0 {
		t.Errorf("%d events sent twice", n)
	}
	f.assertExactlyOnce("ledger")
}

// A relay stopped just after the broker confirmed a batch, before the
// read that would carry its cursor move, writes the move as it stops: the
// relay that leads next sends none of that batch again.
func TestARelayStoppingWritesItsLastCursorMove(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.unsentBatches(2)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	relay := f.quietRelay(f.pool)
	outbox.SetAfterConfirm(relay, func(int) error { cancel(); return nil })
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not stop within 30s")
	}
	if s, err := outbox.ReadStats(f.ctx, f.pool); err != nil || s.Pending != 10 {
		t.Errorf("after the stop %d events pending (%v), want the 10 of the batch not sent", s.Pending, err)
	}

	f.runRelay(nil)
	f.startConsumer(c)
	f.waitApplied("ledger", 20, 30*time.Second)
	if n := f.duplicates("ledger"); n != 0 {
		t.Errorf("%d events sent again by the next relay: the stopped relay lost its cursor move", n)
	}
	f.assertExactlyOnce("ledger")
}

// A batch smaller than the relay's batch size, with nothing committed
// behind it, leaves its cursor move to the relay's next read (the one the
// next commit's wake-up starts, or the poll's) instead of spending a read
// of its own that would find nothing. Two commits of three events, each
// read on its own, cost two reads, the second carrying the first's move;
// until then the outbox counts the first batch as pending, and the
// stopping relay writes the last move.
func TestARelayWritesAPartialBatchsMoveWithItsNextRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.startConsumer(f.newConsumer("ledger", nil)) // declares its queue first
	commit := func(seq int) {
		t.Helper()
		f.commitQuietly(seq, "a", "b", "c")
		f.waitReadable(3 * seq)
	}
	pending := func() int64 {
		t.Helper()
		s, err := outbox.ReadStats(f.ctx, f.pool)
		if err != nil {
			t.Fatal(err)
		}
		return s.Pending
	}
	pool, trips := f.relayTracedPool()
	counts := func() (batched, inRead, alone int) {
		trips.mu.Lock()
		defer trips.mu.Unlock()
		return trips.batched, trips.cursorWritesInRead, trips.cursorWritesAlone
	}

	commit(1)
	stop := f.run(f.quietRelay(pool).Run) // reads at its start
	f.waitApplied("ledger", 3, 30*time.Second)
	if b, in, alone := counts(); b != 1 || in != 0 || alone != 0 {
		t.Fatalf("after the first batch: %d reads, %d cursor writes in them, %d alone; want the one read", b, in, alone)
	}
	if p := pending(); p != 3 {
		t.Errorf("%d events pending after the first batch, want its 3 until the next read writes its move", p)
	}

	commit(2)
	f.ob.Notify()
	f.waitApplied("ledger", 6, 30*time.Second)
	if b, in, alone := counts(); b != 2 || in != 1 || alone != 0 {
		t.Fatalf("after the second batch: %d reads, %d cursor writes in them, %d alone; want 2 reads, the second with the first's move", b, in, alone)
	}
	stop()
	if _, _, alone := counts(); alone != 1 {
		t.Errorf("the stopping relay wrote %d cursor moves on their own, want its last", alone)
	}
	if p := pending(); p != 0 {
		t.Errorf("%d events pending after the stop, want none", p)
	}
	if n := f.duplicates("ledger"); n != 0 {
		t.Errorf("%d events sent twice", n)
	}
	f.assertExactlyOnce("ledger")
}

// relayTracedPool is a second pool on the fixture's database whose relay
// round trips are counted.
func (f *fixture) relayTracedPool() (*pgxpool.Pool, *relayTrips) {
	f.t.Helper()
	trips := &relayTrips{}
	return f.poolTracedBy(trips), trips
}

// commitQuietly commits one event per aggregate through an Outbox value of
// its own, which wakes no relay: the test decides when a relay reads.
func (f *fixture) commitQuietly(seq int, aggregates ...string) {
	f.t.Helper()
	quiet, err := outbox.New("source")
	if err != nil {
		f.t.Fatal(err)
	}
	events := make([]outbox.Event, len(aggregates))
	for i, a := range aggregates {
		events[i] = outbox.Event{Type: tickType, AggregateID: a, Payload: tick{Seq: seq}}
	}
	if err := quiet.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error { return quiet.Publish(f.ctx, tx, events...) }); err != nil {
		f.t.Fatal(err)
	}
}

// waitReadable waits until n outbox rows are below every running
// transaction, where a relay's read finds them.
func (f *fixture) waitReadable(n int) {
	f.t.Helper()
	f.waitFor(30*time.Second, "the commits readable by a relay", func() (bool, string) {
		k := f.count(`SELECT count(*) FROM watermill_outbox WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`)
		return k == n, fmt.Sprintf("%d of %d rows below every running transaction", k, n)
	})
}
