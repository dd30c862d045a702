package app

import (
	"context"
	"errors"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// AdminResult says what CreateAdmin did.
type AdminResult struct {
	User *domain.User
	// Created is true for a new account, Promoted for an existing one that
	// was not an administrator, PasswordReset when its password differed.
	Created, Promoted, PasswordReset bool
}

// CreateAdmin makes sure an active administrator with the email and password
// exists (the operator's bootstrap command; idempotent). A new account is
// registered like any other and publishes user.registered.v1; an existing
// one is promoted and its password set to the one given. A deactivated
// account is refused.
func (s *Service) CreateAdmin(ctx context.Context, in RegisterInput) (AdminResult, error) {
	for attempt := 0; ; attempt++ {
		email, errEmail := domain.ParseEmail(in.Email)
		errPassword := domain.CheckPassword(in.Password)
		if err := domain.Join(errEmail, errPassword); err != nil {
			return AdminResult{}, err
		}
		res, err := s.promote(ctx, email, in.Password)
		if !errors.Is(err, domain.ErrNotFound) {
			return res, err
		}
		u, err := s.create(ctx, in, domain.RoleAdmin)
		if errors.Is(err, domain.ErrEmailTaken) && attempt == 0 {
			continue // registered concurrently: promote it instead
		}
		if err != nil {
			return AdminResult{}, err
		}
		return AdminResult{User: u, Created: true}, nil
	}
}

func (s *Service) promote(ctx context.Context, email domain.Email, password string) (AdminResult, error) {
	var res AdminResult
	err := s.repo.UpdateByEmail(ctx, email, func(u *domain.User) ([]outbox.Event, error) {
		res = AdminResult{User: u}
		promoted, err := u.MakeAdmin()
		if err != nil {
			return nil, err
		}
		res.Promoted = promoted
		if !s.hasher.Verify(u.PasswordHash(), password) {
			h, err := s.hasher.Hash(password)
			if err != nil {
				return nil, err
			}
			u.SetPasswordHash(h)
			res.PasswordReset = true
		}
		// A role or credential change concerns no other service: no event.
		return nil, nil
	})
	return res, err
}
