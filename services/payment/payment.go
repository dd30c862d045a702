// Package payment runs the payment service: it authorizes the payment an
// order requests with the (simulated) payment provider, refunds it at most
// once when the order asks, and shows customers their own payments. It owns
// the payment database and nothing else.
//
// Events consumed: order.payment_requested.v1, order.refund_requested.v1.
// Events published: payment.authorized.v1, payment.declined.v1,
// payment.refunded.v1.
//
// Authorization is idempotent per order: the first request creates the
// payment and asks the provider; a later request for the same order never
// asks again once the outcome is known, and announces that outcome again as
// the very same event (same id), once per request. A provider that does not
// answer (token tok_timeout) leaves the payment pending and publishes
// nothing; the order's payment timeout decides. A refund request that finds
// nothing to refund (no payment, not captured, already refunded) is recorded
// in refund_requests and publishes nothing.
//
// API: GET /api/v1/orders/{id}/payment (the caller's own payments only).
package payment

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/payment/internal/app"
	"github.com/shopmesh/shopmesh/services/payment/internal/postgres"
	"github.com/shopmesh/shopmesh/services/payment/internal/provider"
	"github.com/shopmesh/shopmesh/services/payment/internal/transport"
)

// Name is the service's name: event source, queue prefix, database owner.
const Name = "payment"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Config configures the payment service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// ProviderLatency is how long the simulated provider takes to answer.
	// Default 0 (answers at once); it must not be negative.
	ProviderLatency time.Duration
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	if c.ProviderLatency < 0 {
		errs = append(errs, fmt.Errorf("provider latency %s is negative", c.ProviderLatency))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("payment config: %w", err)
	}
	kit := cfg.Kit
	kit.Name, kit.Migrations = Name, Migrations
	logger = kit.ServiceLogger(logger)
	logger.Info("payment starting", "http", cfg.Kit.HTTPAddr, "provider_latency", cfg.ProviderLatency)
	return servicekit.Serve(ctx, kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		sim, err := provider.NewSimulator(cfg.ProviderLatency)
		if err != nil {
			return nil, nil, err
		}
		store := postgres.NewStore(node.Pool, node.Outbox)
		svc := app.NewService(store, sim, app.WithClock(clock))
		events := transport.NewEvents(func(tx pgx.Tx) *app.Service { return svc.With(store.InTx(tx)) }, node.Logger)
		if err := node.Inbox("inbox", nil, events.Register); err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), node.Logger), nil, nil
	})
}

// clock is the service's time: UTC at PostgreSQL's precision, so a time read
// back from the database equals the one written (re-announced events are
// identical to the first announcement).
func clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
