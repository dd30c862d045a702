package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/app"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// ServiceIn returns the use cases bound to a consumed message's transaction.
type ServiceIn func(tx pgx.Tx) *app.Service

// RegisterEventHandlers registers a handler for every event type the
// contracts registry lists inventory as a consumer of, and fails when the
// two disagree (the queue binds exactly the registered types).
func RegisterEventHandlers(c *outbox.Consumer, svc ServiceIn) error {
	// Every version of order.placed upcasts to v2, which this handler reads.
	placed := handle(svc, contracts.TypeOrderPlacedV2, func(ctx context.Context, s *app.Service, e contracts.OrderPlacedV2) error {
		lines := make([]domain.Line, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = domain.Line{ProductID: l.ProductID, Quantity: l.Quantity}
		}
		return s.ReserveOrder(ctx, e.OrderID, lines)
	})
	handlers := map[string]outbox.Handler{
		contracts.TypeProductCreatedV1: handle(svc, contracts.TypeProductCreatedV1, func(ctx context.Context, s *app.Service, e contracts.ProductCreatedV1) error {
			return s.CreateStock(ctx, e.ProductID, e.SKU, e.InitialStock)
		}),
		contracts.TypeProductUpdatedV1: handle(svc, contracts.TypeProductUpdatedV1, func(ctx context.Context, s *app.Service, e contracts.ProductUpdatedV1) error {
			return s.RenameStock(ctx, e.ProductID, e.SKU)
		}),
		contracts.TypeOrderPlacedV1: placed,
		contracts.TypeOrderPlacedV2: placed,
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
	return register(c, "inventory", handlers)
}

// register checks handlers against the registry and registers them.
func register(c *outbox.Consumer, service string, handlers map[string]outbox.Handler) error {
	var want []string
	for _, t := range contracts.Registry() {
		if slices.Contains(t.Consumers, service) {
			want = append(want, t.Name)
		}
	}
	for _, t := range want {
		h, ok := handlers[t]
		if !ok {
			return fmt.Errorf("%s consumes %s according to the contracts registry but has no handler", service, t)
		}
		if err := c.Handle(t, h); err != nil {
			return err
		}
	}
	for t := range handlers {
		if !slices.Contains(want, t) {
			return fmt.Errorf("%s handles %s but the contracts registry does not list it as a consumer", service, t)
		}
	}
	return nil
}

// handle decodes a message as eventType, the latest version of its family
// (upcasting older ones), into E, validates it against its contract and
// applies it. What retrying
// cannot fix — an unknown type, an invalid payload, an event that breaks a
// domain rule, a confirmation of an order never reserved — is permanent and
// dead-lettered; anything else is retried.
func handle[E any](svc ServiceIn, eventType string, apply func(context.Context, *app.Service, E) error) outbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		latest, payload, err := contracts.Upcast(msg.Type, msg.Payload)
		if err != nil {
			return outbox.Permanent(err)
		}
		if latest != eventType {
			// A newer version exists that this build's handler does not read.
			return outbox.Permanent(fmt.Errorf("%s upcasts to %s, but the handler reads %s", msg.Type, latest, eventType))
		}
		var e E
		if err := contracts.Decode(latest, payload, &e); err != nil {
			return outbox.Permanent(err)
		}
		err = apply(ctx, svc(tx), e)
		if errors.Is(err, app.ErrInvalidEvent) || errors.Is(err, domain.ErrNotReserved) || errors.Is(err, domain.ErrInvalid) {
			return outbox.Permanent(err)
		}
		return err
	}
}
