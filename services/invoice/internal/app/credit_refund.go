package app

import (
	"context"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// CreditRefund is a refund payment made for an order.
type CreditRefund struct {
	RefundID  string
	PaymentID string
	OrderID   string
	UserID    string
	Amount    domain.Money
	Reason    string
}

// CreditRefund issues one credit note per refund against the order's
// invoice and publishes invoice.credit_note_issued.v1. A refund already
// known is left alone. A refund of an order without an invoice (refunded
// before it was confirmed, such as a late authorization, or reordered ahead
// of its confirmation) is kept, and credited if the invoice is ever issued.
func (s *Service) CreditRefund(ctx context.Context, cmd CreditRefund) error {
	return s.billings.Update(ctx, cmd.OrderID, func(b *domain.Billing, numbers Numbers) (*domain.Billing, []outbox.Event, error) {
		if b == nil {
			var err error
			if b, err = domain.NewBilling(cmd.OrderID, cmd.UserID); err != nil {
				return nil, nil, err
			}
		} else if err := b.CheckCustomer(cmd.UserID); err != nil {
			return nil, nil, err
		}
		now := s.now()
		added, err := b.RecordRefund(domain.Refund{RefundID: cmd.RefundID, PaymentID: cmd.PaymentID, Amount: cmd.Amount,
			Reason: cmd.Reason, ReceivedAt: now})
		if err != nil || !added {
			return nil, nil, err
		}
		if _, ok := b.Invoice(); !ok {
			return b, nil, nil
		}
		events, err := s.creditPending(ctx, b, numbers, now)
		if err != nil {
			return nil, nil, err
		}
		return b, events, nil
	})
}
