package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/internal/bench"
)

func newBenchCommand(a *app) *cobra.Command {
	var cfg bench.Config
	var asJSON, quiet bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the outbox, relay and pipeline side by side against baselines in the same run",
		Long: `bench runs against the project's PostgreSQL and RabbitMQ (SHOPMESH_POSTGRES_URL,
SHOPMESH_AMQP_URL) in a database and broker objects of its own, which it removes
afterwards. Every figure is a median with its spread over rounds and a ratio
against a baseline measured in the same round (machines are noisy; absolute
numbers vary run to run):

  write     shopmesh Publish in a transaction vs a plain two-row pgx insert
  drain     the shopmesh relay vs watermill's forwarder vs a raw batched relay
  pipeline  writers + relay + inbox consumers at full speed, and latency at fixed rates
  wakeup    writer throughput with the in-process wake-up, with pg_notify, and with none

Two more scenarios run only when named with --only (together they take
several minutes); they start the whole system from this binary on fresh
databases and a fresh vhost (SHOPMESH_AMQP_MANAGEMENT_URL is also required)
and report absolute figures, as there is no external baseline for them:

  orders    a load generator registers customers and drives add-to-cart and
            checkout (tok_ok, Idempotency-Key) through the gateway of two
            systems side by side, one process per service (split) and every
            service in one process (serve all): checkout -> confirmed latency
            p50/p99 at a fixed rate (--order-rate, --order-duration), then
            confirmed checkouts/s with every worker at full speed, and the CPU
            one checkout cost in each process, PostgreSQL and RabbitMQ until
            the system is quiet again
  memory    RSS of every process of both systems at idle and under the
            fixed-rate load

  shopmesh bench --only orders,memory`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.env.admin.PostgresURL == "" || a.env.admin.AMQPURL == "" {
				return errors.New("SHOPMESH_POSTGRES_URL and SHOPMESH_AMQP_URL are required (make up, then load .run/env)")
			}
			cfg.PostgresURL, cfg.AMQPURL = a.env.admin.PostgresURL, a.env.admin.AMQPURL
			cfg.ManagementURL = a.env.admin.ManagementURL
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Binary = bin
			if err := cfg.Validate(); err != nil {
				return err
			}
			var progress io.Writer = os.Stderr
			if quiet {
				progress = io.Discard
			}
			rep, err := bench.Run(cmd.Context(), cfg, progress)
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(rep); jerr != nil {
					return jerr
				}
			} else if terr := rep.WriteTable(a.stdout); terr != nil {
				return terr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Rounds, "rounds", 0, "rounds per scenario (default 3)")
	f.IntVar(&cfg.Events, "events", 0, "events per measurement (default 10000)")
	f.StringSliceVar(&cfg.Only, "only", nil, "scenarios to run: write, drain, pipeline, wakeup (the default set), orders, memory")
	f.IntVar(&cfg.Writers, "writers", 0, "concurrent writers (default 4)")
	f.IntVar(&cfg.OrderRate, "order-rate", 0, "orders and memory: fixed checkout rate per second (default 50)")
	f.DurationVar(&cfg.OrderDuration, "order-duration", 0, "orders and memory: how long each load phase starts checkouts (default 10s)")
	f.IntVar(&cfg.OrderWorkers, "order-workers", 0, "orders and memory: load generator workers, one customer each; the closed loop needs more than throughput × latency of them to stay full (default 96)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	return cmd
}
