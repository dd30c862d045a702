package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// RequestPayment is the order's request to authorize its total.
type RequestPayment struct {
	// RequestID identifies the request (the message id): outcomes are
	// announced at most once per request.
	RequestID string
	OrderID   string
	UserID    string
	Amount    domain.Money
	Token     string
}

// RequestPayment authorizes the order's payment at most once. The first
// request creates the payment and asks the provider; a request for a payment
// whose outcome is known announces that outcome again as the same event
// (same id), never asking the provider again; a request for a payment still
// pending (the provider did not answer) asks again under the same
// idempotency key. When the provider does not answer, the attempt is
// recorded and nothing is published.
func (s *Service) RequestPayment(ctx context.Context, cmd RequestPayment) error {
	return s.payments.Update(ctx, cmd.OrderID, func(p *domain.Payment) (*domain.Payment, []outbox.Event, error) {
		now := s.now()
		if p == nil {
			var err error
			if p, err = domain.NewPayment(s.newID(), cmd.OrderID, cmd.UserID, cmd.Amount, now); err != nil {
				return nil, nil, err
			}
		} else if err := p.Matches(cmd.UserID, cmd.Amount); err != nil {
			return nil, nil, err
		}
		if p.Decided() {
			p.RecordAttempt(cmd.RequestID, domain.OutcomeRepeated, now)
			return p, []outbox.Event{outcomeEvent(p)}, nil
		}
		auth, err := s.provider.Authorize(ctx, AuthorizeRequest{
			IdempotencyKey: "order:" + cmd.OrderID + ":authorize",
			Amount:         cmd.Amount,
			Token:          cmd.Token,
		})
		switch {
		case errors.Is(err, ErrNoAnswer):
			p.RecordAttempt(cmd.RequestID, domain.OutcomeNoAnswer, now)
			return p, nil, nil
		case err != nil:
			return nil, nil, fmt.Errorf("authorize payment of order %s: %w", cmd.OrderID, err)
		case auth.Approved:
			if err := p.Authorize(auth.Reference, s.newID(), now); err != nil {
				return nil, nil, err
			}
			p.RecordAttempt(cmd.RequestID, domain.OutcomeAuthorized, now)
		default:
			if err := p.Decline(auth.DeclineCode, s.newID(), now); err != nil {
				return nil, nil, err
			}
			p.RecordAttempt(cmd.RequestID, domain.OutcomeDeclined, now)
		}
		return p, []outbox.Event{outcomeEvent(p)}, nil
	})
}

// outcomeEvent is the event announcing a decided payment's outcome; built
// from stored state, it is identical each time it is announced.
func outcomeEvent(p *domain.Payment) outbox.Event {
	e := outbox.Event{ID: p.OutcomeEventID(), AggregateID: p.OrderID(), OccurredAt: p.DecidedAt()}
	if p.Status() == domain.StatusDeclined {
		e.Type = contracts.TypePaymentDeclinedV1
		e.Payload = contracts.PaymentDeclinedV1{
			PaymentID: p.ID(), OrderID: p.OrderID(), UserID: p.UserID(), Amount: toMoney(p.Amount()),
			Reason: p.DeclineReason(),
		}
		return e
	}
	// Authorized, or refunded since: the decision was an authorization.
	e.Type = contracts.TypePaymentAuthorizedV1
	e.Payload = contracts.PaymentAuthorizedV1{
		PaymentID: p.ID(), OrderID: p.OrderID(), UserID: p.UserID(), Amount: toMoney(p.Amount()),
		ProviderReference: p.ProviderReference(),
	}
	return e
}

func toMoney(m domain.Money) contracts.Money {
	return contracts.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}
