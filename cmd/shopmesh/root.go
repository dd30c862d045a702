package main

import (
	"context"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/internal/pgmigrate"
)

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "shopmesh",
		Short:         "shopmesh: an event-driven e-commerce backend",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServeCommand(a),
		newMigrateCommand(a),
		newStatusCommand(a),
		newDLQCommand(a),
		newReplayCommand(a),
		newUserCommand(a),
		newContractsCommand(a),
		newDemoCommand(a),
		newChaosCommand(a),
		newBenchCommand(a),
	)
	return root
}

// target is a runnable service compiled into the binary.
type target struct {
	// migrations are the service's own SQL migrations.
	migrations fs.FS
	// run starts the service with its configuration from env.
	run func(ctx context.Context, a *app, opts serveOptions) error
}

// targets returns the services this binary can run, by name.
func targets() map[string]target {
	return map[string]target{
		"gateway":      gatewayTarget(),
		"catalog":      catalogTarget(),
		"inventory":    inventoryTarget(),
		"cart":         cartTarget(),
		"user":         userTarget(),
		"order":        orderTarget(),
		"payment":      paymentTarget(),
		"shipping":     shippingTarget(),
		"invoice":      invoiceTarget(),
		"notification": notificationTarget(),
		"customer":     customerTarget(),
		"loyalty":      loyaltyTarget(),
		"analytics":    analyticsTarget(),
	}
}

func migrateService(ctx context.Context, pool *pgxpool.Pool, name string, fsys fs.FS, logger *slog.Logger) error {
	return pgmigrate.Up(ctx, pool, fsys, name+"_schema_version", logger)
}
