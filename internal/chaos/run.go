// Package chaos proves shopmesh's promise under faults: no event lost, none
// applied twice, every order in a known state. It runs the real binary as
// one OS process per service plus the gateway, with toxiproxy (embedded,
// loopback only) between every service and its PostgreSQL and RabbitMQ,
// drives a seeded workload through the gateway covering every saga path,
// injects a scenario's faults (SIGKILL and restart, SIGSTOP, broker and
// database restarts on private servers, partitions, blackholes, latency,
// connections cut at COMMIT, duplicated, reordered and poison messages,
// competing replicas), heals, waits for the system to drain, and checks a
// ledger across every service's database.
//
// It is used by `shopmesh chaos` and by tests/chaos; it must not import
// testing, and it never stops or restarts the shared platform: scenarios
// that restart a server get a private one. Everything it starts it stops
// and removes again, also on failure and cancellation.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shopmesh/shopmesh/internal/sysrun"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// Config configures a chaos run.
type Config struct {
	// Binary is the shopmesh binary every process runs (required).
	Binary string
	// Scenarios to run by name; empty or "all" means every one.
	Scenarios []string
	// Seed draws each scenario's workload and fault schedule; the same seed
	// gives the same plan (timing on a busy machine still varies).
	Seed int64
	// Orders per scenario. Default 10 with Short, else 40.
	Orders int
	// Short runs few faults of short duration (CI).
	Short bool
	// Services are the targets to run besides the gateway. Default: every
	// target the binary has (see DiscoverServices).
	Services []string
	// PostgresURL, AMQPURL and ManagementURL are the shared platform's
	// administrator URLs (SHOPMESH_POSTGRES_URL, SHOPMESH_AMQP_URL,
	// SHOPMESH_AMQP_MANAGEMENT_URL): the run creates fresh databases and a
	// fresh virtual host there.
	PostgresURL   string
	AMQPURL       string
	ManagementURL string
	// Systems is how many systems may run at once (scenarios on private
	// servers get one of their own). Default 1.
	Systems int
	// PaymentTimeout is the saga's payment timeout the services run with.
	// Default 6s with Short, else 10s.
	PaymentTimeout time.Duration
	// DispatchDelay is the carrier's dispatch delay. Default 2s.
	DispatchDelay time.Duration
	// ScenarioTimeout bounds one scenario from setup to ledger. Default
	// 4 minutes with Short, else 12.
	ScenarioTimeout time.Duration
	// KeepLogs keeps the processes' logs even when every invariant held
	// (they are always kept when one failed).
	KeepLogs bool
	Logger   *slog.Logger

	platform sysrun.Platform
}

func (c *Config) setDefaults() {
	if c.Orders == 0 {
		c.Orders = 40
		if c.Short {
			c.Orders = 10
		}
	}
	if c.Systems == 0 {
		c.Systems = 1
	}
	if c.PaymentTimeout == 0 {
		c.PaymentTimeout = 10 * time.Second
		if c.Short {
			c.PaymentTimeout = 6 * time.Second
		}
	}
	if c.DispatchDelay == 0 {
		c.DispatchDelay = 2 * time.Second
	}
	if c.ScenarioTimeout == 0 {
		c.ScenarioTimeout = 12 * time.Minute
		if c.Short {
			c.ScenarioTimeout = 4 * time.Minute
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.platform = sysrun.Platform{PostgresURL: c.PostgresURL, AMQPURL: c.AMQPURL, ManagementURL: c.ManagementURL}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("chaos: the shopmesh binary is required"))
	} else if _, err := os.Stat(c.Binary); err != nil {
		errs = append(errs, fmt.Errorf("chaos: binary: %w", err))
	}
	if c.Orders < 0 || c.Orders > 10000 {
		errs = append(errs, fmt.Errorf("chaos: orders %d out of range 1..10000", c.Orders))
	}
	if c.Systems < 0 || c.Systems > 8 {
		errs = append(errs, fmt.Errorf("chaos: systems %d out of range 1..8", c.Systems))
	}
	for _, need := range []string{"user", "catalog", "cart", "order", "inventory", "payment", "shipping", "invoice"} {
		if len(c.Services) > 0 && !contains(c.Services, need) {
			errs = append(errs, fmt.Errorf("chaos: service %s is required by the workload", need))
		}
	}
	if _, err := selectScenarios(c.Scenarios); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// DiscoverServices asks the binary which targets it can serve and returns
// them without the gateway.
func DiscoverServices(ctx context.Context, binary string) ([]string, error) {
	return sysrun.DiscoverServices(ctx, binary)
}

// Run runs the scenarios and returns their results. It returns an error
// only when it could not run at all; broken invariants are in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	if len(cfg.Services) == 0 && cfg.Binary != "" {
		svcs, err := DiscoverServices(ctx, cfg.Binary)
		if err != nil {
			return nil, err
		}
		cfg.Services = svcs
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scenarios, _ := selectScenarios(cfg.Scenarios)
	needShared := false
	for _, s := range scenarios {
		needShared = needShared || !s.private
	}
	if needShared {
		if err := cfg.platform.Validate(); err != nil {
			return nil, err
		}
	}
	began := time.Now()
	groups := groupScenarios(scenarios, cfg.Systems)
	report := &Report{Seed: cfg.Seed, Short: cfg.Short, Orders: cfg.Orders, Services: cfg.Services}
	results := make([][]Result, len(groups))
	sem := make(chan struct{}, cfg.Systems)
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			results[i] = runGroup(ctx, cfg, g)
		})
	}
	wg.Wait()
	byName := map[string]Result{}
	for _, rs := range results {
		for _, r := range rs {
			byName[r.Scenario] = r
		}
	}
	for _, s := range scenarios {
		r, ok := byName[s.name]
		if !ok {
			r = Result{Scenario: s.name, Seed: cfg.Seed, Error: "not run: " + errString(ctx.Err())}
		}
		report.Runs = append(report.Runs, r)
	}
	report.Duration = time.Since(began)
	return report, ctx.Err()
}

func errString(err error) string {
	if err == nil {
		return "interrupted"
	}
	return err.Error()
}

// groupScenarios puts the scenarios that need private servers on one
// system and spreads the others over the remaining systems.
type group struct {
	private   bool
	scenarios []scenario
}

func groupScenarios(scenarios []scenario, systems int) []group {
	var priv, shared []scenario
	for _, s := range scenarios {
		if s.private {
			priv = append(priv, s)
		} else {
			shared = append(shared, s)
		}
	}
	var out []group
	if len(priv) > 0 {
		out = append(out, group{private: true, scenarios: priv})
	}
	n := systems
	if len(priv) > 0 && n > 1 {
		n--
	}
	n = max(1, min(n, len(shared)))
	if len(shared) > 0 {
		parts := make([]group, n)
		for i, s := range shared {
			parts[i%n].scenarios = append(parts[i%n].scenarios, s)
		}
		out = append(out, parts...)
	}
	return out
}

// runGroup starts one system and runs its scenarios one after the other.
func runGroup(ctx context.Context, cfg Config, g group) []Result {
	runID := randomHex(4)
	fail := func(err error) []Result {
		var out []Result
		for _, s := range g.scenarios {
			out = append(out, Result{Scenario: s.name, Seed: cfg.Seed, Error: "system did not start: " + err.Error()})
		}
		return out
	}
	sys, err := startSystem(ctx, cfg, g.private, runID)
	if err != nil {
		return fail(err)
	}
	var results []Result
	failed := false
	for _, sc := range g.scenarios {
		if ctx.Err() != nil {
			break
		}
		r := sys.runScenario(ctx, sc)
		failed = failed || !r.Passed()
		results = append(results, r)
	}
	keep := failed || cfg.KeepLogs
	if keep {
		for i := range results {
			results[i].Logs = sys.dir
		}
	}
	sys.close(context.WithoutCancel(ctx), keep)
	return results
}

// scenarioSeed mixes the run's seed with the scenario's name, so that one
// scenario run alone draws what it draws within `all`.
func scenarioSeed(seed int64, name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return seed ^ int64(h.Sum64()>>1)
}

// runScenario plays one scenario on a healthy system: workload and faults
// together, heal, drain, ledger. The workload and the faults have the
// scenario's time; heal, drain and ledger have their own, so that a system
// the faults broke is still checked and reported.
func (s *system) runScenario(parent context.Context, sc scenario) (res Result) {
	began := time.Now()
	res = Result{Scenario: sc.name, Seed: s.cfg.Seed}
	defer func() { res.Duration = time.Since(began) }()
	ctx, cancel := context.WithTimeout(parent, s.cfg.ScenarioTimeout)
	defer cancel()
	seed := scenarioSeed(s.cfg.Seed, sc.name)
	rng := rand.New(rand.NewPCG(uint64(seed), 0xfa17))
	f := &faultRun{s: s, rng: rng, short: s.cfg.Short, expectedDead: map[string][]string{}, wait: 8 * time.Second}
	if !s.cfg.Short {
		f.wait = 15 * time.Second
	}
	log := s.logger.With("scenario", sc.name)
	log.Info("scenario starting")

	if err := s.heal(ctx); err != nil {
		res.Error = "system not healthy before the scenario: " + err.Error()
		return res
	}
	wireBefore := s.proxies.wireStats()
	dupsBefore, deadBaseline, err := s.baselines(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	crashesBefore := s.procs.crashCount()

	w := planWorkload(seed, s.runID, sc.name, s.cfg.Orders, sc.weights)
	res.Planned = len(w.orders)
	if err := w.setup(ctx, s.admin); err != nil {
		res.Error = "workload setup: " + err.Error()
		return res
	}

	// Faults and workload together. The faults stop by themselves (bounded
	// counts and waits); their context only guards against a stuck one.
	faultCtx, stopFaults := context.WithTimeout(ctx, s.cfg.ScenarioTimeout/2)
	defer stopFaults()
	faultErr := make(chan error, 1)
	go func() { faultErr <- sc.faults(faultCtx, f) }()
	stagger := 150 * time.Millisecond
	if !s.cfg.Short {
		stagger = 400 * time.Millisecond
	}
	wctx, stopWorkload := context.WithTimeout(ctx, s.cfg.ScenarioTimeout/2)
	w.run(wctx, s.gateway, s.httpc, stagger)
	stopWorkload()
	if err := <-faultErr; err != nil && faultCtx.Err() == nil {
		res.FaultErrors = append(res.FaultErrors, err.Error())
	}
	stopFaults()
	res.Faults = f.faults()
	res.Targeted, res.Missed = f.moments()

	// Heal, drain and check on their own budget.
	ctx, cancel = context.WithTimeout(parent, s.drainTimeout()+3*time.Minute)
	defer cancel()
	healed := time.Now()
	if err := s.heal(ctx); err != nil {
		res.Error = "heal: " + err.Error()
	}
	ids := w.orderIDs()
	drainErr := s.drain(ctx, ids, s.drainTimeout())
	if drainErr == nil && sc.afterDrain != nil {
		if err := sc.afterDrain(ctx, f); err != nil {
			res.FaultErrors = append(res.FaultErrors, err.Error())
		}
		res.Faults = f.faults()
		res.Targeted, res.Missed = f.moments()
		drainErr = s.drain(ctx, ids, s.drainTimeout())
	}
	res.DrainTime = time.Since(healed)
	if drainErr != nil {
		res.DrainError = drainErr.Error()
	}

	in := ledgerInput{w: w, paymentTimeout: s.cfg.PaymentTimeout, expectedDead: f.expectedDead,
		deadBaseline: deadBaseline, loyalty: s.has("loyalty")}
	// The drain saw queues and outboxes empty; a message may still be in a
	// consumer's hands, so a check that fails is repeated for a while (not
	// when the drain already timed out: then nothing is moving).
	var l *ledger
	settle := time.Now().Add(20 * time.Second)
	for {
		l, err = checkLedger(ctx, s.pools, in)
		if err == nil && len(l.Violations) == 0 || drainErr != nil || time.Now().After(settle) || ctx.Err() != nil {
			break
		}
		if wait.Sleep(ctx, time.Second) != nil {
			break
		}
	}
	if err != nil {
		res.Error = strings.TrimPrefix(res.Error+"; ledger: "+err.Error(), "; ")
		return res
	}
	dupsAfter, _, err := s.baselines(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	wire := s.proxies.wireStats().sub(wireBefore)
	res.fill(l, w, wire, dupsAfter-dupsBefore, s.procs.crashesSince(crashesBefore))
	if res.Targeted >= 2 && res.Missed == res.Targeted {
		// Every fault acted at a random moment instead: the scenario did not
		// test what it names, and the proxies no longer see what they wait
		// for. (One moment missed alone can be the workload's lull.)
		res.Error = fmt.Sprintf("none of the %d protocol moments its faults waited for came within %s", res.Targeted, f.wait)
	}
	log.Info("scenario done", "passed", res.Passed(), "violations", len(res.Violations), "took", time.Since(began).Round(time.Millisecond))
	return res
}

func (s *system) drainTimeout() time.Duration {
	d := 40*time.Second + 2*s.cfg.PaymentTimeout
	if !s.cfg.Short {
		d = 4 * time.Minute
	}
	return d
}

// baselines reads the inbox duplicates absorbed so far (summed) and each
// database's highest dead-letter id.
func (s *system) baselines(ctx context.Context) (int64, map[string]int64, error) {
	var dups int64
	dead := map[string]int64{}
	for svc, pool := range s.pools {
		var n, maxID int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(count), 0)::bigint FROM inbox_duplicates`).Scan(&n); err != nil {
			return 0, nil, fmt.Errorf("%s inbox duplicates: %w", svc, err)
		}
		if err := pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM dead_letters`).Scan(&maxID); err != nil {
			return 0, nil, fmt.Errorf("%s dead letters: %w", svc, err)
		}
		dups += n
		dead[svc] = maxID
	}
	return dups, dead, nil
}

// drain waits until every order of the scenario is terminal and the system
// has no backlog (sysrun.WaitQuiet), or until timeout.
func (s *system) drain(ctx context.Context, ids []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return sysrun.WaitQuiet(ctx, s.pools, s.infra.AMQPAdmin, 500*time.Millisecond, func(ctx context.Context) (string, error) {
		var open, found int
		if err := s.pools["order"].QueryRow(ctx, `SELECT count(*) FILTER (WHERE state NOT IN ('delivered', 'cancelled')), count(*)
			FROM orders WHERE id::text = ANY($1)`, ids).Scan(&open, &found); err != nil {
			return "", err
		}
		switch {
		case open > 0:
			return fmt.Sprintf("%d orders not terminal", open), nil
		case found < len(ids):
			return fmt.Sprintf("%d of %d orders exist", found, len(ids)), nil
		}
		return "", nil
	})
}

// orderIDs returns the ids of the orders the cart accepted as the clients
// saw them (the ledger also finds those whose answer was lost).
func (w *workload) orderIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, p := range w.placed {
		if p.OrderID != "" {
			ids = append(ids, p.OrderID)
		}
	}
	sort.Strings(ids)
	return ids
}
