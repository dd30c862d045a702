package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/internal/chaos"
)

// errChaosFailed makes the command exit non-zero after the report was printed.
var errChaosFailed = errors.New("chaos: an invariant failed (see the report)")

// newChaosCommand runs the chaos scenarios against the whole system, each
// service and the gateway as separate processes of this binary.
func newChaosCommand(a *app) *cobra.Command {
	var (
		scenario string
		seed     int64
		orders   int
		short    bool
		asJSON   bool
		systems  int
		keepLogs bool
		verbose  bool
	)
	cmd := &cobra.Command{
		Use:   "chaos [--scenario NAME|all|mixed] [--seed N] [--orders N] [--short] [--json]",
		Short: "Inject faults into a running system and check that nothing was lost or applied twice",
		Long: `chaos starts the whole system from this binary, one process per service plus the
gateway, on fresh databases and a fresh virtual host of the platform (scenarios
that restart RabbitMQ or PostgreSQL get private servers; the shared platform is
never stopped), with toxiproxy between every service and its database and broker.
For each scenario it drives a seeded workload through the gateway covering every
saga path, injects the scenario's faults, heals, waits until everything drained,
and checks a ledger across every service's database. It stops everything it
started, also when interrupted, and exits non-zero when an invariant failed.

Scenarios:
` + scenarioList() + `
Needs SHOPMESH_POSTGRES_URL, SHOPMESH_AMQP_URL and SHOPMESH_AMQP_MANAGEMENT_URL
(load .run/env after ` + "`make up`" + `).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("locate the shopmesh binary: %w", err)
			}
			var services []string
			for name := range targets() {
				if name != "gateway" {
					services = append(services, name)
				}
			}
			sort.Strings(services)
			if seed == 0 {
				seed = time.Now().UnixNano() % 1_000_000
			}
			cfg := chaos.Config{
				Binary:        bin,
				Scenarios:     []string{scenario},
				Seed:          seed,
				Orders:        orders,
				Short:         short,
				Services:      services,
				PostgresURL:   a.env.admin.PostgresURL,
				AMQPURL:       a.env.admin.AMQPURL,
				ManagementURL: a.env.admin.ManagementURL,
				Systems:       systems,
				KeepLogs:      keepLogs,
			}
			if verbose {
				cfg.Logger = a.logger
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "chaos: seed %d (rerun with --seed %d)\n", seed, seed)
			report, runErr := chaos.Run(cmd.Context(), cfg)
			if report == nil {
				return runErr
			}
			if asJSON {
				if err := report.WriteJSON(a.stdout); err != nil {
					return err
				}
			} else {
				if err := report.WriteTable(a.stdout); err != nil {
					return err
				}
				if verbose {
					fmt.Fprintln(a.stdout)
					report.WriteFaults(a.stdout)
				}
				fmt.Fprintf(a.stdout, "\n%d scenarios in %s\n", len(report.Runs), report.Duration.Round(time.Second))
			}
			if runErr != nil {
				return runErr
			}
			if !report.Passed() {
				return errChaosFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "all", "scenario to run: a name, a comma-separated list, all, or mixed")
	f.Int64Var(&seed, "seed", 0, "seed of the workload and the fault schedule (default: random, printed)")
	f.IntVar(&orders, "orders", 0, "orders per scenario (default 40, or 10 with --short)")
	f.BoolVar(&short, "short", false, "few orders and short faults (as CI runs it)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.IntVar(&systems, "systems", 3, "systems to run at once (each runs its scenarios in turn)")
	f.BoolVar(&keepLogs, "keep-logs", false, "keep the processes' logs even when every invariant held")
	f.BoolVarP(&verbose, "verbose", "v", false, "log progress and list every fault injected")
	return cmd
}

func scenarioList() string {
	var b strings.Builder
	for _, n := range chaos.Scenarios() {
		fmt.Fprintf(&b, "  %-28s %s\n", n, chaos.Describe(n))
	}
	return b.String()
}
