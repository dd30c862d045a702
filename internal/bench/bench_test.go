package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/sysrun"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// infra returns the PostgreSQL and a fresh vhost the tests run against.
// Missing infrastructure fails the test (testenv never skips): a benchmark
// that cannot run must not pass.
func infra(tb testing.TB) (postgresURL, amqpURL string) {
	tb.Helper()
	return testenv.AdminPostgresURL(tb), testenv.NewVHost(tb)
}

// TestRunSmoke runs every scenario at a tiny size and checks that the report
// is complete, non-zero and renders as a table and as JSON.
func TestRunSmoke(t *testing.T) {
	pg, mq := infra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{
		PostgresURL: pg, AMQPURL: mq, Rounds: 1, Events: 100,
		// The forwarder polls about once a second: give it several polls.
		ForwarderLimit: 5 * time.Second, LatencyRates: []int{1000}, LatencyDuration: 100 * time.Millisecond,
		PhaseTimeout: 15 * time.Second,
	}
	var progress bytes.Buffer
	rep, err := Run(ctx, cfg, &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}

	want := map[string][]string{ // scenario: variants
		ScenarioWrite:    {"pgx", "shopmesh"},
		ScenarioDrain:    {"raw", "shopmesh", "forwarder"},
		ScenarioPipeline: {"raw", "shopmesh", "raw-batch", "forwarder"},
		ScenarioWakeup:   {"none", "in-process", "pg_notify"},
	}
	if got := len(rep.Scenarios); got != len(want) {
		t.Fatalf("got %d scenarios, want %d", got, len(want))
	}
	cpuFigures := 0
	for _, sc := range rep.Scenarios {
		variants := map[string]bool{}
		for _, f := range sc.Figures {
			variants[f.Variant] = true
			if strings.HasPrefix(f.Metric, "CPU per event: ") {
				cpuFigures++
			}
			if f.Unit == "batches" || f.Unit == "us" {
				// A relay that polls may publish nothing while a tiny
				// workload is written; a server's CPU is counted in clock
				// ticks, which a hundred events may not fill.
				if len(f.Value.Rounds) != 1 || f.Value.Median < 0 {
					t.Errorf("%s/%s %s: value %+v, want one round, not negative", sc.Name, f.Variant, f.Metric, f.Value)
				}
				continue
			}
			if len(f.Value.Rounds) != 1 || !(f.Value.Median > 0) || math.IsInf(f.Value.Median, 0) {
				t.Errorf("%s/%s %s: value %+v, want one positive round", sc.Name, f.Variant, f.Metric, f.Value)
			}
			if f.Variant != sc.Baseline && !(f.Ratio.Median > 0) {
				t.Errorf("%s/%s %s: ratio %+v, want positive", sc.Name, f.Variant, f.Metric, f.Ratio)
			}
		}
		for _, v := range want[sc.Name] {
			if !variants[v] {
				t.Errorf("scenario %s has no figures for variant %s", sc.Name, v)
			}
		}
	}
	// CPU per event, PostgreSQL's and this process's for each variant of the
	// wake-up and pipeline scenarios (RabbitMQ's needs the management API,
	// not given here).
	if want := (3 + 4) * 2; cpuFigures != want {
		t.Errorf("got %d CPU per event figures, want %d", cpuFigures, want)
	}
	// Latency figures: three percentiles per variant and rate.
	var latency int
	for _, sc := range rep.Scenarios {
		for _, f := range sc.Figures {
			if f.Unit == "ms" {
				latency++
			}
		}
	}
	if want := 4 * (1 + 1) * 3; latency != want { // variants x (rates and the busy-neighbour run) x percentiles
		t.Errorf("got %d latency figures, want %d", latency, want)
	}
	if got := len(rep.Targets); got != 6 {
		t.Errorf("got %d targets, want 6: %+v", got, rep.Targets)
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	if st := rep.Environment.StealPercent; st == nil || *st < 0 || *st > 100 {
		t.Errorf("steal over the run = %v, want a share from 0 to 100%% on Linux", st)
	}
	for _, s := range []string{"events/s", "forwarder", "p99 at 1000/s", "Targets", "(steal) over the run"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("marshal report: %v", err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal report: %v", err)
	}
	if len(back.Scenarios) != len(rep.Scenarios) || back.Environment.PostgreSQL == "" {
		t.Errorf("JSON round trip lost data: %s", b)
	}
	t.Logf("\n%s", table.String())
}

// The benchmarks compare one write transaction (order row + outbox row)
// through Outbox.Publish with the same rows inserted with plain pgx, from
// four concurrent writers. Run them with
//
//	go test ./internal/bench -run '^$' -bench Write
//
// Each reports events/s; compare the two in the same run.

func BenchmarkWriteOutboxPublish(b *testing.B) {
	benchmarkWrite(b, func(e *env, p producer, pools writerPools) writeFunc {
		return shopmeshWriter(pools.writers, p.ob, p.eventType, wakeInProcess)
	})
}

func BenchmarkWritePlainInsert(b *testing.B) {
	benchmarkWrite(b, func(e *env, p producer, pools writerPools) writeFunc {
		return rawWriter(pools.writers, p.service, p.eventType, nil)
	})
}

func benchmarkWrite(b *testing.B, writer func(*env, producer, writerPools) writeFunc) {
	const writers = 4
	pg, mq := infra(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := newEnv(ctx, pg, mq)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := e.close(); err != nil {
			b.Error(err)
		}
	}()
	r := &runner{env: e}
	p, err := r.newProducer("gobench")
	if err != nil {
		b.Fatal(err)
	}
	pool, err := e.pool(ctx, writers+1, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	write := writer(e, p, writerPools{writers: pool})

	// b.Loop hands out sequence numbers; the writers apply them.
	seqs := make(chan int)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for seq := range seqs {
				if err := write(ctx, seq); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	seq := 0
	for b.Loop() {
		seq++
		select {
		case seqs <- seq:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	close(seqs)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestSystemScenarios runs orders and memory at a tiny size against the
// real binary: two systems (one process per service, and serve all) side
// by side, with a few checkouts each.
func TestSystemScenarios(t *testing.T) {
	pg, mq := infra(t)
	mgmt := managementURL(t)
	// A machine starved of CPU by its host (steal over 50%) took over four
	// minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := sysrun.BuildBinary(ctx, root, t.TempDir())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	// Three seconds of checkouts: a phase's CPU is what it used beyond the
	// idle rate over the whole phase, which lasts until the last delivery
	// (some 15 s); a second's worth of checkouts was within what the idle
	// rate varies by over that time when the rest of the suite loads the
	// machine, and the figure came out 0.
	cfg := Config{
		PostgresURL: pg, AMQPURL: mq, ManagementURL: mgmt, Binary: bin, Rounds: 1,
		Only: []string{ScenarioOrders, ScenarioMemory}, OrderRate: 5, OrderDuration: 3 * time.Second, OrderWorkers: 4,
	}
	var progress bytes.Buffer
	rep, err := Run(ctx, cfg, &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if got := len(rep.Scenarios); got != 2 {
		t.Fatalf("got %d scenarios, want 2", got)
	}
	figures := map[string]float64{}
	for _, sc := range rep.Scenarios {
		for _, f := range sc.Figures {
			figures[sc.Name+"/"+f.Variant+"/"+f.Metric] = f.Value.Median
		}
	}
	for _, k := range []string{
		"orders/split/confirmed at 5/s", "orders/split/p50 at 5/s", "orders/split/p99 at 5/s", "orders/split/throughput",
		"orders/split/order reads per checkout at 5/s", "orders/split/order reads per checkout at full speed",
		"orders/split/CPU per checkout: services", "orders/split/CPU per checkout: total", "orders/split/CPU-bound capacity",
		"orders/split/CPU per checkout at 5/s: services", "orders/split/CPU per checkout at 5/s: total",
		"orders/serve all/CPU per checkout at 5/s: total",
		"orders/serve all/confirmed at 5/s", "orders/serve all/p99 at 5/s", "orders/serve all/throughput",
		"orders/serve all/CPU per checkout: services", "orders/serve all/CPU per checkout: total",
		"orders/split/PostgreSQL round trips per checkout", "orders/split/PostgreSQL round trips per checkout at 5/s",
		"orders/serve all/PostgreSQL round trips per checkout", "orders/serve all/PostgreSQL round trips per checkout at 5/s",
		"orders/split/events published per checkout", "orders/split/messages applied per checkout at 5/s",
		"orders/serve all/events published per checkout at 5/s", "orders/serve all/messages applied per checkout",
		"memory/gateway/RSS idle", "memory/order/RSS under load", "memory/largest service/RSS idle",
		"memory/serve all/RSS idle", "memory/serve all/RSS under load",
	} {
		if v, ok := figures[k]; !ok || !(v > 0) {
			t.Errorf("figure %s = %v (present %v), want positive", k, v, ok)
		}
	}
	// The host's steal is a share, and may be nothing on a machine of its own.
	for _, k := range []string{
		"orders/split/CPU taken by the host (steal)", "orders/split/CPU taken by the host (steal) at 5/s",
		"orders/serve all/CPU taken by the host (steal)", "orders/serve all/CPU taken by the host (steal) at 5/s",
	} {
		if v, ok := figures[k]; !ok || v < 0 || v > 100 {
			t.Errorf("figure %s = %v (present %v), want 0 to 100", k, v, ok)
		}
	}
	// Each saga step is a part of checkout → confirmed.
	for _, v := range []string{variantSplit, variantAll} {
		whole := figures["orders/"+v+"/p99 at 5/s"]
		for _, step := range stepNames {
			k := "orders/" + v + "/p50 " + step + " at 5/s"
			if got, ok := figures[k]; !ok || !(got > 0) || got > whole {
				t.Errorf("figure %s = %v (present %v), want positive and at most the whole's p99 %v", k, got, ok, whole)
			}
		}
	}
	// Serve all's figures come with their ratio to split's.
	for _, sc := range rep.Scenarios {
		for _, f := range sc.Figures {
			if sc.Name == ScenarioOrders && f.Variant == variantAll && f.Metric == "CPU per checkout: total" && !(f.Ratio.Median > 0) {
				t.Errorf("serve all CPU per checkout: ratio %+v, want positive", f.Ratio)
			}
		}
	}
	// At 5/s the p99 targets do not apply; throughput (per system) and memory do.
	if got := len(rep.Targets); got != 4 {
		t.Errorf("got %d targets, want 4: %+v", got, rep.Targets)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	t.Logf("\n%s", table.String())
}

// managementURL is the RabbitMQ management API from the environment or
// the platform's .run/env; without one the test fails.
func managementURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("SHOPMESH_AMQP_MANAGEMENT_URL"); u != "" {
		return u
	}
	b, err := os.ReadFile(filepath.Join("..", "..", ".run", "env"))
	if err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
			if v, ok := strings.CutPrefix(line, "SHOPMESH_AMQP_MANAGEMENT_URL="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	t.Fatal("no RabbitMQ management API configured (SHOPMESH_AMQP_MANAGEMENT_URL or .run/env): start the platform with deploy/local/platform.sh up")
	return ""
}
