package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// RefundPayment is the order's request to refund its payment.
type RefundPayment struct {
	RequestID string
	OrderID   string
	PaymentID string
	Amount    domain.Money
	Reason    string
}

// RefundPayment refunds the order's captured payment exactly once and
// publishes payment.refunded.v1. Every request is recorded with its outcome;
// a request that finds nothing to refund (no such payment, not captured,
// already refunded) is a no-op that publishes nothing: the order asks for a
// refund only for a payment it saw authorized, so such a request is a
// duplicate or a reordering, and the payment's own events already say
// where it stands. A refund of more than was captured, or in another
// currency, breaks the contract and is returned as an error wrapping
// domain.ErrRefundAmount.
func (s *Service) RefundPayment(ctx context.Context, cmd RefundPayment) (domain.RefundOutcome, error) {
	outcome := domain.RefundNoPayment
	err := s.payments.Update(ctx, cmd.OrderID, func(p *domain.Payment) (*domain.Payment, []outbox.Event, error) {
		if p == nil || (cmd.PaymentID != "" && p.ID() != cmd.PaymentID) {
			return nil, nil, nil
		}
		switch err := p.CanRefund(cmd.Amount); {
		case errors.Is(err, domain.ErrAlreadyRefunded):
			outcome = domain.RefundDuplicate
			return nil, nil, nil
		case errors.Is(err, domain.ErrNotCaptured):
			outcome = domain.RefundNotCaptured
			return nil, nil, nil
		case err != nil:
			return nil, nil, err
		}
		ref, err := s.provider.Refund(ctx, RefundRequest{
			IdempotencyKey:         "payment:" + p.ID() + ":refund",
			AuthorizationReference: p.ProviderReference(),
			Amount:                 cmd.Amount,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("refund payment %s: %w", p.ID(), err)
		}
		r := domain.Refund{ID: s.newID(), Amount: cmd.Amount, Reason: cmd.Reason, ProviderReference: ref, At: s.now()}
		if err := p.MarkRefunded(r); err != nil {
			return nil, nil, err
		}
		outcome = domain.RefundRefunded
		return p, []outbox.Event{{
			Type: contracts.TypePaymentRefundedV1, AggregateID: p.OrderID(), OccurredAt: r.At,
			Payload: contracts.PaymentRefundedV1{
				RefundID: r.ID, PaymentID: p.ID(), OrderID: p.OrderID(), UserID: p.UserID(),
				Amount: toMoney(r.Amount), Reason: contracts.CancellationReason(r.Reason),
			},
		}}, nil
	})
	if err != nil {
		return "", err
	}
	rec := domain.RefundRequest{RequestID: cmd.RequestID, OrderID: cmd.OrderID, PaymentID: cmd.PaymentID,
		Amount: cmd.Amount, Reason: cmd.Reason, Outcome: outcome, At: s.now()}
	if err := s.payments.RecordRefundRequest(ctx, rec); err != nil {
		return "", err
	}
	return outcome, nil
}
