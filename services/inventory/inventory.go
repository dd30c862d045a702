// Package inventory runs the inventory service: it owns every product's stock
// and every order's stock reservation, and nothing else.
//
// It creates stock from catalog.product_created.v1, reserves a placed
// order's lines all or nothing (order.placed.v2, or a retained v1 read as
// v2 -> inventory.stock_reserved.v1 or inventory.stock_reservation_failed.v1,
// one reservation per order),
// commits the reservation when the order is confirmed (order.confirmed.v1 ->
// inventory.stock_committed.v1) and undoes it when the order is cancelled
// (order.cancelled.v1 -> inventory.stock_released.v1 or
// inventory.stock_returned.v1, each at most once per order). Every change of
// a product's levels publishes inventory.stock_level_changed.v1, from which
// the catalogue keeps availability; a change that takes availability to or
// below the low-stock threshold publishes inventory.low_stock.v1, and with
// automatic restocking on, inventory answers its own alert with a restock.
// Administrators read and adjust stock over HTTP:
//
//	GET  /api/v1/admin/products/{id}/stock  -> {product_id, sku, on_hand, reserved, available}
//	POST /api/v1/admin/products/{id}/stock  {"adjust": ±N}
package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/app"
	"github.com/shopmesh/shopmesh/services/inventory/internal/postgres"
	"github.com/shopmesh/shopmesh/services/inventory/internal/transport"
	"github.com/shopmesh/shopmesh/services/inventory/migrations"
)

// Name is the service's name: its event source, queue prefix and database.
const Name = "inventory"

// Migrations are the service's goose SQL migrations, at the root of the FS.
var Migrations fs.FS = migrations.FS

// Defaults of Config.
const (
	DefaultLowStockThreshold = 5
	DefaultRestockQuantity   = 50
	// MaxRestockQuantity bounds one automatic restock.
	MaxRestockQuantity = 1_000_000
)

// Config configures the inventory service.
type Config struct {
	// Kit holds the database, broker, HTTP address and metrics. Kit.Name
	// defaults to "inventory" (any other name is an error), Kit.Migrations
	// to Migrations.
	Kit servicekit.Config
	// LowStockThreshold: a change that takes a product's available units to
	// or below it publishes inventory.low_stock.v1 (as does a product created
	// with that few). Zero means DefaultLowStockThreshold (5); a negative
	// value disables low-stock alerts and with them automatic restocking.
	LowStockThreshold int
	// AutoRestock answers each low-stock alert with an automatic restock of
	// RestockQuantity units (an ordinary adjustment, published as
	// inventory.stock_adjusted.v1 with reason auto_restock), unless the
	// product's availability is above the threshold again by then. Off by
	// default: an automatic restock makes "out of stock" impossible to
	// observe, so it is a deliberate choice of the operator.
	AutoRestock bool
	// RestockQuantity is the units one automatic restock adds. Zero means
	// DefaultRestockQuantity (50); at most MaxRestockQuantity.
	RestockQuantity int
	// Consumer adjusts the inbox consumer's defaults (workers, retries).
	// The defaults are servicekit.SerialBatches: reservations, commits and
	// releases of every order lock the stock rows of the products in it,
	// and popular products are in many orders at once.
	Consumer func(*outbox.ConsumerConfig)
}

func (c Config) withDefaults() Config {
	if c.Kit.Name == "" {
		c.Kit.Name = Name
	}
	if c.Kit.Migrations == nil {
		c.Kit.Migrations = Migrations
	}
	if c.LowStockThreshold == 0 {
		c.LowStockThreshold = DefaultLowStockThreshold
	}
	if c.RestockQuantity == 0 {
		c.RestockQuantity = DefaultRestockQuantity
	}
	return c
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	if c.RestockQuantity < 1 || c.RestockQuantity > MaxRestockQuantity {
		errs = append(errs, fmt.Errorf("inventory: restock quantity %d outside 1..%d", c.RestockQuantity, MaxRestockQuantity))
	}
	if c.AutoRestock && c.LowStockThreshold < 0 {
		errs = append(errs, errors.New("inventory: automatic restocking needs low-stock alerts (a threshold of at least 0)"))
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
	logger.Info("starting", "http", cfg.Kit.HTTPAddr, "low_stock_threshold", cfg.LowStockThreshold,
		"auto_restock", cfg.AutoRestock, "restock_quantity", cfg.RestockQuantity)

	policy := app.Policy{LowStockThreshold: cfg.LowStockThreshold, AutoRestock: cfg.AutoRestock, RestockQuantity: cfg.RestockQuantity}
	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.New(node.Pool, node.Outbox)
		inTx := func(tx pgx.Tx) *app.Service { return app.New(store.InTx(tx), policy) }
		err := node.Inbox("inbox", servicekit.Then(servicekit.SerialBatches, cfg.Consumer), func(c *outbox.Consumer) error {
			return transport.RegisterEventHandlers(c, inTx)
		})
		if err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(app.New(store, policy)), logger), nil, nil
	})
}
