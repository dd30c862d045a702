// Package transport drives the invoice service from the outside world: the
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
	"github.com/shopmesh/shopmesh/services/invoice/internal/app"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// UnitOfWork returns the use cases joined to a message handler's inbox
// transaction.
type UnitOfWork func(tx pgx.Tx) *app.Service

// Events applies the events the invoice service consumes.
type Events struct {
	work   UnitOfWork
	logger *slog.Logger
}

// NewEvents returns the event handlers.
func NewEvents(work UnitOfWork, logger *slog.Logger) *Events {
	return &Events{work: work, logger: logger}
}

// Register registers the handlers with the service's inbox consumer: one
// handler per event type the contracts registry lists invoice as a consumer
// of, every version of it. A listed type without a handler is an error, so
// a registry change cannot silently go unhandled.
func (e *Events) Register(c *outbox.Consumer) error {
	latest := map[string]servicekit.EventHandler{
		contracts.TypeOrderConfirmedV1:  servicekit.Typed(contracts.TypeOrderConfirmedV1, e.orderConfirmed),
		contracts.TypePaymentRefundedV1: servicekit.Typed(contracts.TypePaymentRefundedV1, e.paymentRefunded),
	}
	return servicekit.Subscribe(c, "invoice", latest)
}

func (e *Events) orderConfirmed(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.OrderConfirmedV1) error {
	total, err := domain.NewMoney(ev.Total.AmountMinor, ev.Total.Currency)
	if err != nil {
		return outbox.Permanent(err)
	}
	lines := make([]domain.LineInput, 0, len(ev.Lines))
	for _, l := range ev.Lines {
		price, err := domain.NewMoney(l.UnitPrice.AmountMinor, l.UnitPrice.Currency)
		if err != nil {
			return outbox.Permanent(fmt.Errorf("line %s: %w", l.ProductID, err))
		}
		lines = append(lines, domain.LineInput{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPrice: price})
	}
	a := ev.ShippingAddress
	err = e.work(tx).IssueInvoice(ctx, app.IssueInvoice{
		OrderID: ev.OrderID, UserID: ev.UserID, PaymentID: ev.PaymentID, Lines: lines, Total: total,
		BillingAddress: domain.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country},
	})
	return classify(err)
}

func (e *Events) paymentRefunded(ctx context.Context, tx pgx.Tx, _ outbox.Message, ev contracts.PaymentRefundedV1) error {
	amount, err := domain.NewMoney(ev.Amount.AmountMinor, ev.Amount.Currency)
	if err != nil {
		return outbox.Permanent(err)
	}
	err = e.work(tx).CreditRefund(ctx, app.CreditRefund{RefundID: ev.RefundID, PaymentID: ev.PaymentID, OrderID: ev.OrderID,
		UserID: ev.UserID, Amount: amount, Reason: string(ev.Reason)})
	return classify(err)
}

// classify marks what retrying cannot fix as permanent: documents the
// events do not allow (contradicting customers, credits beyond the invoice,
// lines that do not add up to the order's total).
func classify(err error) error {
	if errors.Is(err, domain.ErrInvalid) || errors.Is(err, domain.ErrOtherCustomer) || errors.Is(err, domain.ErrOverCredit) {
		return outbox.Permanent(err)
	}
	return err
}
