// Package transport drives the payment service from the outside world: the
// HTTP API (go-kit endpoints and handlers) and the event handlers of its
// inbox consumer. It converts between wire formats and use-case commands and
// classifies errors; it must not hold business rules or SQL.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/payment/internal/app"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// UnitOfWork returns the use cases joined to a message handler's inbox
// transaction.
type UnitOfWork func(tx pgx.Tx) *app.Service

// Events applies the events the payment service consumes.
type Events struct {
	work   UnitOfWork
	logger *slog.Logger
}

// NewEvents returns the event handlers.
func NewEvents(work UnitOfWork, logger *slog.Logger) *Events {
	return &Events{work: work, logger: logger}
}

// Register registers the handlers with the service's inbox consumer: one
// handler per event type the contracts registry lists payment as a consumer
// of, every version of it. A listed type without a handler is an error, so
// a registry change cannot silently go unhandled.
func (e *Events) Register(c *outbox.Consumer) error {
	latest := map[string]servicekit.EventHandler{
		contracts.TypeOrderPaymentRequestedV1: servicekit.Typed(contracts.TypeOrderPaymentRequestedV1, e.paymentRequested),
		contracts.TypeOrderRefundRequestedV1:  servicekit.Typed(contracts.TypeOrderRefundRequestedV1, e.refundRequested),
	}
	return servicekit.Subscribe(c, "payment", latest)
}

func (e *Events) paymentRequested(ctx context.Context, tx pgx.Tx, msg outbox.Message, ev contracts.OrderPaymentRequestedV1) error {
	amount, err := domain.NewMoney(ev.Amount.AmountMinor, ev.Amount.Currency)
	if err != nil {
		return outbox.Permanent(fmt.Errorf("payment request for order %s: %w", ev.OrderID, err))
	}
	err = e.work(tx).RequestPayment(ctx, app.RequestPayment{
		RequestID: msg.ID, OrderID: ev.OrderID, UserID: ev.UserID, Amount: amount, Token: ev.PaymentToken,
	})
	return classify(err)
}

func (e *Events) refundRequested(ctx context.Context, tx pgx.Tx, msg outbox.Message, ev contracts.OrderRefundRequestedV1) error {
	amount, err := domain.NewMoney(ev.Amount.AmountMinor, ev.Amount.Currency)
	if err != nil {
		return outbox.Permanent(fmt.Errorf("refund request for order %s: %w", ev.OrderID, err))
	}
	outcome, err := e.work(tx).RefundPayment(ctx, app.RefundPayment{
		RequestID: msg.ID, OrderID: ev.OrderID, PaymentID: ev.PaymentID, Amount: amount, Reason: string(ev.Reason),
	})
	if err != nil {
		return classify(err)
	}
	if outcome != domain.RefundRefunded {
		e.logger.Info("refund request was a no-op", "order_id", ev.OrderID, "payment_id", ev.PaymentID, "outcome", outcome)
	}
	return nil
}

// classify marks what retrying cannot fix as permanent: requests that break
// the order's contract with payment.
func classify(err error) error {
	if errors.Is(err, domain.ErrRequestMismatch) || errors.Is(err, domain.ErrRefundAmount) {
		return outbox.Permanent(err)
	}
	return err
}
