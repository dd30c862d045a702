package transport

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/app"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// ServiceIn returns the use cases bound to a consumed message's transaction.
type ServiceIn func(tx pgx.Tx) *app.Service

// RegisterEventHandlers registers a handler for every event type the
// contracts registry lists the catalogue as a consumer of, and fails when
// the two disagree. The catalogue needs one inventory event only:
// inventory.stock_level_changed.v1 carries a product's levels after every
// kind of change, so availability follows from it alone.
func RegisterEventHandlers(c *outbox.Consumer, svc ServiceIn) error {
	handlers := map[string]servicekit.EventHandler{
		contracts.TypeStockLevelChangedV1: handle(svc, contracts.TypeStockLevelChangedV1,
			func(ctx context.Context, s *app.Service, msg outbox.Message, e contracts.StockLevelChangedV1) error {
				return s.ApplyStockLevel(ctx, e.ProductID, e.Available, msg.OccurredAt)
			}),
	}
	return servicekit.Subscribe(c, "catalog", handlers)
}

// handle decodes a payload of eventType, the latest version of its family
// (servicekit.Subscribe has upcast older ones), into E (its contract was validated while upcasting) and
// applies it. An unknown type, an invalid payload or a domain rule the event
// breaks is permanent and dead-lettered; anything else is retried.
func handle[E any](svc ServiceIn, eventType string, apply func(context.Context, *app.Service, outbox.Message, E) error) servicekit.EventHandler {
	return servicekit.Typed(eventType, func(ctx context.Context, tx pgx.Tx, msg outbox.Message, e E) error {
		err := apply(ctx, svc(tx), msg, e)
		if errors.Is(err, domain.ErrInvalid) {
			return outbox.Permanent(err)
		}
		return err
	})
}
