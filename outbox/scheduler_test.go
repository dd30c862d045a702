package outbox_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/outbox"
)

// schedulerRelay runs a relay whose scheduler sleeps up to idle, on a pool
// whose scheduler looks (its batches, which move due events) are counted.
func (f *fixture) schedulerRelay(idle time.Duration) *sends {
	f.t.Helper()
	pool, looks := f.tracedPool("DELETE FROM outbox_scheduled")
	r, err := outbox.NewRelay(outbox.RelayConfig{Outbox: f.ob, Pool: pool, AMQPURL: f.amqpURL,
		PollInterval: 50 * time.Millisecond, SchedulerIdlePoll: idle, Logger: testLogger()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.run(r.Run)
	return looks
}

func (f *fixture) waitMoved(id string, timeout time.Duration) {
	f.t.Helper()
	f.waitFor(timeout, "scheduled event "+id+" moved into the outbox", func() (bool, string) {
		return f.count(`SELECT count(*) FROM watermill_outbox WHERE uuid = $1`, id) == 1, ""
	})
}

// While nothing is scheduled the scheduler sleeps its idle poll instead of
// looking at the relay's short interval; Schedule in the relay's process
// wakes it, so an event due soon still fires on time.
func TestTheSchedulerSleepsUntilSomethingIsScheduled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	looks := f.schedulerRelay(time.Minute)
	time.Sleep(time.Second) // idle: at the 50 ms interval this would be some 20 looks
	if n := looks.n.Load(); n > 2 {
		t.Errorf("an idle scheduler looked %d times in a second, want at most 2", n)
	}
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Schedule(f.ctx, tx, time.Now().Add(200*time.Millisecond),
			outbox.Event{ID: "soon", Type: tickType, AggregateID: "timer", Payload: tick{1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.waitMoved("soon", 20*time.Second) // the idle poll is a minute
}

// An event another process scheduled (this relay's Outbox is not told) is
// found within the idle poll.
func TestTheSchedulerFindsWhatAnotherProcessScheduled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	looks := f.schedulerRelay(time.Second)
	f.waitFor(20*time.Second, "the scheduler's first look", func() (bool, string) { return looks.n.Load() > 0, "" })
	other, err := outbox.New("source")
	if err != nil {
		t.Fatal(err)
	}
	err = other.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return other.Schedule(f.ctx, tx, time.Now(), outbox.Event{ID: "elsewhere", Type: tickType, AggregateID: "timer", Payload: tick{1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.waitMoved("elsewhere", 20*time.Second)
}

// Unschedule withdraws a scheduled event with the transaction it is part
// of: committed, the event never enters the outbox; rolled back, it stays
// scheduled. Ids never scheduled are no error.
func TestUnscheduleWithdrawsWithItsTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	due := time.Now().Add(time.Second)
	err := f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Schedule(f.ctx, tx, due,
			outbox.Event{ID: "kept", Type: tickType, AggregateID: "timer", Payload: tick{1}},
			outbox.Event{ID: "withdrawn", Type: tickType, AggregateID: "timer", Payload: tick{2}})
	})
	if err != nil {
		t.Fatal(err)
	}
	rolledBack := errors.New("rolled back")
	err = f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		if err := f.ob.Unschedule(f.ctx, tx, "kept"); err != nil {
			return err
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Fatalf("rolled-back unschedule: %v", err)
	}
	err = f.ob.WithTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.ob.Unschedule(f.ctx, tx, "withdrawn", "never-scheduled")
	})
	if err != nil {
		t.Fatal(err)
	}
	f.schedulerRelay(50 * time.Millisecond)
	f.waitMoved("kept", 20*time.Second)
	// Both were due at once and are moved in one look: the one withdrawn
	// is neither in the outbox nor still scheduled.
	if n := f.count(`SELECT count(*) FROM watermill_outbox WHERE uuid = 'withdrawn'`); n != 0 {
		t.Errorf("the withdrawn event entered the outbox (%d rows)", n)
	}
	if n := f.count(`SELECT count(*) FROM outbox_scheduled`); n != 0 {
		t.Errorf("%d events still scheduled, want none", n)
	}
}
