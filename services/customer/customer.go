// Package customer runs the customer service: it keeps a read model of each
// customer's profile (from user events) and order history (from the order
// lifecycle events) and serves both to the customer. It owns the customer
// database and nothing else; it publishes no events.
//
// Events consumed: user.registered.v1, user.address_changed.v1,
// user.deactivated.v1, order.placed.v1 and v2 (read as v2), order.confirmed.v1,
// order.cancelled.v1, order.shipped.v1, order.delivered.v1,
// order.completed.v1 (exactly the types the contracts registry lists
// customer as a consumer of).
//
// The model tolerates duplicates and reordering: each lifecycle step is
// recorded once per order, an order's status only moves forward along
// pending → confirmed → shipped → delivered/cancelled and never leaves a
// terminal status, and addresses are ordered by the events' occurred_at.
// order.completed.v1 is a timeline step; the public status stays delivered.
//
// # Rebuilding the read model
//
// The model holds nothing that is not in the events, so it can be rebuilt:
//
//  1. Reset it: ResetReadModel truncates profiles and history and forgets
//     the inbox consumer's keys (outbox.ForgetInbox) in one transaction.
//     Events arriving meanwhile are applied again as usual.
//  2. Replay the history: `shopmesh replay --consumer customer --since <T>`
//     re-delivers the user and order services' retained events to
//     shopmesh.customer.inbox only; the inbox applies each once.
//
// Only retained history can be replayed (producers' outbox retention,
// 7 days by default): T must reach back to the first event the model
// should hold, and a full rebuild needs the producers to retain the whole
// history. The component test TestReadModelRebuildsFromReplay runs exactly
// these steps.
//
// API: GET /api/v1/me and GET /api/v1/me/history (the caller's own).
package customer

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/customer/internal/app"
	"github.com/shopmesh/shopmesh/services/customer/internal/postgres"
	"github.com/shopmesh/shopmesh/services/customer/internal/transport"
)

// Name is the service's name: event source, queue prefix, database owner.
const Name = "customer"

// Consumer is the name of the service's one consumer (queue
// shopmesh.customer.inbox).
const Consumer = "inbox"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Config configures the customer service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// Consumer adjusts the inbox consumer's defaults (workers, retries).
	// The defaults are servicekit.LingeringBatches: the read model may
	// trail the events by a tenth of a second.
	Consumer func(*outbox.ConsumerConfig)
}

func (c Config) withDefaults() Config {
	c.Kit.Name = Name
	c.Kit.Migrations = Migrations
	return c
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	return c.Kit.ValidateFor(Name)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	logger = cfg.Kit.ServiceLogger(logger)
	logger.Info("starting", "http", cfg.Kit.HTTPAddr)

	return servicekit.Serve(ctx, cfg.Kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.NewStore(node.Pool)
		svc := app.NewService(store)
		events := transport.NewEvents(func(tx pgx.Tx) *app.Service { return svc.With(store.InTx(tx)) })
		err := node.Inbox(Consumer, servicekit.Then(servicekit.LingeringBatches, cfg.Consumer), func(inbox *outbox.Consumer) error { return events.Register(inbox, Name) })
		if err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), logger), nil, nil
	})
}

// ResetReadModel empties the read model and forgets every message the inbox
// consumer applied, in one transaction, so that replaying history (`shopmesh
// replay --consumer customer --since ...`) rebuilds the model. It returns
// how many inbox keys it forgot. pool is the customer database; the service
// may keep running.
func ResetReadModel(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	forgotten, err := servicekit.ResetReadModel(ctx, pool, Consumer, postgres.Reset)
	if err != nil {
		return 0, fmt.Errorf("reset customer read model: %w", err)
	}
	return forgotten, nil
}
