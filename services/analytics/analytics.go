// Package analytics runs the analytics service: a read model of every event
// the shop publishes (every type the contracts registry lists analytics as
// a consumer of, which is all of them but the order saga's private timer),
// aggregated into daily sales (orders confirmed, revenue, refunds, net),
// order outcomes by cancellation reason, the shopping funnel (carts
// touched, checkouts, placements, confirmations, deliveries), stock
// movements, top products and a per-type event count, and served to
// administrators as reports. It owns the analytics database and nothing
// else; it publishes no events.
//
// Each event is counted exactly once: the inbox claims its id in the same
// transaction that updates the aggregates. Aggregates are sums and sets
// keyed by the UTC day of the event's occurred_at, and product names are
// the latest by (occurred_at, event id), so the result does not depend on
// the order events are applied in.
//
// # Rebuilding the read model
//
// Because of that, the model can be rebuilt from history:
//
//  1. ResetReadModel empties every aggregate and forgets the inbox
//     consumer's keys (outbox.ForgetInbox) in one transaction.
//  2. `shopmesh replay --consumer analytics --since <T>` re-delivers the
//     retained history of every producer to shopmesh.analytics.inbox only;
//     each event is applied once.
//
// Only retained history can be replayed (producers' outbox retention, 7
// days by default): a full rebuild needs the producers to retain the whole
// history. The component test TestAggregatesRebuildFromReplay checks that
// a rebuild gives identical aggregates.
//
// API (role admin): GET /api/v1/admin/reports/sales and
// GET /api/v1/admin/reports/funnel, both with optional from and to dates.
package analytics

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/analytics/internal/app"
	"github.com/shopmesh/shopmesh/services/analytics/internal/postgres"
	"github.com/shopmesh/shopmesh/services/analytics/internal/transport"
)

// Name is the service's name: event source, queue prefix, database owner.
const Name = "analytics"

// Consumer is the name of the service's one consumer (queue
// shopmesh.analytics.inbox).
const Consumer = "inbox"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Config configures the analytics service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// TopProducts is how many products the sales report ranks. Default 10,
	// at most 100.
	TopProducts int
	// StockProducts is how many products the sales report's stock section
	// lists, the most committed first. Default 50, at most 1000.
	StockProducts int
	// Consumer adjusts the inbox consumer's defaults (workers, retries).
	// The defaults are servicekit.LingeringBatches: nearly every message
	// increments a counter row shared with others of its day and type, and
	// reports may trail the events by a tenth of a second.
	Consumer func(*outbox.ConsumerConfig)
}

func (c Config) withDefaults() Config {
	c.Kit.Name = Name
	c.Kit.Migrations = Migrations
	if c.TopProducts == 0 {
		c.TopProducts = 10
	}
	if c.StockProducts == 0 {
		c.StockProducts = 50
	}
	return c
}

func (c Config) app() app.Config {
	return app.Config{TopProducts: c.TopProducts, StockProducts: c.StockProducts}
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	c = c.withDefaults()
	if err := c.app().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("analytics: %w", err))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	logger = cfg.Kit.ServiceLogger(logger)
	logger.Info("starting", "http", cfg.Kit.HTTPAddr, "top_products", cfg.TopProducts, "stock_products", cfg.StockProducts)

	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.NewStore(node.Pool)
		svc, err := app.NewService(store, cfg.app(), func() time.Time { return time.Now().UTC() })
		if err != nil {
			return nil, nil, err
		}
		err = node.Inbox(Consumer, servicekit.Then(servicekit.LingeringBatches, cfg.Consumer), func(inbox *outbox.Consumer) error {
			return transport.Register(inbox, Name, svc, store.InTx)
		})
		if err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), logger), nil, nil
	})
}

// ResetReadModel empties every aggregate and forgets every message the inbox
// consumer applied, in one transaction, so that replaying history (`shopmesh
// replay --consumer analytics --since ...`) rebuilds the model. It returns
// how many inbox keys it forgot. pool is the analytics database; the
// service may keep running.
func ResetReadModel(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	forgotten, err := servicekit.ResetReadModel(ctx, pool, Consumer, postgres.Reset)
	if err != nil {
		return 0, fmt.Errorf("reset analytics read model: %w", err)
	}
	return forgotten, nil
}
