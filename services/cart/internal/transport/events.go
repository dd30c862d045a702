package transport

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/app"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// ServiceIn returns the use cases bound to a consumed message's transaction.
type ServiceIn func(tx pgx.Tx) *app.Service

// RegisterEventHandlers registers a handler for every event type the
// contracts registry lists the cart as a consumer of, and fails when the two
// disagree. The catalogue's events are applied in the order they happened
// (their envelope's occurred_at), so a replayed or late event never undoes a
// newer one. A change of a product the cart has not seen created is retried
// and, if its creation never comes, dead-lettered for an operator to replay.
func RegisterEventHandlers(c *outbox.Consumer, svc ServiceIn) error {
	handlers := map[string]servicekit.EventHandler{
		contracts.TypeProductCreatedV1: handle(svc, contracts.TypeProductCreatedV1,
			func(ctx context.Context, s *app.Service, at time.Time, e contracts.ProductCreatedV1) error {
				return s.AddProduct(ctx, e.ProductID, e.SKU, e.Name, money(e.Price), at)
			}),
		contracts.TypeProductUpdatedV1: handle(svc, contracts.TypeProductUpdatedV1,
			func(ctx context.Context, s *app.Service, at time.Time, e contracts.ProductUpdatedV1) error {
				return s.DescribeProduct(ctx, e.ProductID, e.SKU, e.Name, at)
			}),
		contracts.TypePriceChangedV1: handle(svc, contracts.TypePriceChangedV1,
			func(ctx context.Context, s *app.Service, at time.Time, e contracts.PriceChangedV1) error {
				return s.RepriceProduct(ctx, e.ProductID, money(e.Price), at)
			}),
	}
	return servicekit.Subscribe(c, "cart", handlers)
}

func money(m contracts.Money) domain.Money {
	return domain.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

// handle decodes a payload of eventType, the latest version of its family
// (servicekit.Subscribe has upcast older ones), into E (its contract was validated while upcasting) and
// applies it with the time it happened. An unknown type, an invalid payload
// or a domain rule the event breaks is permanent and dead-lettered; anything
// else is retried.
func handle[E any](svc ServiceIn, eventType string, apply func(context.Context, *app.Service, time.Time, E) error) servicekit.EventHandler {
	return servicekit.Typed(eventType, func(ctx context.Context, tx pgx.Tx, msg outbox.Message, e E) error {
		at := msg.OccurredAt
		if at.IsZero() {
			at = time.Now() // an envelope without its time: treat it as the latest news
		}
		err := apply(ctx, svc(tx), at, e)
		if errors.Is(err, domain.ErrInvalid) {
			return outbox.Permanent(err)
		}
		return err
	})
}
