// Package transport drives the shipping service from the outside world: the
// HTTP API (go-kit endpoints and handlers) and the event handlers of its
// inbox consumer. It converts between wire formats and use-case commands and
// classifies errors; it must not hold business rules or SQL.
package transport

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/app"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// UnitOfWork returns the use cases joined to a message handler's inbox
// transaction.
type UnitOfWork func(tx pgx.Tx) *app.Service

// Events applies the events the shipping service consumes.
type Events struct {
	work   UnitOfWork
	logger *slog.Logger
}

// NewEvents returns the event handlers.
func NewEvents(work UnitOfWork, logger *slog.Logger) *Events {
	return &Events{work: work, logger: logger}
}

// Register registers the handlers with the service's inbox consumer: one
// handler per event type the contracts registry lists shipping as a
// consumer of, every version of it. A listed type without a handler is an
// error, so a registry change cannot silently go unhandled.
func (e *Events) Register(c *outbox.Consumer) error {
	latest := map[string]servicekit.EventHandler{
		contracts.TypeOrderConfirmedV1:             servicekit.Typed(contracts.TypeOrderConfirmedV1, e.orderConfirmed),
		contracts.TypeOrderCancelledV1:             servicekit.Typed(contracts.TypeOrderCancelledV1, e.orderCancelled),
		contracts.TypeOrderCancellationRequestedV1: servicekit.Typed(contracts.TypeOrderCancellationRequestedV1, e.cancellationRequested),
	}
	return servicekit.Subscribe(c, "shipping", latest)
}

func (e *Events) orderConfirmed(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.OrderConfirmedV1) error {
	lines := make([]domain.Line, 0, len(ev.Lines))
	for _, l := range ev.Lines {
		lines = append(lines, domain.Line{ProductID: l.ProductID, Quantity: l.Quantity})
	}
	a := ev.ShippingAddress
	err := e.work(tx).CreateShipment(ctx, app.CreateShipment{
		OrderID: ev.OrderID, UserID: ev.UserID, Lines: lines,
		Address: domain.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country},
	})
	if err != nil {
		// The payload passed its schema, so the domain rejecting it means
		// the order breaks the contract: retrying cannot help.
		if errors.Is(err, domain.ErrInvalid) {
			return outbox.Permanent(err)
		}
		return err
	}
	return nil
}

func (e *Events) orderCancelled(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.OrderCancelledV1) error {
	outcome, err := e.work(tx).CancelShipment(ctx, app.CancelShipment{OrderID: ev.OrderID})
	if err != nil {
		return err
	}
	e.logger.Info("order cancelled", "order_id", ev.OrderID, "reason", ev.Reason, "shipment", outcome)
	return nil
}

func (e *Events) cancellationRequested(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.OrderCancellationRequestedV1) error {
	outcome, err := e.work(tx).CancelShipment(ctx, app.CancelShipment{OrderID: ev.OrderID, Requested: true})
	if err != nil {
		return err
	}
	e.logger.Info("cancellation requested", "order_id", ev.OrderID, "outcome", outcome)
	return nil
}
