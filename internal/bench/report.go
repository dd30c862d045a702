package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run. Every figure is a spread over rounds and,
// because absolute figures on a shared machine vary by ±30% from run to run,
// also a ratio against the scenario's baseline measured in the same round.
type Report struct {
	StartedAt   time.Time   `json:"started_at"`
	Seconds     float64     `json:"duration_seconds"`
	Environment Environment `json:"environment"`
	Settings    Settings    `json:"settings"`
	Scenarios   []Scenario  `json:"scenarios"`
	// Targets are the project's performance goals this run can judge, from the medians.
	Targets []Target `json:"targets"`
}

// Environment is where the figures come from.
type Environment struct {
	Go                string `json:"go"`
	OS                string `json:"os"`
	CPUs              int    `json:"cpus"`
	GOMAXPROCS        int    `json:"gomaxprocs"`
	PostgreSQL        string `json:"postgresql"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	RabbitMQ          string `json:"rabbitmq"`
	// LoadStart and LoadEnd are the 1, 5 and 15 minute load averages when
	// the run started and ended (Linux only): other work on the machine is
	// the first suspect of a noisy run.
	LoadStart string `json:"load_start,omitempty"`
	LoadEnd   string `json:"load_end,omitempty"`
	// StealPercent is the share of the machine's CPU time its hypervisor
	// ran something else while the run's CPUs wanted to run (Linux only;
	// nil where /proc/stat cannot be read): on an oversubscribed host
	// every process gets that much less, whatever else runs here.
	StealPercent *float64 `json:"steal_percent,omitempty"`
}

// Settings are the effective sizes of the run (Config after defaults, without
// connection strings).
type Settings struct {
	Rounds           int      `json:"rounds"`
	Events           int      `json:"events"`
	Writers          int      `json:"writers"`
	BatchSize        int      `json:"batch_size"`
	ForwarderSeconds float64  `json:"forwarder_limit_seconds"`
	LatencyRates     []int    `json:"latency_rates"`
	LatencySeconds   float64  `json:"latency_seconds"`
	Scenarios        []string `json:"scenarios"`
	OrderRate        int      `json:"order_rate"`
	OrderSeconds     float64  `json:"order_seconds"`
	OrderWorkers     int      `json:"order_workers"`
}

// Scenario is one comparison: variants measured side by side in every round.
type Scenario struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Baseline is the variant every ratio of this scenario is against.
	Baseline string   `json:"baseline"`
	Figures  []Figure `json:"figures"`
	Notes    []string `json:"notes,omitempty"`
}

// Figure is one measured quantity of one variant.
type Figure struct {
	Variant string `json:"variant"`
	// Metric is "throughput", or a latency percentile at a fixed rate
	// ("p99 at 1000/s").
	Metric string `json:"metric"`
	Unit   string `json:"unit"`
	Value  Spread `json:"value"`
	// Ratio is Value over the baseline's figure of the same metric, taken
	// round by round. For throughput higher is better, for latency lower.
	Ratio Spread `json:"ratio"`
}

// Spread summarises one figure over the rounds.
type Spread struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Rounds []float64 `json:"rounds"`
}

// Target is one of the project's performance goals, judged on the medians of this run.
type Target struct {
	Name string `json:"name"`
	// Want is the bound, e.g. ">= 0.90" (a ratio) or "<= 5" (ms).
	Want string `json:"want"`
	// Unit is "ratio", "ms", "checkouts/s" or "MiB".
	Unit string `json:"unit"`
	Got  Spread `json:"got"`
	Met  bool   `json:"met"`
}

// WriteTable prints the report as aligned text tables.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	e, s := r.Environment, r.Settings
	p("shopmesh bench: %d rounds, %d events, %d writers, relay batch %d, %.1fs\n", s.Rounds, s.Events, s.Writers, s.BatchSize, r.Seconds)
	p("%s %s, %d CPUs (GOMAXPROCS %d); PostgreSQL %s (fsync %s, synchronous_commit %s); RabbitMQ %s\n",
		e.Go, e.OS, e.CPUs, e.GOMAXPROCS, e.PostgreSQL, e.Fsync, e.SynchronousCommit, e.RabbitMQ)
	if e.LoadStart != "" {
		p("Load average at start %s, at end %s\n", e.LoadStart, e.LoadEnd)
	}
	if e.StealPercent != nil {
		p("CPU time taken by the host (steal) over the run: %.1f%%\n", *e.StealPercent)
	}
	p("Figures: median and min-max over rounds; ratio = variant / baseline of the same round.\n")
	for i, sc := range r.Scenarios {
		p("\n%d. %s (%s), baseline %s\n", i+1, sc.Title, sc.Name, sc.Baseline)
		p("  variant\tmetric\tmedian\tmin-max\tratio\tratio min-max\n")
		for _, f := range sc.Figures {
			ratio, ratioSpread := "", ""
			if f.Variant == sc.Baseline {
				ratio = "1.00"
			} else if len(f.Ratio.Rounds) > 0 {
				ratio = fmt.Sprintf("%.2f", f.Ratio.Median)
				ratioSpread = fmt.Sprintf("%.2f-%.2f", f.Ratio.Min, f.Ratio.Max)
			}
			n := num
			if f.Unit == "batches" {
				n = func(v float64) string { return fmt.Sprintf("%.0f", v) }
			}
			p("  %s\t%s\t%s %s\t%s-%s\t%s\t%s\n", f.Variant, f.Metric, n(f.Value.Median), f.Unit,
				n(f.Value.Min), n(f.Value.Max), ratio, ratioSpread)
		}
		for _, n := range sc.Notes {
			p("  note: %s\n", n)
		}
	}
	if len(r.Targets) > 0 {
		p("\nTargets, judged on the median\n")
		p("  target\twant\tgot\tmin-max\tmet\n")
		for _, t := range r.Targets {
			met := "MISSED"
			if t.Met {
				met = "yes"
			}
			p("  %s\t%s %s\t%s\t%s-%s\t%s\n", t.Name, t.Want, t.Unit, num(t.Got.Median), num(t.Got.Min), num(t.Got.Max), met)
		}
	}
	return tw.Flush()
}

// num prints a figure with the precision it deserves.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// results collects one value per (scenario, variant, metric) and round, in
// the order first recorded.
type results struct {
	rounds int
	keys   []resultKey
	values map[resultKey][]float64
	units  map[resultKey]string
	notes  map[string][]string
}

type resultKey struct{ scenario, variant, metric string }

func newResults(rounds int) *results {
	return &results{rounds: rounds, values: map[resultKey][]float64{}, units: map[resultKey]string{}, notes: map[string][]string{}}
}

func (r *results) add(scenario, variant, metric, unit string, round int, v float64) {
	k := resultKey{scenario, variant, metric}
	vs, ok := r.values[k]
	if !ok {
		vs = make([]float64, r.rounds)
		for i := range vs {
			vs[i] = math.NaN()
		}
		r.keys = append(r.keys, k)
		r.units[k] = unit
		r.values[k] = vs
	}
	vs[round] = v
}

// note adds a remark to a scenario once.
func (r *results) note(scenario, text string) {
	if !slices.Contains(r.notes[scenario], text) {
		r.notes[scenario] = append(r.notes[scenario], text)
	}
}

// ratios divides a's rounds by b's, round by round (rounds missing from
// either are left out).
func (r *results) ratios(a, b resultKey) []float64 {
	va, vb := r.values[a], r.values[b]
	var out []float64
	for i := range va {
		if i < len(vb) && !math.IsNaN(va[i]) && !math.IsNaN(vb[i]) && vb[i] != 0 {
			out = append(out, va[i]/vb[i])
		}
	}
	return out
}

func (r *results) scenario(info scenarioInfo) Scenario {
	sc := Scenario{Name: info.name, Title: info.title, Baseline: info.baseline, Notes: r.notes[info.name]}
	for _, k := range r.keys {
		if k.scenario != info.name {
			continue
		}
		f := Figure{Variant: k.variant, Metric: k.metric, Unit: r.units[k], Value: spread(r.values[k]),
			Ratio: spread(r.ratios(k, resultKey{k.scenario, info.baseline, k.metric}))}
		sc.Figures = append(sc.Figures, f)
	}
	// Baseline first, then the other variants; metrics in recorded order.
	slices.SortStableFunc(sc.Figures, func(a, b Figure) int {
		if (a.Variant == info.baseline) != (b.Variant == info.baseline) {
			if a.Variant == info.baseline {
				return -1
			}
			return 1
		}
		return 0
	})
	return sc
}

// spread summarises the values present (NaN marks a round not measured).
func spread(vs []float64) Spread {
	var s Spread
	for _, v := range vs {
		if !math.IsNaN(v) {
			s.Rounds = append(s.Rounds, round3(v))
		}
	}
	if len(s.Rounds) == 0 {
		return s
	}
	sorted := slices.Sorted(slices.Values(s.Rounds))
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	if n := len(sorted); n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = round3((sorted[n/2-1] + sorted[n/2]) / 2)
	}
	return s
}

// round3 keeps three decimals: enough for ratios and milliseconds, and it
// keeps the JSON readable.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// percentile returns the p-th percentile (0 < p <= 100) of ds, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// targets judges the performance goals on what this run measured.
func (r *results) targets() []Target {
	var ts []Target
	ratio := func(name, want, unit string, a, b resultKey, ok func(float64) bool) {
		if vs := r.ratios(a, b); len(vs) > 0 {
			s := spread(vs)
			ts = append(ts, Target{Name: name, Want: want, Unit: unit, Got: s, Met: ok(s.Median)})
		}
	}
	value := func(name, want, unit string, k resultKey, ok func(float64) bool) {
		if vs, found := r.values[k]; found {
			s := spread(vs)
			ts = append(ts, Target{Name: name, Want: want, Unit: unit, Got: s, Met: ok(s.Median)})
		}
	}
	atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	atMost := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
	tp := "throughput"
	ratio("pipeline throughput vs raw pipeline", ">= 0.90", "ratio", resultKey{"pipeline", "shopmesh", tp}, resultKey{"pipeline", "raw", tp}, atLeast(0.9))
	ratio("pipeline throughput vs forwarder pipeline", ">= 5", "ratio", resultKey{"pipeline", "shopmesh", tp}, resultKey{"pipeline", "forwarder", tp}, atLeast(5))
	value("latency p50 at 1000/s", "<= 5", "ms", resultKey{"pipeline", "shopmesh", "p50 at 1000/s"}, atMost(5))
	value("latency p99 at 1000/s", "<= 20", "ms", resultKey{"pipeline", "shopmesh", "p99 at 1000/s"}, atMost(20))
	ratio("writers with in-process wake-up vs none", ">= 0.90", "ratio", resultKey{"wakeup", "in-process", tp}, resultKey{"wakeup", "none", tp}, atLeast(0.9))
	ratio("relay drain vs raw relay", ">= 0.60", "ratio", resultKey{"drain", "shopmesh", tp}, resultKey{"drain", "raw", tp}, atLeast(0.6))
	// The orders and memory targets are absolute: there is no baseline.
	for _, v := range []string{variantSplit, variantAll} {
		value("orders sustained to confirmed, "+v, ">= 100", "checkouts/s", resultKey{ScenarioOrders, v, tp}, atLeast(100))
		value("orders checkout → confirmed p99 at 50/s, "+v, "<= 300", "ms", resultKey{ScenarioOrders, v, "p99 at 50/s"}, atMost(300))
	}
	value("largest service RSS idle", "<= 40", "MiB", resultKey{ScenarioMemory, "largest service", "RSS idle"}, atMost(40))
	value("serve all RSS under load", "<= 250", "MiB", resultKey{ScenarioMemory, "serve all", "RSS under load"}, atMost(250))
	return ts
}
