// Package shipping runs the shipping service: it creates the one shipment of
// every confirmed order, drives the (simulated) carrier that picks shipments
// up and delivers them after configurable delays, cancels shipments the
// carrier has not picked up, and shows customers their own shipments. It
// owns the shipping database and nothing else.
//
// Events consumed: order.confirmed.v1, order.cancellation_requested.v1,
// order.cancelled.v1. Events published: shipping.shipment_created.v1,
// shipping.shipment_dispatched.v1, shipping.shipment_delivered.v1,
// shipping.shipment_failed.v1, shipping.shipment_cancelled.v1.
//
// A shipment moves created -> dispatched -> delivered. The carrier refuses
// parcels for country ZZ at pickup: the shipment fails (undeliverable)
// without ever being dispatched. The delays are durable: each shipment
// carries the due time of its next step in the database, and a background
// loop advances due shipments (FOR UPDATE SKIP LOCKED) in the transaction
// that writes their events to the outbox, so a restart loses or repeats no
// step. A cancellation (the customer's request or the order's cancellation)
// locks the same row, so a shipment is either cancelled before its pickup and
// never dispatched, or it left and the cancellation changes nothing; only an
// actual cancellation publishes shipping.shipment_cancelled.v1.
//
// API: GET /api/v1/orders/{id}/shipment (the caller's own shipments only).
package shipping

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
	"github.com/shopmesh/shopmesh/services/shipping/internal/app"
	"github.com/shopmesh/shopmesh/services/shipping/internal/carrier"
	"github.com/shopmesh/shopmesh/services/shipping/internal/postgres"
	"github.com/shopmesh/shopmesh/services/shipping/internal/transport"
)

// Name is the service's name: event source, queue prefix, database owner.
const Name = "shipping"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Defaults of Config, sized for a demo.
const (
	DefaultCarrierName         = "ShopMesh Post"
	DefaultDispatchDelay       = 5 * time.Second
	DefaultDeliveryDelay       = 10 * time.Second
	DefaultCarrierPollInterval = 250 * time.Millisecond
	DefaultCarrierBatch        = 100
)

// Config configures the shipping service. Zero values take the defaults.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// CarrierName is the simulated carrier's name. Default "ShopMesh Post".
	CarrierName string
	// DispatchDelay is the time from a shipment's creation to its pickup.
	// Default 5s.
	DispatchDelay time.Duration
	// DeliveryDelay is the time from pickup to delivery. Default 10s.
	DeliveryDelay time.Duration
	// CarrierPollInterval is how often the carrier looks for due
	// shipments; a step happens up to this late. Default 250ms.
	CarrierPollInterval time.Duration
	// CarrierBatch is the most shipments advanced in one transaction.
	// Default 100.
	CarrierBatch int
}

// WithDefaults returns c with every zero setting replaced by its default.
func (c Config) WithDefaults() Config {
	if c.CarrierName == "" {
		c.CarrierName = DefaultCarrierName
	}
	if c.DispatchDelay == 0 {
		c.DispatchDelay = DefaultDispatchDelay
	}
	if c.DeliveryDelay == 0 {
		c.DeliveryDelay = DefaultDeliveryDelay
	}
	if c.CarrierPollInterval == 0 {
		c.CarrierPollInterval = DefaultCarrierPollInterval
	}
	if c.CarrierBatch == 0 {
		c.CarrierBatch = DefaultCarrierBatch
	}
	return c
}

// Validate reports a configuration that cannot work (after WithDefaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	if c.DispatchDelay < 0 || c.DeliveryDelay < 0 {
		errs = append(errs, fmt.Errorf("carrier delays must not be negative (dispatch %s, delivery %s)", c.DispatchDelay, c.DeliveryDelay))
	}
	if c.CarrierPollInterval <= 0 {
		errs = append(errs, fmt.Errorf("carrier poll interval %s must be positive", c.CarrierPollInterval))
	}
	if c.CarrierBatch <= 0 {
		errs = append(errs, fmt.Errorf("carrier batch %d must be positive", c.CarrierBatch))
	}
	if c.CarrierName == "" {
		errs = append(errs, errors.New("carrier name is required"))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("shipping config: %w", err)
	}
	kit := cfg.Kit
	kit.Name, kit.Migrations = Name, Migrations
	logger = kit.ServiceLogger(logger)
	logger.Info("shipping starting", "http", cfg.Kit.HTTPAddr, "carrier", cfg.CarrierName,
		"dispatch_delay", cfg.DispatchDelay, "delivery_delay", cfg.DeliveryDelay, "poll", cfg.CarrierPollInterval)
	return servicekit.Serve(ctx, kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		sim, err := carrier.NewSimulator(cfg.CarrierName)
		if err != nil {
			return nil, nil, err
		}
		store := postgres.NewStore(node.Pool, node.Outbox)
		svc, err := app.NewService(store, store, sim, app.Timing{Dispatch: cfg.DispatchDelay, Delivery: cfg.DeliveryDelay},
			app.WithClock(clock))
		if err != nil {
			return nil, nil, err
		}
		events := transport.NewEvents(func(tx pgx.Tx) *app.Service { return svc.With(store.InTx(tx)) }, node.Logger)
		if err := node.Inbox("inbox", nil, events.Register); err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), node.Logger),
			[]servicekit.Background{transport.CarrierLoop(svc, cfg.CarrierPollInterval, cfg.CarrierBatch, node.Logger)}, nil
	})
}

// clock is the service's time: UTC at PostgreSQL's precision.
func clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
