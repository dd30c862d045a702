package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
)

// AwardOutcome is what a completed order led to.
type AwardOutcome string

// Award outcomes. Only OutcomeAwarded changes anything.
const (
	OutcomeAwarded        AwardOutcome = "awarded"
	OutcomeAlreadyAwarded AwardOutcome = "already_awarded"
	OutcomeNotMember      AwardOutcome = "not_member"
	OutcomeFrozen         AwardOutcome = "frozen"
	OutcomeNoPoints       AwardOutcome = "no_points"
)

// AwardOrder credits the points a completed order earns its customer, at
// most once per order (the ledger's unique (order, reason) decides, so a
// re-announced completion with a new message id is absorbed too), and
// publishes loyalty.points_awarded.v1. Customers who are not active members,
// frozen members and orders worth less than one point earn nothing.
func (s *Service) AwardOrder(ctx context.Context, userID, orderID string, total domain.Money) (AwardOutcome, error) {
	outcome := OutcomeAwarded
	err := s.members.Update(ctx, userID, func(m *domain.Member) (*domain.Member, []outbox.Event, error) {
		if m == nil {
			outcome = OutcomeNotMember
			return nil, nil, nil
		}
		e, err := m.AwardOrder(orderID, total, s.now())
		switch {
		case errors.Is(err, domain.ErrNotMember):
			outcome = OutcomeNotMember
			return nil, nil, nil
		case errors.Is(err, domain.ErrFrozen):
			outcome = OutcomeFrozen
			return nil, nil, nil
		case errors.Is(err, domain.ErrNoPoints):
			outcome = OutcomeNoPoints
			return nil, nil, nil
		case err != nil:
			return nil, nil, err
		}
		return m, []outbox.Event{pointsAwarded(m, e)}, nil
	})
	if errors.Is(err, domain.ErrAlreadyAwarded) {
		return OutcomeAlreadyAwarded, nil
	}
	if err != nil {
		return "", fmt.Errorf("award points for order %s: %w", orderID, err)
	}
	return outcome, nil
}

// Freeze stops a deactivated user's membership earning points; its balance
// and ledger are kept. A user not yet known is recorded as deactivated, so
// a registration replayed after it does not enrol them.
func (s *Service) Freeze(ctx context.Context, userID string) error {
	err := s.members.Update(ctx, userID, func(m *domain.Member) (*domain.Member, []outbox.Event, error) {
		if m == nil {
			m, err := domain.Deactivated(userID, s.now())
			return m, nil, err
		}
		if !m.Freeze(s.now()) {
			return nil, nil, nil
		}
		return m, nil, nil
	})
	if err != nil {
		return fmt.Errorf("freeze %s: %w", userID, err)
	}
	return nil
}
