package app

import (
	"context"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// Deactivate stops an account from logging in (administrators only) and
// publishes user.deactivated.v1. Deactivating an inactive account again
// succeeds and publishes nothing. Tokens already issued stay valid until
// they expire; the account can change nothing here meanwhile.
func (s *Service) Deactivate(ctx context.Context, c Caller, userID, reason string) (*domain.User, error) {
	self, err := admin(c)
	if err != nil {
		return nil, err
	}
	id, err := domain.ParseUserID(userID)
	if err != nil {
		return nil, domain.ErrNotFound // a malformed id names no account
	}
	if id == self {
		return nil, ErrSelfDeactivate
	}
	var out *domain.User
	err = s.repo.Update(ctx, id, func(u *domain.User) ([]outbox.Event, error) {
		out = u
		changed, err := u.Deactivate(reason, s.now())
		if err != nil || !changed {
			return nil, err
		}
		return []outbox.Event{{
			Type:        contracts.TypeUserDeactivatedV1,
			AggregateID: u.ID().String(),
			OccurredAt:  u.DeactivatedAt(),
			Payload: contracts.UserDeactivatedV1{
				UserID: u.ID().String(),
				Reason: u.DeactivationReason(),
			},
		}}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
