package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopmesh/shopmesh/outbox"
)

// producer is an event source of one scenario: its outbox, the type of its
// events, and its exchange (declared up front, as `shopmesh migrate` does).
type producer struct {
	service, eventType string
	ob                 *outbox.Outbox
}

func (r *runner) newProducer(suffix string) (producer, error) {
	svc := r.env.service(suffix)
	ob, err := outbox.New(svc)
	if err != nil {
		return producer{}, err
	}
	if err := outbox.DeclareExchange(r.env.ch, svc); err != nil {
		return producer{}, err
	}
	r.env.forget(nil, []string{outbox.ExchangeName(svc)})
	return producer{service: svc, eventType: svc + ".placed.v1", ob: ob}, nil
}

// Scenario 1: outbox write. The same transaction (order row + outbox row)
// through Outbox.Publish and through plain pgx; no relay runs.

type writeSetup struct{ p producer }

func setupWrite(_ context.Context, r *runner) (err error) {
	r.write.p, err = r.newProducer("write")
	return err
}

func roundWrite(ctx context.Context, r *runner, round int) error {
	p := r.write.p
	for _, variant := range rotate([]string{"pgx", "shopmesh"}, round) {
		run, err := r.measureWriters(ctx, nil, func(c *components, pools writerPools) writeFunc {
			if variant == "pgx" {
				return rawWriter(pools.writers, p.service, p.eventType, nil)
			}
			return shopmeshWriter(pools.writers, p.ob, p.eventType, wakeInProcess)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", variant, err)
		}
		r.record(ScenarioWrite, variant, "throughput", "events/s", round, float64(r.cfg.Events)/run.elapsed.Seconds())
	}
	return nil
}

// Scenario 4: wake-up cost. Writers publish through the library while its
// relay runs (it must, or waking it costs nothing); only how the writers
// wake it differs. Besides the writers' throughput it reports the CPU one
// event cost each part, from the relay's start (just before the writers')
// until it has sent the last event, so a polling relay's late batches count
// too. That figure moves much less with the machine's other load than
// throughput does, and says where a wake-up's cost lands.

type wakeupSetup struct {
	p     producer
	queue string
	meter *eventMeter
}

func setupWakeup(ctx context.Context, r *runner) (err error) {
	w := &r.wakeup
	if w.p, err = r.newProducer("wakeup"); err != nil {
		return err
	}
	w.queue = r.env.name("wakeup")
	w.meter = r.newEventMeter(ctx, ScenarioWakeup, "writers and relay")
	return r.env.declareQueue(w.queue, outbox.ExchangeName(w.p.service), w.p.eventType, nil)
}

func roundWakeup(ctx context.Context, r *runner, round int) error {
	w := r.wakeup
	modes := map[string]wakeMode{"none": wakeNone, "in-process": wakeInProcess, "pg_notify": wakePgNotify}
	for _, variant := range rotate([]string{"none", "in-process", "pg_notify"}, round) {
		if err := r.env.purge(w.queue); err != nil {
			return err
		}
		// The relay's own metrics count its batches: each is a transaction
		// with a synchronous commit, which is what a wake-up costs.
		reg := prometheus.NewRegistry()
		metrics, err := outbox.NewMetrics(reg)
		if err != nil {
			return err
		}
		// CPU is counted from just before the relay starts until the
		// queue holds every event.
		var before, after cpuSample
		allSent := func(ctx context.Context) error {
			if err := r.env.waitMessages(ctx, w.queue, r.cfg.Events); err != nil {
				return err
			}
			var err error
			after, err = w.meter.sample()
			return err
		}
		run, err := r.measureWriters(ctx, allSent, func(c *components, pools writerPools) writeFunc {
			var err error
			if before, err = w.meter.sample(); err != nil {
				c.fail(err)
				return nil
			}
			// The baseline relay only polls: an early read after a read
			// held back by the writers' running transactions would wake it
			// as often as the wake-up does.
			heldBackRetry := time.Duration(0)
			if variant == "none" {
				heldBackRetry = -1
			}
			relay, err := outbox.NewRelay(outbox.RelayConfig{Outbox: w.p.ob, Pool: pools.relay, AMQPURL: r.env.amqpURL,
				BatchSize: r.cfg.BatchSize, HeldBackRetry: heldBackRetry, Metrics: metrics})
			if err != nil {
				c.fail(err)
				return nil
			}
			c.start("relay", relay.Run)
			return shopmeshWriter(pools.writers, w.p.ob, w.p.eventType, modes[variant])
		})
		if err != nil {
			return fmt.Errorf("%s: %w", variant, err)
		}
		r.record(ScenarioWakeup, variant, "throughput", "events/s", round, float64(r.cfg.Events)/run.elapsed.Seconds())
		r.record(ScenarioWakeup, variant, steadyMetric, "events/s", round, run.steadyRate(steadyFrom, steadyTo))
		batches, err := relayBatches(reg)
		if err != nil {
			return err
		}
		r.record(ScenarioWakeup, variant, "relay batches", "batches", round, float64(batches))
		w.meter.record(r, ScenarioWakeup, variant, round, after.since(before, nil), r.cfg.Events)
	}
	r.results.note(ScenarioWakeup, "the library relay runs with its defaults in every variant (500ms poll, LISTEN on); "+
		"none = no wake-up (poll only, without the early reads after a read held back by a running transaction), in-process = Outbox.Notify after commit, pg_notify = SELECT pg_notify(...) in every write transaction; "+
		"relay batches counts the relay's transactions while the writers ran and until it stopped; "+
		"CPU per event is each part's CPU from the relay's start, just before the writers', until every event reached the queue, divided by the events "+
		"(PostgreSQL: the postmaster and its backends; RabbitMQ: the node's OS process; writers and relay: this process); "+
		fmt.Sprintf("throughput is over the whole run; %s is between the commits at %.0f%% and %.0f%% of the events, once the relay has settled: "+
			"a polling relay leaves up to a poll's worth of events to relay after the writers' last commit, "+
			"which the whole-run figure does not charge to the baseline; the target is judged on the whole run", steadyMetric, steadyFrom*100, steadyTo*100))
	return nil
}

type writerPools struct{ writers, relay *pgxpool.Pool }

// The wake-up scenario's steady-state window, as fractions of the events.
const (
	steadyMetric = "steady throughput"
	steadyFrom   = 0.2
	steadyTo     = 0.8
)

// measureWriters resets the tables, lets prepare start what the variant
// needs and choose its writer, and runs the writers over cfg.Events events.
// then, when set, runs after the writers and before the components stop.
func (r *runner) measureWriters(ctx context.Context, then func(context.Context) error,
	prepare func(*components, writerPools) writeFunc) (writerRun, error) {
	if err := r.resetTables(ctx); err != nil {
		return writerRun{}, err
	}
	c := newComponents(ctx, r.cfg.PhaseTimeout)
	writers, err := r.pool(c, int32(r.cfg.Writers+1), nil)
	if err != nil {
		return writerRun{}, errors.Join(err, c.stop())
	}
	relay, err := r.pool(c, 4, nil)
	if err != nil {
		return writerRun{}, errors.Join(err, c.stop())
	}
	write := prepare(c, writerPools{writers: writers, relay: relay})
	if write == nil {
		return writerRun{}, c.stop()
	}
	run, werr := runPaced(c.ctx, r.cfg.Writers, r.cfg.Events, 0, write)
	if werr == nil && then != nil {
		werr = then(c.ctx)
	}
	if err := errors.Join(werr, c.stop()); err != nil {
		return writerRun{}, err
	}
	return run, nil
}

// resetTables empties the run's tables between measurements.
func (r *runner) resetTables(ctx context.Context) error {
	pool, err := r.env.pool(ctx, 1, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return r.env.reset(ctx, pool)
}

// relayBatches reads how many batches a relay published from its metrics
// (the observations of its confirm latency, one per batch).
func relayBatches(reg *prometheus.Registry) (uint64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("read relay metrics: %w", err)
	}
	var n uint64
	for _, f := range families {
		if f.GetName() == "shopmesh_relay_confirm_latency_seconds" {
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n, nil
}
