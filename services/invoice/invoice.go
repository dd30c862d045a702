// Package invoice runs the invoice service: it issues exactly one invoice
// for every confirmed order and exactly one credit note for every refund,
// and shows customers their own invoices. It owns the invoice database and
// nothing else.
//
// Events consumed: order.confirmed.v1, payment.refunded.v1 (the registry's
// refund event: the credit note follows the money actually returned).
// Events published: invoice.invoice_issued.v1, invoice.credit_note_issued.v1.
//
// Invoices are numbered INV-<year>-<seq> and credit notes CN-<year>-<seq>,
// each series starting at 1 every year and running without gaps: the
// counter row is updated in the transaction that issues the document, so a
// rollback returns the number and concurrent issuers queue. Prices include
// VAT at Config.VATRateBasisPoints; each line shows its net and VAT, and the
// lines must add up to the order's total. A refund reported for an order
// without an invoice (a late authorization refunded before confirmation) is
// kept, and credited should the invoice ever be issued.
//
// API: GET /api/v1/orders/{id}/invoice (the caller's own invoices only).
package invoice

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
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice/internal/app"
	"github.com/shopmesh/shopmesh/services/invoice/internal/postgres"
	"github.com/shopmesh/shopmesh/services/invoice/internal/transport"
)

// Name is the service's name: event source, queue prefix, database owner.
const Name = "invoice"

// DefaultVATRateBasisPoints is the binary's default VAT rate: 19 %.
const DefaultVATRateBasisPoints = 1900

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's goose migrations.
var Migrations fs.FS = servicekit.MigrationsDir(migrations)

// Config configures the invoice service.
type Config struct {
	// Kit is the database, broker, HTTP address and metrics. Kit.Name and
	// Kit.Migrations are set by Run.
	Kit servicekit.Config
	// VATRateBasisPoints is the VAT included in prices, in basis points
	// (1900 is 19 %), 0 to 10000. Zero invoices without VAT; the binary
	// defaults to DefaultVATRateBasisPoints.
	VATRateBasisPoints int
	// Consumer adjusts the inbox consumer's defaults (workers, retries).
	// The defaults are servicekit.LingeringBatches: every invoice and
	// credit note takes the next number of its series and year, one row,
	// and nobody waits on an invoice within a tenth of a second.
	Consumer func(*outbox.ConsumerConfig)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if err := c.Kit.ValidateFor(Name); err != nil {
		errs = append(errs, err)
	}
	if c.VATRateBasisPoints < 0 || c.VATRateBasisPoints > 10000 {
		errs = append(errs, fmt.Errorf("VAT rate %d basis points is not between 0 and 10000", c.VATRateBasisPoints))
	}
	return errors.Join(errs...)
}

// Run starts the service and blocks until ctx ends or a component fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invoice config: %w", err)
	}
	kit := cfg.Kit
	kit.Name, kit.Migrations = Name, Migrations
	logger = kit.ServiceLogger(logger)
	logger.Info("invoice starting", "http", cfg.Kit.HTTPAddr, "vat_rate_bp", cfg.VATRateBasisPoints)
	return servicekit.Serve(ctx, kit, func(node *servicekit.Node) (http.Handler, []servicekit.Background, error) {
		store := postgres.NewStore(node.Pool, node.Outbox)
		svc, err := app.NewService(store, cfg.VATRateBasisPoints, app.WithClock(clock))
		if err != nil {
			return nil, nil, err
		}
		events := transport.NewEvents(func(tx pgx.Tx) *app.Service { return svc.With(store.InTx(tx)) }, node.Logger)
		if err := node.Inbox("inbox", servicekit.Then(servicekit.LingeringBatches, cfg.Consumer), events.Register); err != nil {
			return nil, nil, err
		}
		return transport.NewHTTPHandler(transport.MakeEndpoints(svc), node.Logger), nil, nil
	})
}

// clock is the service's time: UTC at PostgreSQL's precision.
func clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
