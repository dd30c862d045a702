package transport

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/app"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// ServiceIn returns the use cases bound to a consumed message's transaction.
type ServiceIn func(tx pgx.Tx) *app.Service

// RegisterEventHandlers registers a handler for every event type the
// contracts registry lists inventory as a consumer of, every version of it
// (servicekit.Subscribe), and fails when the two disagree (the queue binds
// exactly the registered types).
func RegisterEventHandlers(c *outbox.Consumer, svc ServiceIn) error {
	handlers := map[string]servicekit.EventHandler{
		contracts.TypeProductCreatedV1: handle(svc, contracts.TypeProductCreatedV1, func(ctx context.Context, s *app.Service, e contracts.ProductCreatedV1) error {
			return s.CreateStock(ctx, e.ProductID, e.SKU, e.InitialStock)
		}),
		contracts.TypeProductUpdatedV1: handle(svc, contracts.TypeProductUpdatedV1, func(ctx context.Context, s *app.Service, e contracts.ProductUpdatedV1) error {
			return s.RenameStock(ctx, e.ProductID, e.SKU)
		}),
		// Subscribe binds order.placed.v1 here too, upcast to v2.
		contracts.TypeOrderPlacedV2: handle(svc, contracts.TypeOrderPlacedV2, func(ctx context.Context, s *app.Service, e contracts.OrderPlacedV2) error {
			lines := make([]domain.Line, len(e.Lines))
			for i, l := range e.Lines {
				lines[i] = domain.Line{ProductID: l.ProductID, Quantity: l.Quantity}
			}
			return s.ReserveOrder(ctx, e.OrderID, lines)
		}),
		contracts.TypeOrderConfirmedV1: handle(svc, contracts.TypeOrderConfirmedV1, func(ctx context.Context, s *app.Service, e contracts.OrderConfirmedV1) error {
			return s.CommitOrder(ctx, e.OrderID)
		}),
		contracts.TypeOrderCancelledV1: handle(svc, contracts.TypeOrderCancelledV1, func(ctx context.Context, s *app.Service, e contracts.OrderCancelledV1) error {
			return s.CancelOrder(ctx, e.OrderID, e.Compensations)
		}),
		contracts.TypeLowStockV1: handle(svc, contracts.TypeLowStockV1, func(ctx context.Context, s *app.Service, e contracts.LowStockV1) error {
			return s.Restock(ctx, e.ProductID)
		}),
	}
	return servicekit.Subscribe(c, "inventory", handlers)
}

// handle decodes a payload of eventType, the latest version of its family
// (servicekit.Subscribe has upcast older ones), into E (its contract was
// validated while upcasting) and applies it. What retrying cannot fix — an unknown type, an invalid payload, an event that breaks a
// domain rule, a confirmation of an order never reserved — is permanent and
// dead-lettered; anything else is retried.
func handle[E any](svc ServiceIn, eventType string, apply func(context.Context, *app.Service, E) error) servicekit.EventHandler {
	return servicekit.Typed(eventType, func(ctx context.Context, tx pgx.Tx, _ outbox.Message, e E) error {
		err := apply(ctx, svc(tx), e)
		if errors.Is(err, app.ErrInvalidEvent) || errors.Is(err, domain.ErrNotReserved) || errors.Is(err, domain.ErrInvalid) {
			return outbox.Permanent(err)
		}
		return err
	})
}
