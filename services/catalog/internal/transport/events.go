package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
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
	handlers := map[string]outbox.Handler{
		contracts.TypeStockLevelChangedV1: handle(svc, contracts.TypeStockLevelChangedV1,
			func(ctx context.Context, s *app.Service, msg outbox.Message, e contracts.StockLevelChangedV1) error {
				return s.ApplyStockLevel(ctx, e.ProductID, e.Available, msg.OccurredAt)
			}),
	}
	return register(c, "catalog", handlers)
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
// applies it. An unknown type, an invalid payload or a domain rule the event
// breaks is permanent and dead-lettered; anything else is retried.
func handle[E any](svc ServiceIn, eventType string, apply func(context.Context, *app.Service, outbox.Message, E) error) outbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		latest, payload, err := contracts.Upcast(msg.Type, msg.Payload)
		if err != nil {
			return outbox.Permanent(err)
		}
		if latest != eventType {
			return outbox.Permanent(fmt.Errorf("%s upcasts to %s, but the handler reads %s", msg.Type, latest, eventType))
		}
		var e E
		if err := contracts.Decode(latest, payload, &e); err != nil {
			return outbox.Permanent(err)
		}
		err = apply(ctx, svc(tx), msg, e)
		if errors.Is(err, domain.ErrInvalid) {
			return outbox.Permanent(err)
		}
		return err
	}
}
