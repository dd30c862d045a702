// Package chaos runs every chaos scenario in its short form against the
// real binary: the system as separate processes behind toxiproxy, a seeded
// workload, the scenario's faults, heal, drain and the ledger check (see
// internal/chaos). It needs the local platform (`make up`) and fails, never
// skips, without it.
//
// SHOPMESH_CHAOS_SEED fixes another seed, SHOPMESH_CHAOS_SCENARIOS (comma
// separated) runs only some scenarios, SHOPMESH_CHAOS_SYSTEMS sets how many
// systems run at once (default 3), SHOPMESH_CHAOS_BINARY uses a prebuilt
// binary instead of building ./cmd/shopmesh.
package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/chaos"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// defaultSeed keeps CI reproducible; a failure prints the seed it ran with.
const defaultSeed = 20240605

func TestChaosShort(t *testing.T) {
	began := time.Now()
	cfg := chaos.Config{
		Short:         true,
		Seed:          envInt(t, "SHOPMESH_CHAOS_SEED", defaultSeed),
		Systems:       int(envInt(t, "SHOPMESH_CHAOS_SYSTEMS", 3)),
		PostgresURL:   testenv.AdminPostgresURL(t),
		AMQPURL:       testenv.AdminAMQPURL(t),
		ManagementURL: testenv.ManagementURL(t),
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if s := os.Getenv("SHOPMESH_CHAOS_SCENARIOS"); s != "" {
		cfg.Scenarios = strings.Split(s, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	bin := os.Getenv("SHOPMESH_CHAOS_BINARY")
	if bin == "" {
		var err error
		if bin, err = chaos.BuildBinary(ctx, repoRoot(t), t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Binary = bin
	t.Logf("built in %s; seed %d", time.Since(began).Round(time.Millisecond), cfg.Seed)

	report, err := chaos.Run(ctx, cfg)
	if report == nil {
		t.Fatalf("chaos run: %v", err)
	}
	var table, faults strings.Builder
	_ = report.WriteTable(&table)
	report.WriteFaults(&faults)
	t.Logf("seed %d, %d scenarios in %s:\n%s\n%s", cfg.Seed, len(report.Runs), report.Duration.Round(time.Second), table.String(), faults.String())
	if err != nil {
		t.Fatalf("chaos run: %v", err)
	}
	if len(report.Runs) == 0 {
		t.Fatal("no scenario ran")
	}
	for _, r := range report.Runs {
		if !r.Passed() {
			// The violations again, next to the failure, so that a CI log
			// cut to its end still says what went wrong.
			var why strings.Builder
			for _, v := range r.Violations {
				fmt.Fprintf(&why, "\n  %s: %s order %s (%s): %s", v.Kind, v.Service, v.Order, v.Path, v.Detail)
			}
			t.Errorf("scenario %s failed (seed %d): error %q, %d violations, %d crashes; rerun with SHOPMESH_CHAOS_SCENARIOS=%s SHOPMESH_CHAOS_SEED=%d%s",
				r.Scenario, cfg.Seed, r.Error, len(r.Violations), len(r.Crashes), r.Scenario, cfg.Seed, why.String())
		}
	}
}

func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// testWriter sends the harness's progress log to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
