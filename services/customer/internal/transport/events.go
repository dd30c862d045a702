// Package transport drives the customer service from the outside world: the
// HTTP API (go-kit endpoints and handlers) and the event handlers of its
// inbox consumer. It converts between wire formats and use-case commands and
// classifies errors; it must not hold business rules or SQL.
package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/customer/internal/app"
	"github.com/shopmesh/shopmesh/services/customer/internal/domain"
)

// UnitOfWork returns the use cases joined to a message handler's inbox
// transaction.
type UnitOfWork func(tx pgx.Tx) *app.Service

// Events applies the events the customer service consumes.
type Events struct {
	work UnitOfWork
}

// NewEvents returns the event handlers.
func NewEvents(work UnitOfWork) *Events { return &Events{work: work} }

// Register registers the handlers with the service's inbox consumer: one
// handler per event type the contracts registry lists the service as a
// consumer of, every version of it. A listed type without a handler is an
// error, so a registry change cannot silently go unhandled.
func (e *Events) Register(c *outbox.Consumer, service string) error {
	latest := map[string]servicekit.EventHandler{
		contracts.TypeUserRegisteredV1:     e.userRegistered,
		contracts.TypeUserAddressChangedV1: e.addressChanged,
		contracts.TypeUserDeactivatedV1:    e.userDeactivated,
		contracts.TypeOrderPlacedV2: orderStep(contracts.TypeOrderPlacedV2, e, func(ev *contracts.OrderPlacedV2) (string, string, domain.Change) {
			return ev.OrderID, ev.UserID, domain.Change{Step: domain.StepPlaced, Total: money(ev.Totals.Total)}
		}),
		contracts.TypeOrderConfirmedV1: orderStep(contracts.TypeOrderConfirmedV1, e, func(ev *contracts.OrderConfirmedV1) (string, string, domain.Change) {
			return ev.OrderID, ev.UserID, domain.Change{Step: domain.StepConfirmed, Total: money(ev.Total)}
		}),
		contracts.TypeOrderCancelledV1: orderStep(contracts.TypeOrderCancelledV1, e, func(ev *contracts.OrderCancelledV1) (string, string, domain.Change) {
			return ev.OrderID, ev.UserID, domain.Change{Step: domain.StepCancelled, Total: money(ev.Total), Reason: string(ev.Reason)}
		}),
		contracts.TypeOrderShippedV1: orderStep(contracts.TypeOrderShippedV1, e, func(ev *contracts.OrderShippedV1) (string, string, domain.Change) {
			return ev.OrderID, ev.UserID, domain.Change{Step: domain.StepShipped}
		}),
		contracts.TypeOrderDeliveredV1: orderStep(contracts.TypeOrderDeliveredV1, e, func(ev *contracts.OrderDeliveredV1) (string, string, domain.Change) {
			return ev.OrderID, ev.UserID, domain.Change{Step: domain.StepDelivered}
		}),
		contracts.TypeOrderCompletedV1: orderStep(contracts.TypeOrderCompletedV1, e, func(ev *contracts.OrderCompletedV1) (string, string, domain.Change) {
			return ev.OrderID, ev.UserID, domain.Change{Step: domain.StepCompleted, Total: money(ev.Total)}
		}),
	}
	return servicekit.Subscribe(c, service, latest)
}

func (e *Events) userRegistered(ctx context.Context, tx pgx.Tx, msg outbox.Message, payload []byte) error {
	var ev contracts.UserRegisteredV1
	at, err := decode(contracts.TypeUserRegisteredV1, msg, payload, &ev)
	if err != nil {
		return err
	}
	return classify(e.work(tx).Registered(ctx, ev.UserID, ev.Email, ev.Name, at))
}

func (e *Events) addressChanged(ctx context.Context, tx pgx.Tx, msg outbox.Message, payload []byte) error {
	var ev contracts.UserAddressChangedV1
	at, err := decode(contracts.TypeUserAddressChangedV1, msg, payload, &ev)
	if err != nil {
		return err
	}
	a := ev.Address
	return classify(e.work(tx).AddressChanged(ctx, ev.UserID, domain.Address{
		Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country,
	}, at))
}

func (e *Events) userDeactivated(ctx context.Context, tx pgx.Tx, msg outbox.Message, payload []byte) error {
	var ev contracts.UserDeactivatedV1
	at, err := decode(contracts.TypeUserDeactivatedV1, msg, payload, &ev)
	if err != nil {
		return err
	}
	return classify(e.work(tx).Deactivated(ctx, ev.UserID, at))
}

// orderStep returns the handler of one order lifecycle event: decode it,
// say which order, customer and step it is, and record it.
func orderStep[T any](eventType string, e *Events, step func(*T) (orderID, userID string, c domain.Change)) servicekit.EventHandler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message, payload []byte) error {
		ev := new(T)
		at, err := decode(eventType, msg, payload, ev)
		if err != nil {
			return err
		}
		orderID, userID, c := step(ev)
		c.At = at
		return classify(e.work(tx).OrderChanged(ctx, orderID, userID, c))
	}
}

// decode decodes the payload strictly and returns the event's occurrence
// time, which orders the read model's changes: a message without one cannot
// be placed and is dead-lettered.
func decode(eventType string, msg outbox.Message, payload []byte, v any) (time.Time, error) {
	if err := servicekit.Decode(payload, v); err != nil {
		return time.Time{}, outbox.Permanent(err)
	}
	if msg.OccurredAt.IsZero() {
		return time.Time{}, outbox.Permanent(fmt.Errorf("message %s (%s) has no occurred_at", msg.ID, eventType))
	}
	return msg.OccurredAt.UTC(), nil
}

func money(m contracts.Money) *domain.Money {
	return &domain.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

// classify marks what retrying cannot fix as permanent: input that breaks
// the rules, such as an order event naming another customer.
func classify(err error) error {
	if errors.Is(err, domain.ErrInvalid) || errors.Is(err, domain.ErrOwnerMismatch) {
		return outbox.Permanent(err)
	}
	return err
}
