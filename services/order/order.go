// Package order runs the order service: it places orders from checkouts,
// orchestrates the order saga (stock, payment, shipment and their
// compensations) and serves the customers' order API. It owns the order
// database and nothing else; it talks to other services only through events.
//
// The saga advances only inside the inbox-guarded transaction of the message
// that moves it, and its payment timeout is a delayed message
// (order.payment_timed_out.v1, scheduled in the outbox), never a timer in
// memory, so a crash or a redelivery can neither lose nor repeat a step.
package order

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order/internal/app"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
	"github.com/shopmesh/shopmesh/services/order/internal/postgres"
	"github.com/shopmesh/shopmesh/services/order/internal/transport"
)

// Name is the service's name: event source, queue prefix, version table.
const Name = "order"

// DefaultPaymentTimeout is how long an order waits for payment by default.
const DefaultPaymentTimeout = 30 * time.Second

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the order service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Config configures the order service.
type Config struct {
	// Kit is the database, broker, HTTP listener and metrics. Run sets its
	// Name, Migrations and Logger.
	Kit servicekit.Config
	// PaymentTimeout is how long an order waits for payment's answer after
	// asking for it; then it is cancelled (payment_timeout) and its
	// reservation released. A later authorization is refunded. Default
	// DefaultPaymentTimeout.
	PaymentTimeout time.Duration
	// ConsumerWorkers is how many orders the inbox consumer advances in
	// parallel (one order's messages always apply one at a time, in order).
	// Default 4.
	ConsumerWorkers int
}

func (c *Config) setDefaults() {
	if c.PaymentTimeout == 0 {
		c.PaymentTimeout = DefaultPaymentTimeout
	}
	if c.ConsumerWorkers == 0 {
		c.ConsumerWorkers = 4
	}
	c.Kit.Name = Name
	c.Kit.Migrations = Migrations
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if err := c.Kit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PaymentTimeout < 0 {
		errs = append(errs, fmt.Errorf("order: payment timeout %s is negative", c.PaymentTimeout))
	}
	if c.ConsumerWorkers < 1 {
		errs = append(errs, fmt.Errorf("order: consumer workers %d must be at least 1", c.ConsumerWorkers))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Kit.Logger = logger
	if err := checkSubscriptions(); err != nil {
		return err
	}
	machine, err := domain.NewSaga(cfg.PaymentTimeout)
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}

	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store, err := postgres.NewStore(node.Pool, node.Outbox)
		if err != nil {
			return nil, nil, err
		}
		workers := func(c *outbox.ConsumerConfig) { c.Workers = cfg.ConsumerWorkers }
		changes := transport.NewChanges()
		err = node.Inbox("inbox", workers, func(inbox *outbox.Consumer) error {
			handler := transport.NewMessageHandler(func(tx pgx.Tx) transport.Saga {
				return app.NewSaga(store.InTx(tx), machine, app.Clock)
			}, changes)
			for _, t := range transport.HandledTypes() {
				if err := inbox.Handle(t, handler); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		api := transport.NewHTTPHandler(app.NewService(store, store, machine, app.Clock), changes, node.Logger)
		node.Logger.Info("order service configured", "payment_timeout", cfg.PaymentTimeout, "consumer_workers", cfg.ConsumerWorkers,
			"http", cfg.Kit.HTTPAddr)
		return api, []servicekit.Background{changes.Run}, nil
	})
}

// checkSubscriptions makes sure the inbox handles exactly the types the
// contracts registry lists the order service as a consumer of: `shopmesh
// migrate` binds the queue from the registry, so a type bound but not
// handled would be dead-lettered and one handled but not bound never
// arrives.
func checkSubscriptions() error {
	listed := servicekit.Consumes(Name)
	slices.Sort(listed)
	if handled := transport.HandledTypes(); !slices.Equal(listed, handled) {
		return fmt.Errorf("order: the registry lists the order service as consumer of %v but it handles %v", listed, handled)
	}
	return nil
}
