package app

import (
	"context"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// RegisterInput is a sign-up request.
type RegisterInput struct {
	Email, Password, Name string
}

// Register creates a customer account and publishes user.registered.v1 in
// the same transaction. Every invalid field is reported at once.
func (s *Service) Register(ctx context.Context, in RegisterInput) (*domain.User, error) {
	return s.create(ctx, in, domain.RoleCustomer)
}

func (s *Service) create(ctx context.Context, in RegisterInput, role domain.Role) (*domain.User, error) {
	email, errEmail := domain.ParseEmail(in.Email)
	name, errName := domain.ParseName(in.Name)
	errPassword := domain.CheckPassword(in.Password)
	if err := domain.Join(errEmail, errPassword, errName); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(in.Password)
	if err != nil {
		return nil, err
	}
	id, err := domain.ParseUserID(s.newID())
	if err != nil {
		return nil, err
	}
	u, err := domain.NewUser(id, email, name, hash, role, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.repo.Add(ctx, u, registered(u)); err != nil {
		return nil, err
	}
	return u, nil
}

func registered(u *domain.User) outbox.Event {
	return outbox.Event{
		Type:        contracts.TypeUserRegisteredV1,
		AggregateID: u.ID().String(),
		OccurredAt:  u.CreatedAt(),
		Payload: contracts.UserRegisteredV1{
			UserID: u.ID().String(),
			Email:  u.Email().String(),
			Name:   u.Name().String(),
		},
	}
}
