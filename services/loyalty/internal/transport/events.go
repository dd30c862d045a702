// Package transport drives the loyalty service from the outside world: the
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
	"github.com/shopmesh/shopmesh/services/loyalty/internal/app"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
)

// UnitOfWork returns the use cases joined to a message handler's inbox
// transaction.
type UnitOfWork func(tx pgx.Tx) *app.Service

// Events applies the events the loyalty service consumes.
type Events struct {
	work   UnitOfWork
	logger *slog.Logger
}

// NewEvents returns the event handlers.
func NewEvents(work UnitOfWork, logger *slog.Logger) *Events {
	return &Events{work: work, logger: logger}
}

// Register registers the handlers with the service's inbox consumer: one
// handler per event type the contracts registry lists loyalty as a consumer
// of, every version of it. A listed type without a handler is an error, so
// a registry change cannot silently go unhandled.
func (e *Events) Register(c *outbox.Consumer, service string) error {
	latest := map[string]servicekit.EventHandler{
		contracts.TypeUserRegisteredV1:       servicekit.Typed(contracts.TypeUserRegisteredV1, e.userRegistered),
		contracts.TypeUserDeactivatedV1:      servicekit.Typed(contracts.TypeUserDeactivatedV1, e.userDeactivated),
		contracts.TypeLoyaltyEnrolledV1:      servicekit.Typed(contracts.TypeLoyaltyEnrolledV1, e.enrolled),
		contracts.TypeEnrolmentBonusFailedV1: servicekit.Typed(contracts.TypeEnrolmentBonusFailedV1, e.bonusFailed),
		contracts.TypeOrderCompletedV1:       servicekit.Typed(contracts.TypeOrderCompletedV1, e.orderCompleted),
	}
	return servicekit.Subscribe(c, service, latest)
}

func (e *Events) userRegistered(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.UserRegisteredV1) error {
	return classify(e.work(tx).Enrol(ctx, ev.UserID, ev.Email))
}

func (e *Events) userDeactivated(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.UserDeactivatedV1) error {
	return classify(e.work(tx).Freeze(ctx, ev.UserID))
}

func (e *Events) enrolled(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.LoyaltyEnrolledV1) error {
	return classify(e.work(tx).GrantBonus(ctx, ev.UserID))
}

func (e *Events) bonusFailed(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.EnrolmentBonusFailedV1) error {
	e.logger.Info("enrolment bonus failed; rolling the enrolment back", "user_id", ev.UserID, "reason", ev.Reason)
	return classify(e.work(tx).RollBack(ctx, ev.UserID, ev.Reason))
}

func (e *Events) orderCompleted(ctx context.Context, tx pgx.Tx, msg outbox.Message, ev contracts.OrderCompletedV1) error {
	outcome, err := e.work(tx).AwardOrder(ctx, ev.UserID, ev.OrderID,
		domain.Money{AmountMinor: ev.Total.AmountMinor, Currency: ev.Total.Currency})
	if err != nil {
		return classify(err)
	}
	if outcome != app.OutcomeAwarded {
		e.logger.Debug("completed order earned no points", "order_id", ev.OrderID, "user_id", ev.UserID,
			"outcome", outcome, "message_id", msg.ID)
	}
	return nil
}

// classify marks what retrying cannot fix as permanent: input that breaks
// the rules, a balance at its limit, an enrolment the service does not hold.
func classify(err error) error {
	if errors.Is(err, domain.ErrInvalid) || errors.Is(err, domain.ErrBalanceOverflow) || errors.Is(err, domain.ErrNotFound) {
		return outbox.Permanent(err)
	}
	return err
}
