package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// serveOptions are shared by the targets run in one process.
type serveOptions struct {
	// migrate provisions and migrates before serving (development: `serve all`).
	migrate bool
	// pprof, when set, is the loopback address of the runtime profiles.
	pprof string
}

func newServeCommand(a *app) *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve TARGET...",
		Short: "Run services (by name), or all of them with the gateway",
		Long: `serve runs the named targets in this process until SIGINT or SIGTERM, then stops
them all cleanly. "all" runs every service and the gateway (small installs and
development); in production run one target per process.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := expandTargets(args)
			if err != nil {
				return err
			}
			if opts.migrate {
				if err := a.migrate(cmd.Context(), serviceNames, true); err != nil {
					return err
				}
			}
			all := targets()
			g, ctx := errgroup.WithContext(cmd.Context())
			if opts.pprof != "" {
				g.Go(func() error { return servePprof(ctx, opts.pprof, a.logger) })
			}
			for _, n := range names {
				t := all[n]
				g.Go(func() error {
					if err := t.run(ctx, a, opts); err != nil && !errors.Is(err, context.Canceled) {
						return fmt.Errorf("%s: %w", n, err)
					}
					return nil
				})
			}
			err = g.Wait()
			if cmd.Context().Err() != nil && err == nil {
				a.logger.Info("stopped")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&opts.migrate, "migrate", false, "provision and migrate every service first")
	cmd.Flags().StringVar(&opts.pprof, "pprof", a.env.getenv("SHOPMESH_PPROF_ADDR"),
		"serve Go runtime profiles on this loopback address (port 0: any free port, logged) (env SHOPMESH_PPROF_ADDR)")
	return cmd
}

func expandTargets(args []string) ([]string, error) {
	all := targets()
	available := make([]string, 0, len(all))
	for n := range all {
		available = append(available, n)
	}
	sort.Strings(available)
	var out []string
	for _, a := range args {
		if a == "all" {
			return available, nil
		}
		if _, ok := all[a]; !ok {
			return nil, fmt.Errorf("unknown target %q (available: all, %s)", a, strings.Join(available, ", "))
		}
		out = append(out, a)
	}
	return out, nil
}
