// Package bench measures the outbox library against the baselines it must
// be judged by, side by side on the same machine in the same run: a plain
// pgx insert for writes, a minimal pgx+amqp091 relay and consumer (the limit
// of this machine), and watermill's forwarder as shipped.
//
// Each scenario runs its variants in every round, in a rotating order, and
// reports each figure as a median and spread over rounds and as a ratio
// against the baseline of the same round: absolute numbers on a machine whose
// cores PostgreSQL and RabbitMQ share move by ±30% from run to run, ratios
// much less. A run creates its own database (bench_<id>) and broker objects
// (bench.<id>.*, and shopmesh.bench_<id>_* where the library fixes the
// prefix) and removes them at the end.
//
// The package must not change what it measures: it uses the library only
// through its exported API with default settings, and every variant keeps
// the same guarantees (commit order, persistent messages, publisher confirms
// before the cursor moves, inbox-guarded consumers). It is a tool for
// operators and CI, never imported by a service.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/procfs"
	"github.com/shopmesh/shopmesh/outbox"
)

// Scenario names, for Config.Only.
const (
	ScenarioWrite    = "write"
	ScenarioDrain    = "drain"
	ScenarioPipeline = "pipeline"
	ScenarioWakeup   = "wakeup"
	// ScenarioOrders and ScenarioMemory start the whole system from the
	// real binary and take a minute or more: they run only when named.
	ScenarioOrders = "orders"
	ScenarioMemory = "memory"
)

// Config configures a run. Zero values take the documented defaults.
type Config struct {
	// PostgresURL is an administrator's connection; the run creates and
	// drops its own database with it. Required.
	PostgresURL string
	// AMQPURL is the broker and vhost; the run declares and deletes its own
	// exchanges and queues there. Required.
	AMQPURL string
	// Rounds is how often every scenario is repeated. Default 3.
	Rounds int
	// Events is the size of one measurement: events written, drained, or
	// passed through the pipeline. Default 10000.
	Events int
	// Only restricts the run to these scenarios (write, drain, pipeline,
	// wakeup). Default all.
	Only []string
	// Writers is the number of concurrent writers. Default 4.
	Writers int
	// BatchSize is the shopmesh and raw relays' batch. Default 500, the
	// library relay's default.
	BatchSize int
	// ForwarderLimit caps the time watermill's forwarder gets to drain; its
	// rate is extrapolated from what it drained. Default 10s.
	ForwarderLimit time.Duration
	// LatencyRates are the fixed write rates (events/s) at which latency is
	// measured. Default 100 and 1000.
	LatencyRates []int
	// LatencyDuration is how long each fixed rate is held. Default 5s.
	LatencyDuration time.Duration
	// PhaseTimeout bounds every single measurement; one that runs over
	// fails the run. Default 2m.
	PhaseTimeout time.Duration

	// Binary is the shopmesh binary the orders and memory scenarios run,
	// one process per service plus the gateway, and `serve all`. Required
	// for them.
	Binary string
	// ManagementURL is RabbitMQ's management API (administrator): the
	// orders and memory scenarios create a vhost per system there.
	// Required for them.
	ManagementURL string
	// OrderRate is the fixed rate (checkouts/s) at which checkout →
	// confirmed latency and RSS under load are measured. Default 50.
	OrderRate int
	// OrderDuration is how long each load phase starts checkouts, at the
	// fixed rate and at full speed. Default 10s.
	OrderDuration time.Duration
	// OrderWorkers is the load generator's number of workers, each a
	// registered customer with a cart of its own. Default 96.
	OrderWorkers int
}

func (c *Config) setDefaults() {
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.Events == 0 {
		c.Events = 10000
	}
	if len(c.Only) == 0 {
		c.Only = []string{ScenarioWrite, ScenarioDrain, ScenarioPipeline, ScenarioWakeup}
	}
	if c.Writers == 0 {
		c.Writers = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.ForwarderLimit == 0 {
		c.ForwarderLimit = 10 * time.Second
	}
	if len(c.LatencyRates) == 0 {
		c.LatencyRates = []int{100, 1000}
	}
	if c.LatencyDuration == 0 {
		c.LatencyDuration = 5 * time.Second
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = 2 * time.Minute
	}
	if c.OrderRate == 0 {
		c.OrderRate = 50
	}
	if c.OrderDuration == 0 {
		c.OrderDuration = 10 * time.Second
	}
	if c.OrderWorkers == 0 {
		c.OrderWorkers = 96
	}
}

// Validate reports a configuration that cannot work. Zero values are valid:
// they stand for the defaults.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.PostgresURL != "", "bench: PostgreSQL URL is required")
	check(c.AMQPURL != "", "bench: AMQP URL is required")
	check(c.Rounds >= 1 && c.Rounds <= 50, "bench: rounds %d out of range 1..50", c.Rounds)
	check(c.Events >= 10 && c.Events <= 1_000_000, "bench: events %d out of range 10..1000000", c.Events)
	check(c.Writers >= 1 && c.Writers <= 64, "bench: writers %d out of range 1..64", c.Writers)
	check(c.BatchSize >= 1 && c.BatchSize <= 10000, "bench: batch size %d out of range 1..10000", c.BatchSize)
	check(c.ForwarderLimit >= 100*time.Millisecond, "bench: forwarder limit %s below 100ms", c.ForwarderLimit)
	check(c.LatencyDuration >= 100*time.Millisecond, "bench: latency duration %s below 100ms", c.LatencyDuration)
	check(c.PhaseTimeout >= time.Second, "bench: phase timeout %s below 1s", c.PhaseTimeout)
	for _, r := range c.LatencyRates {
		check(r >= 1 && r <= 20000, "bench: latency rate %d/s out of range 1..20000", r)
	}
	check(c.OrderRate >= 1 && c.OrderRate <= 5000, "bench: order rate %d/s out of range 1..5000", c.OrderRate)
	check(c.OrderDuration >= 100*time.Millisecond && c.OrderDuration <= 10*time.Minute, "bench: order duration %s out of range 100ms..10m", c.OrderDuration)
	check(c.OrderWorkers >= 1 && c.OrderWorkers <= 512, "bench: order workers %d out of range 1..512", c.OrderWorkers)
	known := []string{ScenarioWrite, ScenarioDrain, ScenarioPipeline, ScenarioWakeup, ScenarioOrders, ScenarioMemory}
	for _, s := range c.Only {
		check(slices.Contains(known, s), "bench: unknown scenario %q (want one of %s)", s, strings.Join(known, ", "))
		if s == ScenarioOrders || s == ScenarioMemory {
			check(c.Binary != "", "bench: %s needs the shopmesh binary", s)
			check(c.ManagementURL != "", "bench: %s needs the RabbitMQ management URL", s)
		}
	}
	return errors.Join(errs...)
}

// scenarioInfo describes a scenario and how to run one round of it.
type scenarioInfo struct {
	name, title, baseline string
	// setup declares what the scenario needs once; round measures every
	// variant once, in an order rotated by the round number.
	setup func(ctx context.Context, r *runner) error
	round func(ctx context.Context, r *runner, round int) error
}

func scenarioList() []scenarioInfo {
	return []scenarioInfo{
		{name: ScenarioWrite, baseline: "pgx",
			title: "Outbox write: domain row + outbox row per transaction, concurrent writers",
			setup: setupWrite, round: roundWrite},
		{name: ScenarioDrain, baseline: "raw",
			title: "Relay drain of a pre-filled outbox",
			setup: setupDrain, round: roundDrain},
		{name: ScenarioPipeline, baseline: "raw",
			title: "Pipeline: writers + relay + inbox consumer together; latency from outbox insert to consumer commit",
			setup: setupPipeline, round: roundPipeline},
		{name: ScenarioWakeup, baseline: "none",
			title: "Wake-up cost: writer throughput with the relay running, by how writers wake it",
			setup: setupWakeup, round: roundWakeup},
		{name: ScenarioOrders, baseline: variantSplit,
			title: "Orders through the gateway, one process per service (split) and every service in one process (serve all): checkouts reaching confirmed (absolute figures; the ratio is serve all / split)",
			setup: setupOrders, round: roundOrders},
		{name: ScenarioMemory, baseline: "none",
			title: "Memory: RSS of every process at idle and under the orders load, and of serve all (absolute figures)",
			setup: setupMemory, round: roundMemory},
	}
}

// runner carries one run's state through the scenarios.
type runner struct {
	cfg     Config
	env     *env
	out     io.Writer
	results *results

	write    writeSetup
	drain    drainSetup
	pipeline pipelineSetup
	wakeup   wakeupSetup

	systems []*systemRun // started and not yet closed
	split   *systemRun   // one process per service, while it runs
	all     *systemRun   // serve all, while it runs
}

// Run measures the selected scenarios and returns the report. Progress goes
// to out (nil discards it), one line per measurement. On error it returns
// what was measured so far with the error; the run's database and broker
// objects are removed in every case.
func Run(ctx context.Context, cfg Config, out io.Writer) (rep Report, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if out == nil {
		out = io.Discard
	}
	rep = Report{
		StartedAt: time.Now().UTC(),
		Settings: Settings{
			Rounds: cfg.Rounds, Events: cfg.Events, Writers: cfg.Writers, BatchSize: cfg.BatchSize,
			ForwarderSeconds: cfg.ForwarderLimit.Seconds(), LatencyRates: cfg.LatencyRates,
			LatencySeconds: cfg.LatencyDuration.Seconds(), Scenarios: cfg.Only,
			OrderRate: cfg.OrderRate, OrderSeconds: cfg.OrderDuration.Seconds(), OrderWorkers: cfg.OrderWorkers,
		},
	}
	setupCtx, cancel := context.WithTimeout(ctx, time.Minute)
	e, err := newEnv(setupCtx, cfg.PostgresURL, cfg.AMQPURL)
	cancel()
	if err != nil {
		return rep, err
	}
	defer func() {
		if cerr := e.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	r := &runner{cfg: cfg, env: e, out: out, results: newResults(cfg.Rounds)}
	defer func() {
		if cerr := r.closeSystems(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	pool, err := e.pool(ctx, 1, nil)
	if err != nil {
		return rep, err
	}
	rep.Environment, err = e.environment(ctx, pool)
	pool.Close()
	if err != nil {
		return rep, err
	}
	rep.Environment.Go = runtime.Version()
	rep.Environment.OS = runtime.GOOS + "/" + runtime.GOARCH
	rep.Environment.CPUs = runtime.NumCPU()
	rep.Environment.GOMAXPROCS = runtime.GOMAXPROCS(0)
	rep.Environment.LoadStart = loadAverage()
	machineStart, machineErr := procfs.ReadMachine()
	fmt.Fprintf(out, "bench database %s, broker objects bench.%s.* and shopmesh.bench_%s_*\n", e.dbName, e.id, e.id)

	var ran []scenarioInfo
	defer func() {
		for _, s := range ran {
			rep.Scenarios = append(rep.Scenarios, r.results.scenario(s))
		}
		rep.Targets = r.results.targets()
		rep.Environment.LoadEnd = loadAverage()
		if machineEnd, err := procfs.ReadMachine(); err == nil && machineErr == nil {
			steal := round3(100 * machineEnd.StealShare(machineStart))
			rep.Environment.StealPercent = &steal
		}
		rep.Seconds = round3(time.Since(rep.StartedAt).Seconds())
	}()
	for _, s := range scenarioList() {
		if !slices.Contains(cfg.Only, s.name) {
			continue
		}
		if err := s.setup(ctx, r); err != nil {
			return rep, fmt.Errorf("%s: set up: %w", s.name, err)
		}
		ran = append(ran, s)
		for round := range cfg.Rounds {
			if err := s.round(ctx, r, round); err != nil {
				return rep, fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
		}
	}
	return rep, nil
}

// rotate returns the variants in the order of round: each variant takes
// each position in turn, so drift over a run (a checkpoint, a warming
// cache) does not always favour the same one.
func rotate[T any](variants []T, round int) []T {
	n := len(variants)
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, variants[(i+round)%n])
	}
	return out
}

// pool opens a pool on the run's database that closes when c stops.
func (r *runner) pool(c *components, maxConns int32, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	p, err := r.env.pool(c.ctx, maxConns, tracer)
	if err != nil {
		return nil, err
	}
	c.cleanup(p.Close)
	return p, nil
}

// dial opens a broker connection that closes when c stops.
func (r *runner) dial(c *components) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(r.env.amqpURL, amqp.Config{Dial: amqp.DefaultDial(outbox.HandshakeTimeout)})
	if err != nil {
		return nil, fmt.Errorf("connect to rabbitmq: %w", err)
	}
	c.cleanup(func() { conn.Close() })
	return conn, nil
}

// record stores a figure and prints a progress line.
func (r *runner) record(scenario, variant, metric, unit string, round int, v float64) {
	r.results.add(scenario, variant, metric, unit, round, v)
	fmt.Fprintf(r.out, "round %d/%d  %-8s  %-10s  %-14s %s %s\n", round+1, r.cfg.Rounds, scenario, variant, metric, num(v), unit)
}

// components runs a measurement's background parts (relays, consumers).
// The first one to fail cancels the measurement's context with its error,
// so writers and waits stop at once instead of running into the timeout.
type components struct {
	ctx     context.Context
	fail    context.CancelCauseFunc
	release context.CancelFunc
	wg      sync.WaitGroup
	stops   []context.CancelFunc
	after   []func() // run by stop once the components ended
}

// newComponents starts a measurement bounded by timeout.
func newComponents(ctx context.Context, timeout time.Duration) *components {
	ctx, release := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("measurement exceeded its %s limit", timeout))
	ctx, fail := context.WithCancelCause(ctx)
	return &components{ctx: ctx, fail: fail, release: release}
}

// start runs fn until stop; an error fn returns before then fails the
// measurement.
func (c *components) start(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.stops = append(c.stops, cancel)
	c.wg.Go(func() {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			c.fail(fmt.Errorf("%s: %w", name, err))
		}
	})
}

// cleanup registers f to run after every component stopped (closing the
// pools and connections they use).
func (c *components) cleanup(f func()) { c.after = append(c.after, f) }

// stop ends every component, in reverse order of start, waits for them
// (bounded: a component that does not stop is reported, not waited for),
// runs the cleanups, and returns why the measurement failed, if it did.
func (c *components) stop() error {
	defer c.release()
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return errors.New("components did not stop within 30s")
	}
	for i := len(c.after) - 1; i >= 0; i-- {
		c.after[i]()
	}
	err := context.Cause(c.ctx)
	c.fail(nil)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
