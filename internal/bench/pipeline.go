package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// Scenario 3: the whole pipeline. Writers, a relay and an inbox consumer run
// together: once as fast as the writers go (throughput from the first write
// to the last consumer commit), then at fixed rates (latency from the outbox
// row's insert to the consumer's commit). shopmesh is the library end to
// end; raw is the raw writer, raw relay and raw consumer; raw-batch is the
// same with a consumer that commits what has queued up in one transaction,
// the measured case for batching in the library's consumer; forwarder is
// watermill's forwarder as shipped (its publisher in the writers'
// transactions, its relay with defaults) in front of the raw consumer.

type pipelineSetup struct {
	p             producer
	sink          string // the consuming service
	consumerQueue string // the library consumer's queue
	rawEx         string
	fwdEx         string          // the forwarder's destination: a fanout exchange
	rawQueue      string          // consumed by the raw consumer of raw, raw-batch and forwarder
	holds         []time.Duration // foreignHold of every measurement so far
	meter         *eventMeter
}

// consumerName is the library consumer's name (its queue is
// shopmesh.<sink>.<consumerName>).
const consumerName = "pipeline"

// Consumer settings shared by both sides: the library consumer's defaults.
const (
	consumerPrefetch = 64
	consumerWorkers  = 4
	consumerMaxBatch = 16
)

func setupPipeline(ctx context.Context, r *runner) (err error) {
	s := &r.pipeline
	if s.p, err = r.newProducer("pipeline"); err != nil {
		return err
	}
	// This process runs the writers, the relay and the consumer of every variant.
	s.meter = r.newEventMeter(ctx, ScenarioPipeline, "writers, relay and consumer")
	s.sink = r.env.service("sink")
	s.consumerQueue = outbox.QueueName(s.sink, consumerName)
	// The consumer declares its queue and dead-letter route when it starts.
	r.env.forget([]string{s.consumerQueue, s.consumerQueue + ".dlq"}, []string{s.consumerQueue + ".dlx"})

	s.rawEx, s.rawQueue = r.env.name("pipeline.raw"), r.env.name("pipeline.raw")
	if err := r.env.declareExchange(s.rawEx, "topic"); err != nil {
		return err
	}
	// The forwarder's publisher declares a durable fanout exchange named
	// after its topic; declaring it identically first lets the queue bind.
	s.fwdEx = r.env.name("pipeline.forwarder")
	if err := r.env.declareExchange(s.fwdEx, "fanout"); err != nil {
		return err
	}
	// The same queue arguments as the library's consumer queue (its
	// dead-letter route aside, which costs nothing until a message dies).
	if err := r.env.declareQueue(s.rawQueue, s.rawEx, s.p.eventType,
		amqp.Table{"x-single-active-consumer": true, "x-delivery-limit": int64(20)}); err != nil {
		return err
	}
	return r.env.bind(s.rawQueue, s.fwdEx, "")
}

func roundPipeline(ctx context.Context, r *runner, round int) error {
	variants := rotate([]string{"raw", "shopmesh", "raw-batch", "forwarder"}, round)
	defer r.noteForeignHolds()
	for _, v := range variants {
		res, err := r.pipelineOnce(ctx, v, r.cfg.Events, 0, false)
		if err != nil {
			return fmt.Errorf("%s at full speed: %w", v, err)
		}
		r.record(ScenarioPipeline, v, "throughput", "events/s", round, res.throughput)
		r.pipeline.meter.record(r, ScenarioPipeline, v, round, res.cpu, r.cfg.Events)
	}
	type latencyRun struct {
		rate       int
		neighbour  bool
		metricPart string
	}
	runs := make([]latencyRun, 0, len(r.cfg.LatencyRates)+1)
	for _, rate := range r.cfg.LatencyRates {
		runs = append(runs, latencyRun{rate: rate, metricPart: fmt.Sprintf("at %d/s", rate)})
	}
	// The first rate again while another database of the server runs
	// writing transactions back to back (see busyNeighbour).
	rate := r.cfg.LatencyRates[0]
	runs = append(runs, latencyRun{rate: rate, neighbour: true, metricPart: fmt.Sprintf("at %d/s, another database busy", rate)})
	for _, run := range runs {
		events := max(10, int(float64(run.rate)*r.cfg.LatencyDuration.Seconds()))
		for _, v := range variants {
			res, err := r.pipelineOnce(ctx, v, events, float64(run.rate), run.neighbour)
			if err != nil {
				return fmt.Errorf("%s %s: %w", v, run.metricPart, err)
			}
			slices.Sort(res.latencies)
			for _, p := range []float64{50, 95, 99} {
				ms := float64(percentile(res.latencies, p)) / float64(time.Millisecond)
				r.record(ScenarioPipeline, v, fmt.Sprintf("p%.0f %s", p, run.metricPart), "ms", round, ms)
			}
			if res.offered < 0.95*float64(run.rate) {
				r.results.note(ScenarioPipeline, fmt.Sprintf("%s: writers offered only %.0f of %d events/s in round %d",
					v, res.offered, run.rate, round+1))
			}
		}
	}
	r.results.note(ScenarioPipeline, fmt.Sprintf("%d writers; relays wake in-process after each commit; consumers: prefetch %d, "+
		"%d workers by aggregate; raw and forwarder commit one transaction per message (inbox claim + effect), shopmesh and raw-batch one per batch of what has queued for a worker, up to %d; "+
		"forwarder is watermill's forwarder with its defaults (1 s poll, no publisher confirms) in front of the raw consumer; latency runs hold each rate %s; "+
		"CPU per event is each part's CPU at full speed from the first write to the last consumer commit, divided by the events "+
		"(PostgreSQL: the postmaster and its backends; RabbitMQ: the node's OS process; writers, relay and consumer: this process); "+
		"latency is from the outbox row's created_at (in the writer's transaction, so it includes the writer's commit) "+
		"to the consumer's commit; for latency a ratio above 1 is slower; "+
		"\"another database busy\": meanwhile a connection to another database of the server runs transactions that take a transaction id and last %s each, back to back, as a report or batch job would",
		r.cfg.Writers, consumerPrefetch, consumerWorkers, consumerMaxBatch, r.cfg.LatencyDuration, neighbourHold))
	return nil
}

type pipelineResult struct {
	throughput float64 // events/s from the first write to the last consumer commit
	offered    float64 // events/s the writers achieved
	latencies  []time.Duration
	// cpu is what each part used from the first write to the last
	// consumer commit.
	cpu map[string]time.Duration
	// foreignHold is the longest time another database of the cluster held
	// a transaction id during the measurement.
	foreignHold time.Duration
}

// xidHoldWatch samples how long transactions of other databases have held
// a transaction id. The raw relay reads only below the cluster-wide
// pg_snapshot_xmin, so while one of them is open it sees no newer rows: on
// a shared server a likely source of latency spikes that is not the
// relay's doing. Shopmesh's relay reads past them (below its own
// database's oldest transaction) after two reads in a row they held back.
type xidHoldWatch struct {
	pool    *pgxpool.Pool
	mu      sync.Mutex
	longest time.Duration
}

func (w *xidHoldWatch) run(ctx context.Context) error {
	for {
		var seconds float64
		err := w.pool.QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8
			FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND datname <> current_database()`).Scan(&seconds)
		if err != nil {
			return nil // a diagnostic: never fail the measurement
		}
		w.mu.Lock()
		w.longest = max(w.longest, time.Duration(seconds*float64(time.Second)))
		w.mu.Unlock()
		if wait.Sleep(ctx, 20*time.Millisecond) != nil {
			return nil
		}
	}
}

func (w *xidHoldWatch) max() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.longest
}

// pipelineOnce passes events through one variant's pipeline, at rate
// events/s (0: as fast as the writers go), with a busy neighbour (see
// busyNeighbour) if neighbour is set, and checks that every event was
// applied exactly once. Without a neighbour it also records how long other
// databases held a transaction id meanwhile (see xidHoldWatch).
func (r *runner) pipelineOnce(ctx context.Context, variant string, events int, rate float64, neighbour bool) (res pipelineResult, err error) {
	s := r.pipeline
	if err := r.resetTables(ctx); err != nil {
		return res, err
	}
	for _, q := range []string{s.consumerQueue, s.rawQueue} {
		if err := r.env.purgeLeftovers(q); err != nil {
			return res, err
		}
	}
	c := newComponents(ctx, r.cfg.PhaseTimeout)
	defer func() { err = errors.Join(err, c.stop()) }()
	clock := newCommitClock(events)
	writers, err := r.pool(c, int32(r.cfg.Writers+1), nil)
	if err != nil {
		return res, err
	}
	relayPool, err := r.pool(c, 4, nil)
	if err != nil {
		return res, err
	}
	var tracer pgx.QueryTracer
	if variant == "shopmesh" {
		tracer = clock
	}
	consumerPool, err := r.pool(c, consumerWorkers+2, tracer)
	if err != nil {
		return res, err
	}

	var write writeFunc
	switch variant {
	case "shopmesh":
		consumer, err := outbox.NewConsumer(outbox.ConsumerConfig{Service: s.sink, Name: consumerName, Pool: consumerPool,
			AMQPURL: r.env.amqpURL, Prefetch: consumerPrefetch, Workers: consumerWorkers, MaxBatch: consumerMaxBatch})
		if err != nil {
			return res, err
		}
		err = consumer.Handle(s.p.eventType, func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
			clock.bind(tx.Conn(), msg.ID)
			var p struct {
				Seq int `json:"seq"`
			}
			if err := msg.Decode(&p); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, insertApplied, variant, msg.ID, msg.AggregateID, p.Seq)
			return err
		})
		if err != nil {
			return res, err
		}
		c.start("consumer", consumer.Run)
		if err := r.env.waitConsumer(c.ctx, s.consumerQueue); err != nil {
			return res, err
		}
		relay, err := outbox.NewRelay(outbox.RelayConfig{Outbox: s.p.ob, Pool: relayPool, AMQPURL: r.env.amqpURL, BatchSize: r.cfg.BatchSize})
		if err != nil {
			return res, err
		}
		c.start("relay", relay.Run)
		write = shopmeshWriter(writers, s.p.ob, s.p.eventType, wakeInProcess)
	case "raw", "raw-batch", "forwarder":
		// The relay and the consumer each get a connection, as two processes would.
		consumerConn, err := r.dial(c)
		if err != nil {
			return res, err
		}
		consumer := &rawConsumer{pool: consumerPool, conn: consumerConn, queue: s.rawQueue, name: variant,
			workers: consumerWorkers, prefetch: consumerPrefetch, maxBatch: 1, clock: clock}
		if variant == "raw-batch" {
			consumer.maxBatch = consumerMaxBatch
		}
		c.start("raw consumer", consumer.run)
		if err := r.env.waitConsumer(c.ctx, s.rawQueue); err != nil {
			return res, err
		}
		if variant == "forwarder" {
			if err := startForwarder(c, relayPool, r.env.amqpURL); err != nil {
				return res, err
			}
			write = forwarderWriter(writers, s.fwdEx, s.p.service, s.p.eventType)
			break
		}
		relayConn, err := r.dial(c)
		if err != nil {
			return res, err
		}
		relay, err := newRawRelay(c.ctx, relayPool, relayConn, s.rawEx, groupRaw, r.cfg.BatchSize)
		if err != nil {
			return res, err
		}
		c.start("raw relay", relay.run)
		write = rawWriter(writers, s.p.service, s.p.eventType, relay.notify)
	}

	var hold *xidHoldWatch
	if neighbour {
		if err := r.busyNeighbour(c); err != nil {
			return res, err
		}
	} else {
		hold = &xidHoldWatch{pool: relayPool}
		c.start("xid watch", hold.run)
	}
	before, err := s.meter.sample()
	if err != nil {
		return res, err
	}
	start := time.Now()
	wrote, err := runPaced(c.ctx, r.cfg.Writers, events, rate, write)
	if err != nil {
		return res, fmt.Errorf("writers: %w", err)
	}
	if err := clock.wait(c.ctx); err != nil {
		return res, err
	}
	after, err := s.meter.sample()
	if err != nil {
		return res, err
	}
	res.cpu = after.since(before, nil)
	res.throughput = float64(events) / clock.last().Sub(start).Seconds()
	res.offered = float64(events) / wrote.elapsed.Seconds()
	if res.latencies, err = clock.latencies(c.ctx, writers); err != nil {
		return res, err
	}
	if hold != nil {
		res.foreignHold = hold.max()
		r.pipeline.holds = append(r.pipeline.holds, res.foreignHold)
	}
	return res, checkExactlyOnce(c.ctx, writers, variant, events)
}

// neighbourHold is how long each of busyNeighbour's transactions lasts.
const neighbourHold = time.Second

// busyNeighbour starts, as a component of c, a connection to another
// database of the server (the administrator's) that runs transactions
// taking a transaction id and lasting neighbourHold each, back to back:
// on a shared server, a report or batch job. A relay that reads only below
// the cluster's oldest running transaction sees no event committed during
// one of them until it ends.
func (r *runner) busyNeighbour(c *components) error {
	conn, err := pgx.Connect(c.ctx, r.cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("connect the busy neighbour: %w", err)
	}
	c.cleanup(func() { conn.Close(context.Background()) })
	c.start("busy neighbour", func(ctx context.Context) error {
		for ctx.Err() == nil {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
					return err
				}
				return wait.Sleep(ctx, neighbourHold)
			})
			if err != nil && ctx.Err() == nil {
				return err
			}
		}
		return nil
	})
	return nil
}

// checkExactlyOnce fails a measurement in which an event was lost or
// applied twice: a fast result that breaks the guarantees is not a result.
func checkExactlyOnce(ctx context.Context, pool pgxQuerier, consumer string, events int) error {
	var n, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT message_id) FROM bench_applied WHERE consumer = $1`,
		consumer).Scan(&n, &distinct); err != nil {
		return fmt.Errorf("count applied events: %w", err)
	}
	if n != events || distinct != events {
		return fmt.Errorf("%d events written, %d applied (%d distinct)", events, n, distinct)
	}
	return nil
}

type pgxQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// noteForeignHolds summarises, in one note, how long other databases held
// transaction ids during the pipeline measurements.
func (r *runner) noteForeignHolds() {
	holds := slices.Sorted(slices.Values(r.pipeline.holds))
	if len(holds) == 0 {
		return
	}
	r.results.notes[ScenarioPipeline] = slices.DeleteFunc(r.results.notes[ScenarioPipeline], func(n string) bool {
		return strings.HasPrefix(n, foreignHoldNote)
	})
	r.results.note(ScenarioPipeline, fmt.Sprintf("%s: longest per measurement median %s, max %s "+
		"(while one is open, no relay on the server can read rows committed after it started)",
		foreignHoldNote, holds[len(holds)/2].Round(time.Millisecond), holds[len(holds)-1].Round(time.Millisecond)))
}

const foreignHoldNote = "other databases on the server held transaction ids"
