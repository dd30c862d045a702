// Package cart runs the cart service: it owns customers' carts and their
// checkouts, and nothing else.
//
// A customer fills the cart and checks out; every route works on the
// caller's own cart:
//
//	GET    /api/v1/cart                       -> {lines, total, item_count}
//	PUT    /api/v1/cart/items/{product_id}    {quantity: 1..99}
//	DELETE /api/v1/cart/items/{product_id}
//	POST   /api/v1/cart/checkout              {shipping_address, payment: {token}} + Idempotency-Key -> 202 {order_id, status}
//
// Lines snapshot the product's price from the cart's own view of the
// catalogue, kept from catalog.product_created.v1, catalog.product_updated.v1
// and catalog.price_changed.v1; a price change reprices the lines of every
// open cart. Changing a line publishes cart.line_updated.v1 or
// cart.line_removed.v1. Checkout chooses the order id, records the request
// under its idempotency key, empties the cart and publishes
// cart.checked_out.v1 in one transaction, from which the order service places
// the order.
package cart

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/app"
	"github.com/shopmesh/shopmesh/services/cart/internal/postgres"
	"github.com/shopmesh/shopmesh/services/cart/internal/transport"
	"github.com/shopmesh/shopmesh/services/cart/migrations"
)

// Name is the service's name: its event source, queue prefix and database.
const Name = "cart"

// Migrations are the service's goose SQL migrations, at the root of the FS.
var Migrations fs.FS = migrations.FS

// Defaults of Config.
const (
	DefaultCheckoutRetention = 7 * 24 * time.Hour
	DefaultPruneInterval     = time.Hour
)

// Config configures the cart service.
type Config struct {
	// Kit holds the database, broker, HTTP address and metrics. Kit.Name
	// defaults to "cart" (any other name is an error), Kit.Migrations to
	// Migrations.
	Kit servicekit.Config
	// CheckoutRetention is how long a checkout's idempotency record is kept:
	// a retry with the same key within it answers with the same order, a
	// retry after it checks out again (the cart is empty by then, so it fails
	// unless the customer filled it again). Default 7 days; at least an hour.
	CheckoutRetention time.Duration
	// PruneInterval is how often expired idempotency records are deleted.
	// Default 1 hour.
	PruneInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Kit.Name == "" {
		c.Kit.Name = Name
	}
	if c.Kit.Migrations == nil {
		c.Kit.Migrations = Migrations
	}
	if c.CheckoutRetention == 0 {
		c.CheckoutRetention = DefaultCheckoutRetention
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = DefaultPruneInterval
	}
	return c
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	if c.CheckoutRetention < time.Hour {
		errs = append(errs, fmt.Errorf("cart: checkout retention %s is shorter than an hour", c.CheckoutRetention))
	}
	if c.PruneInterval < time.Second {
		errs = append(errs, fmt.Errorf("cart: prune interval %s is shorter than a second", c.PruneInterval))
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
	logger.Info("starting", "http", cfg.Kit.HTTPAddr, "checkout_retention", cfg.CheckoutRetention)

	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.New(node.Pool, node.Outbox)
		inTx := func(tx pgx.Tx) *app.Service { return app.New(store.InTx(tx)) }
		err := node.Inbox("inbox", nil, func(c *outbox.Consumer) error { return transport.RegisterEventHandlers(c, inTx) })
		if err != nil {
			return nil, nil, err
		}
		svc := app.New(store)
		prune := func(ctx context.Context) error { return pruneCheckouts(ctx, svc, cfg, logger) }
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), logger), []servicekit.Background{prune}, nil
	})
}

// pruneCheckouts forgets expired idempotency records every PruneInterval.
func pruneCheckouts(ctx context.Context, svc *app.Service, cfg Config, logger *slog.Logger) error {
	tick := time.NewTicker(cfg.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		n, err := svc.PruneCheckouts(ctx, cfg.CheckoutRetention)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("pruning checkouts failed", "err", err)
		case n > 0:
			logger.Info("pruned checkouts", "count", n)
		}
	}
}
