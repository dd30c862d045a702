package outbox_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/outbox"
)

// Queue puts the outbox insert into the caller's batch: the events commit
// or roll back with the batch's other writes and reach the consumer like
// published ones, in the order queued.
func TestQueuedEventsTravelWithTheCallersBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE queued_rows (n INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	f.startConsumer(f.newConsumer("ledger", nil))
	f.runRelay(nil)

	write := func(aggregate string, n int, fail error) error {
		return f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO queued_rows VALUES ($1)`, n)
			if err := f.ob.Queue(f.ctx, b,
				outbox.Event{Type: tickType, AggregateID: aggregate, Payload: tick{n}},
				outbox.Event{Type: tickType, AggregateID: aggregate, Payload: tick{n + 1}}); err != nil {
				return err
			}
			if err := f.ob.Queue(f.ctx, b); err != nil { // no events: nothing queued
				return err
			}
			if b.Len() != 2 {
				t.Errorf("batch holds %d queries, want the row and one outbox insert", b.Len())
			}
			if err := tx.SendBatch(f.ctx, b).Close(); err != nil {
				return err
			}
			return fail
		})
	}
	failed := errors.New("business rule failed")
	if err := write("rolled-back", 1, failed); !errors.Is(err, failed) {
		t.Fatalf("rolled-back write returned %v, want %v", err, failed)
	}
	if err := write("committed", 3, nil); err != nil {
		t.Fatal(err)
	}
	f.waitApplied("ledger", 2, 20*time.Second)
	if n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = 'rolled-back'`); n != 0 {
		t.Errorf("rolled-back events applied %d times, want 0", n)
	}
	if n := f.count(`SELECT count(*) FROM queued_rows`); n != 1 {
		t.Errorf("%d rows, want the committed one", n)
	}
	f.assertExactlyOnce("ledger")
	f.assertOrderPerAggregate("ledger")
	// An event that cannot be published fails at Queue, before anything is sent.
	b := &pgx.Batch{}
	if err := f.ob.Queue(f.ctx, b, outbox.Event{Type: tickType, Payload: tick{1}}); err == nil || b.Len() != 0 {
		t.Errorf("Queue of an event without an aggregate id: error %v, %d queries queued; want an error and none", err, b.Len())
	}
}
