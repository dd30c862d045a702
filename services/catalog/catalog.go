// Package catalog runs the catalog service: it owns products and their
// prices, and nothing else.
//
// Customers browse and search the catalogue; administrators create products
// and change their descriptions and prices:
//
//	GET   /api/v1/products?q=&limit=&offset=  (public) -> {items, limit, offset, total, next_offset}
//	GET   /api/v1/products/{id}               (public) -> {id, sku, name, description, price, available}
//	POST  /api/v1/admin/products              {sku, name, description, price, initial_stock} -> 201
//	PATCH /api/v1/admin/products/{id}         {name?, description?, price?}
//
// Creating a product publishes catalog.product_created.v1 (inventory creates
// its stock from initial_stock); changing its name or description publishes
// catalog.product_updated.v1 and changing its price catalog.price_changed.v1
// (carts reprice their lines). A product's availability follows
// inventory.stock_level_changed.v1, inventory's report of its levels after
// every change.
package catalog

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/app"
	"github.com/shopmesh/shopmesh/services/catalog/internal/postgres"
	"github.com/shopmesh/shopmesh/services/catalog/internal/transport"
	"github.com/shopmesh/shopmesh/services/catalog/migrations"
)

// Name is the service's name: its event source, queue prefix and database.
const Name = "catalog"

// Migrations are the service's goose SQL migrations, at the root of the FS.
var Migrations fs.FS = migrations.FS

// Config configures the catalog service.
type Config struct {
	// Kit holds the database, broker, HTTP address and metrics. Kit.Name
	// defaults to "catalog" (any other name is an error), Kit.Migrations to
	// Migrations.
	Kit servicekit.Config
}

func (c Config) withDefaults() Config {
	if c.Kit.Name == "" {
		c.Kit.Name = Name
	}
	if c.Kit.Migrations == nil {
		c.Kit.Migrations = Migrations
	}
	return c
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger = cfg.Kit.ServiceLogger(logger)
	logger.Info("starting", "http", cfg.Kit.HTTPAddr)

	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.New(node.Pool, node.Outbox)
		inTx := func(tx pgx.Tx) *app.Service { return app.New(store.InTx(tx)) }
		// The product listing's stock levels may trail inventory by a
		// tenth of a second: its updates share transactions.
		err := node.Inbox("inbox", servicekit.LingeringBatches, func(c *outbox.Consumer) error { return transport.RegisterEventHandlers(c, inTx) })
		if err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(app.New(store)), logger), nil, nil
	})
}
