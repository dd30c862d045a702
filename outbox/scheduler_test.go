package outbox_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
)

// schedulerLooks counts the scheduler's looks at the schedule on a pool.
type schedulerLooks struct{ n atomic.Int64 }

func (s *schedulerLooks) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (s *schedulerLooks) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *schedulerLooks) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (s *schedulerLooks) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if strings.Contains(d.SQL, "DELETE FROM outbox_scheduled") {
		s.n.Add(1)
	}
}
func (s *schedulerLooks) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// schedulerRelay runs a relay whose scheduler sleeps up to idle, on a pool
// whose scheduler looks are counted.
func (f *fixture) schedulerRelay(idle time.Duration) *schedulerLooks {
	f.t.Helper()
	cfg := f.pool.Config()
	looks := &schedulerLooks{}
	cfg.ConnConfig.Tracer = looks
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(pool.Close)
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
