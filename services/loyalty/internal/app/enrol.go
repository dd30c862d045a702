package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
)

// Enrol enrols a newly registered user and announces it
// (loyalty.enrolled.v1); the bonus follows when the service reads its own
// announcement. A user already known (a repeated registration, or one
// deactivated before the registration was seen) is left alone.
func (s *Service) Enrol(ctx context.Context, userID, email string) error {
	err := s.members.Update(ctx, userID, func(m *domain.Member) (*domain.Member, []outbox.Event, error) {
		if m != nil {
			return nil, nil, nil
		}
		m, err := domain.Enrol(userID, email, s.now())
		if err != nil {
			return nil, nil, err
		}
		return m, []outbox.Event{{
			Type: contracts.TypeLoyaltyEnrolledV1, AggregateID: userID,
			Payload: contracts.LoyaltyEnrolledV1{UserID: userID},
		}}, nil
	})
	if err != nil {
		return fmt.Errorf("enrol %s: %w", userID, err)
	}
	return nil
}

// GrantBonus settles the enrolment bonus of an enrolled user. Granted, it
// publishes loyalty.points_awarded.v1 (enrolment_bonus); refused, it
// publishes loyalty.enrolment_bonus_failed.v1, which the service reads to
// roll the enrolment back. A bonus already settled is a no-op; an unknown
// user is domain.ErrNotFound (the service announced an enrolment it does
// not hold: retrying cannot help).
func (s *Service) GrantBonus(ctx context.Context, userID string) error {
	err := s.members.Update(ctx, userID, func(m *domain.Member) (*domain.Member, []outbox.Event, error) {
		if m == nil {
			return nil, nil, domain.ErrNotFound
		}
		granted, failReason, err := m.GrantBonus(s.bonus, s.now())
		switch {
		case errors.Is(err, domain.ErrNotEnrolling):
			return nil, nil, nil
		case err != nil:
			return nil, nil, err
		case granted == nil:
			return m, []outbox.Event{{
				Type: contracts.TypeEnrolmentBonusFailedV1, AggregateID: userID,
				Payload: contracts.EnrolmentBonusFailedV1{UserID: userID, Reason: failReason},
			}}, nil
		}
		return m, []outbox.Event{pointsAwarded(m, *granted)}, nil
	})
	if err != nil {
		return fmt.Errorf("enrolment bonus of %s: %w", userID, err)
	}
	return nil
}

// RollBack undoes the enrolment of a user whose bonus failed and announces
// it (loyalty.enrolment_rolled_back.v1). The user stays registered. A
// rollback already done, or of an enrolment whose bonus did not fail, is a
// no-op.
func (s *Service) RollBack(ctx context.Context, userID, reason string) error {
	err := s.members.Update(ctx, userID, func(m *domain.Member) (*domain.Member, []outbox.Event, error) {
		if m == nil {
			return nil, nil, domain.ErrNotFound
		}
		if err := m.RollBack(s.now()); errors.Is(err, domain.ErrNotBonusFailed) {
			return nil, nil, nil
		} else if err != nil {
			return nil, nil, err
		}
		if reason == "" {
			reason = m.FailReason()
		}
		return m, []outbox.Event{{
			Type: contracts.TypeEnrolmentRolledBackV1, AggregateID: userID,
			Payload: contracts.EnrolmentRolledBackV1{UserID: userID, Reason: "enrolment bonus failed: " + reason},
		}}, nil
	})
	if err != nil {
		return fmt.Errorf("roll back enrolment of %s: %w", userID, err)
	}
	return nil
}

// pointsAwarded is the announcement of a ledger credit.
func pointsAwarded(m *domain.Member, e domain.Entry) outbox.Event {
	return outbox.Event{
		Type: contracts.TypePointsAwardedV1, AggregateID: m.UserID(),
		Payload: contracts.PointsAwardedV1{
			UserID: m.UserID(), Points: e.Points, Balance: m.Balance(),
			Reason: contracts.PointsReason(e.Reason), OrderID: e.OrderID,
		},
	}
}
