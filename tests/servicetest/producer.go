package servicetest

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// Producer is a scratch database holding one producing service's outbox:
// the retained log that a relay forwards and a replay re-delivers.
type Producer struct {
	s    *Service
	pool *pgxpool.Pool
	ob   *outbox.Outbox
}

// Producer creates the outbox of the producing service named service on a
// fresh database of its own.
func (s *Service) Producer(service string) *Producer {
	s.t.Helper()
	pool, err := pgxpool.New(s.ctx, testenv.NewDatabase(s.t))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(pool.Close)
	if err := outbox.Migrate(s.ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		s.t.Fatal(err)
	}
	ob, err := outbox.New(service)
	if err != nil {
		s.t.Fatal(err)
	}
	return &Producer{s: s, pool: pool, ob: ob}
}

// Emit commits events to the producer's outbox, one transaction each.
func (p *Producer) Emit(events ...outbox.Event) {
	p.s.t.Helper()
	for _, e := range events {
		if err := pgx.BeginFunc(p.s.ctx, p.pool, func(tx pgx.Tx) error { return p.ob.Publish(p.s.ctx, tx, e) }); err != nil {
			p.s.t.Fatalf("emit %s: %v", e.Type, err)
		}
	}
}

// Relay forwards the producer's outbox to its exchange until the test ends.
func (p *Producer) Relay() {
	p.s.t.Helper()
	r, err := outbox.NewRelay(outbox.RelayConfig{Outbox: p.ob, Pool: p.pool, AMQPURL: p.s.AMQPURL,
		PollInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		p.s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(p.s.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	p.s.t.Cleanup(func() { cancel(); <-done })
}

// Replay re-delivers the producer's whole retained log of the types the
// service consumes to its inbox queue, as `shopmesh replay` does, and
// returns how many messages it sent.
func (p *Producer) Replay() int {
	p.s.t.Helper()
	n, err := outbox.Replay(p.s.ctx, outbox.ReplayRequest{Source: p.pool, AMQPURL: p.s.AMQPURL,
		Queue: p.s.InboxQueue(), Types: p.s.Consumed})
	if err != nil {
		p.s.t.Fatalf("replay: %v", err)
	}
	return n
}
