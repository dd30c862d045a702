package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopmesh/shopmesh/internal/procfs"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// The orders and memory scenarios run the whole system from the real
// binary; there is no external baseline for them, so they report absolute
// figures against the project's targets.

// Time bounds of the system scenarios.
const (
	settleTime     = 2 * time.Second        // after start-up, before idle RSS is sampled
	idleWindow     = time.Second            // idle RSS is the peak over this window
	sampleInterval = 200 * time.Millisecond // RSS sampling under load
	confirmTimeout = 30 * time.Second       // a checkout not confirmed by then is a failure
	quietTimeout   = 2 * time.Minute        // for the previous phase's backlog to drain
	idleCPUWindow  = 2 * time.Second        // idle CPU is measured over this window
	// disturbedSteal is the steal, in percent of the machine's CPU time,
	// from which a phase's note says the host disturbed it. A judgement
	// that errs towards warning: on a shared host a round that lost half
	// its CPU this way cost twice the CPU per checkout of the rounds
	// around it, while rounds that lost 6–16% did not stand out of the
	// noise.
	disturbedSteal = 10
	shopProducts   = 20
)

// systemRun is one started system with its workload and what was sampled.
type systemRun struct {
	sys  *system
	shop *shop
	idle map[string]int64 // process -> peak RSS at idle
	load map[string]int64 // process -> peak RSS under load
}

// startSystemRun starts a system, samples its idle RSS (before any request
// but readiness probes) and seeds the shop.
func (r *runner) startSystemRun(ctx context.Context, label string, together bool) (*systemRun, error) {
	fmt.Fprintf(r.out, "starting the %s system (%s)\n", label, map[bool]string{false: "one process per service", true: "serve all"}[together])
	began := time.Now()
	sys, err := startSystem(ctx, r.cfg, r.env.id, label, together)
	if err != nil {
		return nil, fmt.Errorf("start the %s system: %w", label, err)
	}
	sr := &systemRun{sys: sys, load: map[string]int64{}}
	r.systems = append(r.systems, sr)
	fmt.Fprintf(r.out, "%s system ready in %s\n", label, time.Since(began).Round(time.Millisecond))
	if err := wait.Sleep(ctx, settleTime); err != nil {
		return sr, err
	}
	idle := newRSSSampler(sys)
	if err := wait.Sleep(ctx, idleWindow); err != nil {
		idle.stop()
		return sr, err
	}
	if sr.idle, err = idle.stop(); err != nil {
		return sr, fmt.Errorf("%s idle RSS: %w", label, err)
	}
	if err := sys.createAdmin(ctx, r.env.id); err != nil {
		return sr, fmt.Errorf("%s: %w", label, err)
	}
	if sr.shop, err = newShop(ctx, sys, r.env.id, shopProducts, r.cfg.OrderWorkers); err != nil {
		return sr, fmt.Errorf("%s shop: %w", label, err)
	}
	return sr, nil
}

// fixedRate drives the configured fixed rate once the system is quiet,
// sampling RSS, and returns the phase's result. started, when not nil, runs
// just before the load starts.
func (r *runner) fixedRate(ctx context.Context, scenario string, sr *systemRun, started func() error) (loadResult, error) {
	if err := r.settle(ctx, scenario, sr, "before the fixed rate"); err != nil {
		return loadResult{}, err
	}
	if started != nil {
		if err := started(); err != nil {
			return loadResult{}, err
		}
	}
	s := newRSSSampler(sr.sys)
	lr := sr.shop.drive(ctx, r.cfg.OrderRate, r.cfg.OrderDuration, confirmTimeout)
	peak, err := s.stop()
	for k, v := range peak {
		sr.load[k] = max(sr.load[k], v)
	}
	return lr, err
}

func (r *runner) closeSystems() error {
	var errs []error
	for _, sr := range r.systems {
		if err := sr.sys.close(); err != nil {
			errs = append(errs, fmt.Errorf("close the %s system: %w", sr.sys.label, err))
		}
	}
	r.systems = nil
	return errors.Join(errs...)
}

// The orders scenario's variants: the same system packaged two ways.
const (
	variantSplit = "split"     // one process per service and the gateway
	variantAll   = "serve all" // every service and the gateway in one process
)

// setupOrders starts both systems; they run side by side for the whole
// scenario, each idle while the other is measured.
func setupOrders(ctx context.Context, r *runner) (err error) {
	if r.split == nil {
		if r.split, err = r.startSystemRun(ctx, "split", false); err != nil {
			return err
		}
	}
	if r.all == nil {
		r.all, err = r.startSystemRun(ctx, "all", true)
	}
	return err
}

// roundOrders measures both systems, in turn, in the order of the round.
func roundOrders(ctx context.Context, r *runner, round int) error {
	systems := map[string]*systemRun{variantSplit: r.split, variantAll: r.all}
	for _, variant := range rotate([]string{variantSplit, variantAll}, round) {
		if err := r.measureOrders(ctx, variant, systems[variant], round); err != nil {
			return fmt.Errorf("%s: %w", variant, err)
		}
	}
	return nil
}

// measureOrders measures checkout → confirmed latency at the fixed rate,
// then confirmed checkouts/s with every worker at full speed, and the CPU
// one checkout cost in each phase (up to the quiet system after it).
func (r *runner) measureOrders(ctx context.Context, variant string, sr *systemRun, round int) error {
	rate := fmt.Sprintf("at %d/s", r.cfg.OrderRate)
	meter, notes := newCPUMeter(ctx, sr.sys.pids(), r.cfg.PostgresURL, r.cfg.ManagementURL)
	for _, n := range notes {
		r.results.note(ScenarioOrders, n)
	}
	var idle idleRate
	var before phaseMark
	lr, err := r.fixedRate(ctx, ScenarioOrders, sr, func() error {
		quiet, err := mark(ctx, meter, sr.sys)
		if err != nil {
			return err
		}
		idle, before, err = idleSince(ctx, meter, sr.sys, quiet)
		return err
	})
	if err != nil {
		return err
	}
	ds, errs := lr.confirmedLatencies()
	if len(ds) == 0 {
		return fmt.Errorf("no checkout reached confirmed at %d/s: %w", r.cfg.OrderRate, errors.Join(firstErrors(errs, 3)...))
	}
	r.record(ScenarioOrders, variant, "confirmed "+rate, "checkouts/s", round, lr.throughput())
	r.record(ScenarioOrders, variant, "p50 "+rate, "ms", round, ms(percentile(ds, 50)))
	r.record(ScenarioOrders, variant, "p99 "+rate, "ms", round, ms(percentile(ds, 99)))
	for i, ds := range lr.stepLatencies() {
		r.record(ScenarioOrders, variant, fmt.Sprintf("p50 %s %s", stepNames[i], rate), "ms", round, ms(percentile(ds, 50)))
		r.record(ScenarioOrders, variant, fmt.Sprintf("p99 %s %s", stepNames[i], rate), "ms", round, ms(percentile(ds, 99)))
	}
	r.record(ScenarioOrders, variant, "failed "+rate, "checkouts", round, float64(len(errs)))
	r.record(ScenarioOrders, variant, "order reads per checkout "+rate, "reads", round, lr.pollsPerCheckout())
	r.orderNotes(variant+" "+rate, lr, errs)

	// Every checkout's work is done once the system is quiet again
	// (shipping delivers on timers, seconds later).
	if err := r.settle(ctx, ScenarioOrders, sr, "before full speed"); err != nil {
		return err
	}
	if before, idle, err = r.endPhase(ctx, meter, sr.sys, variant, round, rate, before, idle, len(lr.outcomes)); err != nil {
		return err
	}
	full := sr.shop.drive(ctx, 0, r.cfg.OrderDuration, confirmTimeout)
	_, errs = full.confirmedLatencies()
	r.record(ScenarioOrders, variant, "throughput", "checkouts/s", round, full.throughput())
	r.record(ScenarioOrders, variant, "failed at full speed", "checkouts", round, float64(len(errs)))
	r.record(ScenarioOrders, variant, "order reads per checkout at full speed", "reads", round, full.pollsPerCheckout())
	r.orderNotes(variant+" at full speed", full, errs)
	if err := r.settle(ctx, ScenarioOrders, sr, "after full speed"); err != nil {
		return err
	}
	_, _, err = r.endPhase(ctx, meter, sr.sys, variant, round, "", before, idle, len(full.outcomes))
	return err
}

// phaseMark is what is read at the start and end of a load phase: the
// processes' cumulative CPU and the services' counters (see counters).
type phaseMark struct {
	cpu    cpuSample
	counts map[string]float64
}

// idleRate is each part's CPU and each counter's rate per second while
// the system is quiet (relays polling, brokers ticking): a phase's figures
// are what it used beyond that.
type idleRate struct {
	cpu, counts map[string]float64
}

func mark(ctx context.Context, meter *cpuMeter, sys *system) (m phaseMark, err error) {
	if m.cpu, err = meter.sample(); err != nil {
		return m, err
	}
	m.counts, err = sys.counters(ctx)
	return m, err
}

// idleSince measures the idle rates over idleCPUWindow from a, a mark
// taken when the system was quiet, and returns them with the mark that
// ends the window.
func idleSince(ctx context.Context, meter *cpuMeter, sys *system, a phaseMark) (idleRate, phaseMark, error) {
	if err := wait.Sleep(ctx, idleCPUWindow); err != nil {
		return idleRate{}, a, err
	}
	b, err := mark(ctx, meter, sys)
	if err != nil {
		return idleRate{}, a, err
	}
	wall := b.cpu.at.Sub(a.cpu.at).Seconds()
	idle := idleRate{cpu: b.cpu.perSecond(a.cpu), counts: map[string]float64{}}
	for k, v := range b.counts {
		idle.counts[k] = (v - a.counts[k]) / wall
	}
	return idle, b, nil
}

// lower is each part's lower rate of i and o. Idle is measured before and
// after a phase and the lower taken, so that a window that caught
// something passing (PostgreSQL's autovacuum after a load, the other
// system's last timers) does not make the phase seem to have used less
// than it did.
func (i idleRate) lower(o idleRate) idleRate {
	low := func(a, b map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range a {
			if w, ok := b[k]; ok {
				v = min(v, w)
			}
			out[k] = v
		}
		return out
	}
	return idleRate{cpu: low(i.cpu, o.cpu), counts: low(i.counts, o.counts)}
}

// endPhase ends a phase that began at before, once the system is quiet
// again: it measures the idle rates after it and records the phase's CPU
// and counts per checkout beyond the lower of the idle rates before
// (idle) and after. It returns the mark and idle rates the next phase
// starts from.
func (r *runner) endPhase(ctx context.Context, meter *cpuMeter, sys *system, variant string, round int, phase string, before phaseMark, idle idleRate, checkouts int) (phaseMark, idleRate, error) {
	after, err := mark(ctx, meter, sys)
	if err != nil {
		return after, idle, err
	}
	idleAfter, next, err := idleSince(ctx, meter, sys, after)
	if err != nil {
		return next, idle, err
	}
	low := idle.lower(idleAfter)
	name := phase
	if name == "" {
		name = "at full speed"
	}
	r.results.note(ScenarioOrders, fmt.Sprintf("%s round %d idle CPU before / after the phase %s: PostgreSQL %.1f / %.1f ms/s, RabbitMQ %.1f / %.1f ms/s",
		variant, round+1, name, idle.cpu[cpuPostgres]/1e6, idleAfter.cpu[cpuPostgres]/1e6, idle.cpu[cpuRabbitMQ]/1e6, idleAfter.cpu[cpuRabbitMQ]/1e6))
	used, below := after.cpu.sinceIdle(before.cpu, low.cpu)
	r.recordCPU(variant, round, phase, used, checkouts)
	if note := belowIdleNote(variant, round, name, below); note != "" {
		r.results.note(ScenarioOrders, note)
	}
	if steal, ok := after.cpu.stealPercent(before.cpu); ok {
		r.record(ScenarioOrders, variant, strings.TrimSpace("CPU taken by the host (steal) "+phase), "%", round, steal)
		if note := stealNote(variant, round, name, steal); note != "" {
			r.results.note(ScenarioOrders, note)
		}
	}
	r.recordCounts(variant, round, phase, before, after, low.counts, checkouts)
	return next, idleAfter, nil
}

// belowIdleNote says which servers used less CPU in a phase than their
// idle rate accounts for, so that the 0 reported as their CPU per checkout
// is not read as a measurement; "" when neither did. Service processes are
// left out: their zero only enters the services' sum and the by-process
// note, where a service at rest for the phase (user, whose idle window can
// catch the password hashing of the customers registered before it) is
// no news.
func belowIdleNote(variant string, round int, phase string, below []string) string {
	var parts []string
	for _, p := range below {
		if p == cpuPostgres || p == cpuRabbitMQ {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%s round %d %s: %s used less CPU than at rest over the same time, so %s CPU per checkout shows 0 and measures nothing (the idle rate was taken at a busier moment, as under heavy steal)",
		variant, round+1, phase, strings.Join(parts, ", "), map[bool]string{true: "its", false: "their"}[len(parts) == 1])
}

// stealNote says that the host disturbed a phase (named as in the notes:
// "at 50/s", "at full speed") when it took disturbedSteal percent or more
// of the machine's CPU time; "" when it took less.
func stealNote(variant string, round int, phase string, steal float64) string {
	if steal < disturbedSteal {
		return ""
	}
	return fmt.Sprintf("%s round %d lost %.0f%% of the machine's CPU time to the host %s: its figures there say more about the host than about the system",
		variant, round+1, steal, phase)
}

// counted are the figures recordCounts reports: each kind of counter with
// its metric and unit and how its note names the parts. Unlike CPU time
// the counts hardly move with the machine's other load: they show what a
// change saved in requests to the database and in messages.
var counted = []struct{ kind, metric, unit, by string }{
	{countTrips, "PostgreSQL round trips per checkout", "round trips", "by service"},
	{countPublished, "events published per checkout", "events", "by producer"},
	{countDelivered, "messages applied per checkout", "messages", "by event type"},
	{countHeldBack, "relay reads held back per checkout", "reads", "by service"},
}

// recordCounts reports what one checkout cost in a phase beyond the idle
// rates, per kind of counter, with each part's share in a note.
func (r *runner) recordCounts(variant string, round int, phase string, before, after phaseMark, idle map[string]float64, checkouts int) {
	if checkouts == 0 {
		return
	}
	wall := after.cpu.at.Sub(before.cpu.at).Seconds()
	for _, c := range counted {
		var total float64
		var split []string
		for _, k := range slices.Sorted(maps.Keys(after.counts)) {
			name, ok := strings.CutPrefix(k, c.kind+"/")
			if !ok {
				continue
			}
			n := max(after.counts[k]-before.counts[k]-idle[k]*wall, 0) / float64(checkouts)
			total += n
			split = append(split, fmt.Sprintf("%s %.1f", name, n))
		}
		metric := c.metric
		if phase != "" {
			metric += " " + phase
		}
		r.record(ScenarioOrders, variant, metric, c.unit, round, total)
		r.results.note(ScenarioOrders, fmt.Sprintf("%s round %d %s %s: %s", variant, round+1, metric, c.by, strings.Join(split, ", ")))
	}
}

// recordCPU reports CPU per checkout in a phase (empty: at full speed,
// where the capacity figure comes from): the shopmesh processes together,
// each server, their total, and at full speed what that total would allow
// on this machine's cores; each process's share goes into a note.
func (r *runner) recordCPU(variant string, round int, phase string, used map[string]time.Duration, checkouts int) {
	if checkouts == 0 {
		return
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(checkouts) }
	var shopmesh, total time.Duration
	var split []string
	for _, name := range slices.Sorted(maps.Keys(used)) {
		switch name {
		case cpuPostgres, cpuRabbitMQ, cpuGenerator:
		default:
			shopmesh += used[name]
			split = append(split, fmt.Sprintf("%s %.1f", name, per(used[name])))
		}
	}
	total = shopmesh + used[cpuPostgres] + used[cpuRabbitMQ]
	metric := "CPU per checkout"
	if phase != "" {
		metric += " " + phase
	}
	r.record(ScenarioOrders, variant, metric+": services", "ms", round, per(shopmesh))
	if _, ok := used[cpuPostgres]; ok {
		r.record(ScenarioOrders, variant, metric+": PostgreSQL", "ms", round, per(used[cpuPostgres]))
	}
	if _, ok := used[cpuRabbitMQ]; ok {
		r.record(ScenarioOrders, variant, metric+": RabbitMQ", "ms", round, per(used[cpuRabbitMQ]))
	}
	r.record(ScenarioOrders, variant, metric+": total", "ms", round, per(total))
	r.record(ScenarioOrders, variant, metric+": load generator", "ms", round, per(used[cpuGenerator]))
	if phase == "" {
		r.record(ScenarioOrders, variant, "CPU-bound capacity", "checkouts/s", round, float64(runtime.NumCPU())*1000/per(total))
	}
	r.results.note(ScenarioOrders, fmt.Sprintf("%s round %d %s by process: %s", variant, round+1, metric, strings.Join(split, ", ")))
}

// settle waits for the system to finish the previous phase's work; a
// system still busy after quietTimeout is measured anyway, with a note.
func (r *runner) settle(ctx context.Context, scenario string, sr *systemRun, phase string) error {
	quiet, err := sr.sys.waitQuiet(ctx, quietTimeout)
	if err != nil {
		return fmt.Errorf("%s system %s: %w", sr.sys.label, phase, err)
	}
	if !quiet {
		r.results.note(scenario, fmt.Sprintf("%s system still busy %s after %s: measured anyway", sr.sys.label, phase, quietTimeout))
	}
	return nil
}

func (r *runner) orderNotes(phase string, lr loadResult, errs []error) {
	if lr.late > 0 {
		r.results.note(ScenarioOrders, fmt.Sprintf("%s: %d checkouts started over 100ms after their slot (the workers could not keep up)", phase, lr.late))
	}
	for _, err := range firstErrors(errs, 2) {
		r.results.note(ScenarioOrders, fmt.Sprintf("%s: %v", phase, err))
	}
}

func firstErrors(errs []error, n int) []error { return errs[:min(n, len(errs))] }

// setupMemory makes sure both systems run and have carried the fixed-rate
// load: the orders scenario's rounds, or one phase each here. RSS is read
// per process, so neither system's figures include the other's.
func setupMemory(ctx context.Context, r *runner) error {
	if r.split != nil && r.all != nil {
		return nil
	}
	if err := setupOrders(ctx, r); err != nil {
		return err
	}
	for _, sr := range []*systemRun{r.split, r.all} {
		lr, err := r.fixedRate(ctx, ScenarioMemory, sr, nil)
		if err != nil {
			return err
		}
		if _, errs := lr.confirmedLatencies(); len(errs) > 0 {
			r.results.note(ScenarioMemory, fmt.Sprintf("%s system at %d/s: %d checkouts not confirmed, first: %v", sr.sys.label, r.cfg.OrderRate, len(errs), errs[0]))
		}
	}
	return nil
}

// roundMemory records what setupMemory sampled: memory is measured once
// per run, the load's rounds are the orders scenario's.
func roundMemory(_ context.Context, r *runner, round int) error {
	if round > 0 {
		return nil
	}
	split, all := r.split, r.all
	var largest int64
	for _, name := range slices.Sorted(maps.Keys(split.idle)) {
		if name != "gateway" {
			largest = max(largest, split.idle[name])
		}
		r.record(ScenarioMemory, name, "RSS idle", "MiB", 0, mib(split.idle[name]))
		r.record(ScenarioMemory, name, "RSS under load", "MiB", 0, mib(split.load[name]))
	}
	r.record(ScenarioMemory, "largest service", "RSS idle", "MiB", 0, mib(largest))
	r.record(ScenarioMemory, "serve all", "RSS idle", "MiB", 0, mib(all.idle["all"]))
	r.record(ScenarioMemory, "serve all", "RSS under load", "MiB", 0, mib(all.load["all"]))
	r.results.note(ScenarioMemory, fmt.Sprintf("RSS is VmRSS; idle is the peak over %s after a %s settle, under load the peak sampled every %s while checkouts run at %d/s for %s (in every orders round when orders ran too); measured once per run",
		idleWindow, settleTime, sampleInterval, r.cfg.OrderRate, r.cfg.OrderDuration))
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rssSampler keeps each process's peak RSS, sampled every sampleInterval
// from its start until stop.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak map[string]int64
	err  error
}

func newRSSSampler(sys *system) *rssSampler {
	s := &rssSampler{done: make(chan struct{}), peak: map[string]int64{}}
	sample := func() {
		for name, pid := range sys.pids() {
			b, err := procfs.RSS(pid)
			if err != nil {
				s.err = fmt.Errorf("%s: %w", name, err)
				continue
			}
			s.peak[name] = max(s.peak[name], b)
		}
	}
	sample()
	s.wg.Go(func() {
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	})
	return s
}

// stop ends the sampling and returns the peaks. A process that could not
// be read is an error: its figure would be missing.
func (s *rssSampler) stop() (map[string]int64, error) {
	close(s.done)
	s.wg.Wait()
	return s.peak, s.err
}
